// The throwaway Unix account a bench run logs in as, and the data set in its home that both servers
// serve. Created at the start of a run and removed (userdel -r) at the end, also on error or Ctrl-C.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BenchUser {
  readonly name: string;
  readonly password: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** Sizes of the data set; smoke runs use small ones. */
export interface DataSizes {
  bigFileBytes: number;
  smallFileBytes: number;
  /** Collection sizes for the PROPFIND-per-entry workload; the 1,000-entry one also serves the concurrent PROPFIND. */
  propfindCollections: number[];
  /** Files the 4 KiB PUT workload overwrites in turn. */
  putTargets: number;
  /** N of the "users" workloads: N users' first requests at once. */
  userCounts: number[];
}

/** Paths inside the served tree (URL path = path relative to the home). */
export const dataPaths = {
  bigFile: '/big.bin',
  smallFile: '/small.bin',
  bigUpload: '/upload/big-upload.bin',
  putDirectory: '/put',
  churnDirectory: '/churn',
  propfindCollection: (entries: number): string => `/propfind/n${entries}`,
  putTarget: (index: number): string => `/put/f-${index}.bin`,
};

export function createBenchUser(): BenchUser {
  const name = `privdavbench${crypto.randomBytes(3).toString('hex')}`;
  const home = `/home/${name}`;
  // A strong random password: the account exists only for the run but is a real login while it does.
  const password = crypto.randomBytes(18).toString('base64url');
  execFileSync('useradd', ['-m', '-d', home, '-s', '/usr/sbin/nologin', name], { stdio: 'pipe' });
  execFileSync('chpasswd', [], { input: `${name}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { name, password, uid, gid, home };
}

/**
 * `count` more accounts for the "users" workloads, with Debian's default password hashing (PAM
 * checks them as it would real ones): useradd in a loop, the passwords in one chpasswd batch.
 */
export function createBenchCrowd(count: number): BenchUser[] {
  const prefix = `pdbc${crypto.randomBytes(2).toString('hex')}`;
  const crowd: BenchUser[] = [];
  try {
    for (let index = 0; index < count; index++) {
      const name = `${prefix}${index}`;
      const home = `/home/${name}`;
      execFileSync('useradd', ['-m', '-d', home, '-s', '/usr/sbin/nologin', name], { stdio: 'pipe' });
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      crowd.push({ name, password: crypto.randomBytes(18).toString('base64url'), uid, gid, home });
    }
    const input = crowd.map((user) => `${user.name}:${user.password}\n`).join('');
    execFileSync('chpasswd', [], { input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (error) {
    for (const user of crowd) removeBenchUser(user);
    throw error;
  }
  return crowd;
}

/** Removes the account and its home. Kills what still runs as the user first, or userdel refuses. */
export function removeBenchUser(user: BenchUser): void {
  for (const pid of pidsOfUid(user.uid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    execFileSync('userdel', ['-r', user.name], { stdio: 'pipe' });
  } catch (error) {
    // userdel -r exits 12 when the mail spool is missing but still removes the account and home.
    const stillThere = fs.existsSync(user.home) || accountExists(user.name);
    if (stillThere) throw error;
  }
}

function accountExists(name: string): boolean {
  try {
    execFileSync('id', [name], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** PIDs of processes whose real uid is `uid`. */
export function pidsOfUid(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const match = /^Uid:\s+(\d+)/m.exec(status);
      if (match !== null && Number(match[1]) === uid) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Writes the data set into the user's home, owned by the user, as the user's own files would be. */
export function createDataSet(user: BenchUser, sizes: DataSizes): void {
  const inHome = (urlPath: string): string => path.join(user.home, urlPath);
  const created: string[] = [];
  const makeDirectory = (urlPath: string): void => {
    fs.mkdirSync(inHome(urlPath), { recursive: true });
    created.push(inHome(urlPath));
  };
  const writeFile = (urlPath: string, data: Buffer): void => {
    fs.writeFileSync(inHome(urlPath), data);
    created.push(inHome(urlPath));
  };

  // Random bytes so that no layer can shortcut zero pages or compress.
  writeLargeRandomFile(inHome(dataPaths.bigFile), sizes.bigFileBytes);
  created.push(inHome(dataPaths.bigFile));
  writeFile(dataPaths.smallFile, crypto.randomBytes(sizes.smallFileBytes));

  makeDirectory('/upload');
  // Pre-created so that every PUT turn, the first included, overwrites an existing file.
  writeFile(dataPaths.bigUpload, Buffer.alloc(0));
  makeDirectory(dataPaths.putDirectory);
  for (let index = 0; index < sizes.putTargets; index++) {
    writeFile(dataPaths.putTarget(index), crypto.randomBytes(sizes.smallFileBytes));
  }
  makeDirectory(dataPaths.churnDirectory);

  const entryContent = Buffer.from('privdav bench entry\n');
  makeDirectory('/propfind');
  for (const entries of sizes.propfindCollections) {
    const collection = dataPaths.propfindCollection(entries);
    makeDirectory(collection);
    for (let index = 0; index < entries; index++) {
      writeFile(`${collection}/entry-${String(index).padStart(5, '0')}.txt`, entryContent);
    }
  }
  for (const file of created) fs.lchownSync(file, user.uid, user.gid);
  fs.lchownSync(user.home, user.uid, user.gid);
}

function writeLargeRandomFile(file: string, bytes: number): void {
  const chunk = crypto.randomBytes(Math.min(bytes, 4 << 20));
  const fd = fs.openSync(file, 'w');
  try {
    for (let written = 0; written < bytes;) {
      const length = Math.min(chunk.length, bytes - written);
      written += fs.writeSync(fd, chunk, 0, length);
    }
  } finally {
    fs.closeSync(fd);
  }
}
