// Drives the real WebDAV clients from Debian (curl, rclone, cadaver, davfs2) against a test daemon,
// and the small disk-level helpers the end-to-end client and disk-full tests share.

import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import posix from 'posix';
import type { TestUser } from './users';

export interface Credentials {
  name: string;
  password: string;
}

/** A URL path with every segment percent-encoded, so any file name survives the trip. */
export function encodePath(path: string): string {
  return path
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
}

// ---- curl --------------------------------------------------------------------------------------

export interface CurlResult {
  status: number;
  body: Buffer;
  text: string;
  /** Response headers, lower-case names (the last response's, when curl followed several). */
  headers: Record<string, string>;
}

/**
 * Runs curl with Basic auth as `user` on `url` plus `args` (method, -T, -r, -H …). The password
 * goes in a config read from stdin, not on the command line where `ps` would show it.
 */
export function curl(url: string, user: Credentials, args: string[] = []): CurlResult {
  const scratch = mkdtempSync(join(tmpdir(), 'privdav-curl-'));
  try {
    const bodyFile = join(scratch, 'body');
    const headerFile = join(scratch, 'headers');
    const config = `user = "${quoteCurlConfig(`${user.name}:${user.password}`)}"\n`;
    const result = spawnSync(
      'curl',
      ['-sS', '-K', '-', '-o', bodyFile, '-D', headerFile, '-w', '%{http_code}', ...args, url],
      { input: config, encoding: 'utf8', timeout: 30_000 },
    );
    if (result.status !== 0) throw new Error(`curl ${args.join(' ')} ${url} failed: ${result.stderr}`);
    const body = existsSync(bodyFile) ? readFileSync(bodyFile) : Buffer.alloc(0);
    return {
      status: Number(result.stdout),
      body,
      text: body.toString('utf8'),
      headers: parseHeaders(readFileSync(headerFile, 'latin1')),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function quoteCurlConfig(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

function parseHeaders(raw: string): Record<string, string> {
  // With -D, each response (100 Continue included) appends its block: keep the last one.
  const blocks = raw.split(/\r?\n\r?\n/).filter((block) => block.trim() !== '');
  const headers: Record<string, string> = {};
  for (const line of (blocks.at(-1) ?? '').split(/\r?\n/).slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The decoded hrefs of a multistatus body, in document order. */
export function multistatusHrefs(xml: string): string[] {
  return [...xml.matchAll(/<(?:[\w.-]+:)?href>([^<]*)<\/(?:[\w.-]+:)?href>/g)].map((match) =>
    decodeURIComponent(match[1]!.replace(/&amp;/g, '&')),
  );
}

// ---- rclone ------------------------------------------------------------------------------------

/** Name of the rclone remote the environment from `rcloneEnvironment` defines. */
export const RCLONE_REMOTE = 'pd';

/**
 * An rclone webdav remote `pd:` configured entirely through environment variables. `vendor`
 * "owncloud" makes rclone send X-OC-Mtime and expect it honoured.
 */
export function rcloneEnvironment(
  baseUrl: string,
  user: Credentials,
  vendor: 'other' | 'owncloud' = 'other',
): NodeJS.ProcessEnv {
  const obscured = execFileSync('rclone', ['obscure', '-'], {
    input: user.password,
    encoding: 'utf8',
  }).trim();
  return {
    ...process.env,
    RCLONE_CONFIG_PD_TYPE: 'webdav',
    RCLONE_CONFIG_PD_URL: `${baseUrl}/`,
    RCLONE_CONFIG_PD_VENDOR: vendor,
    RCLONE_CONFIG_PD_USER: user.name,
    RCLONE_CONFIG_PD_PASS: obscured,
  };
}

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs rclone with no config file (the remote comes from `environment`). */
export function rclone(environment: NodeJS.ProcessEnv, args: string[]): CommandResult {
  const result = spawnSync(
    'rclone',
    ['--config', '/dev/null', '--low-level-retries', '1', '--retries', '1', ...args],
    {
      env: environment,
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

// ---- cadaver -----------------------------------------------------------------------------------

export interface CadaverStep {
  command: string;
  output: string;
}

/**
 * Runs a cadaver session on `url`, one command a line on stdin, in `workDir` (where `put` reads
 * and `get` writes). Credentials come from a 0600 ~/.netrc in a temporary HOME. Returns what
 * cadaver printed for each command, split at its prompt.
 */
export function cadaver(url: string, user: Credentials, workDir: string, commands: string[]): CadaverStep[] {
  const home = mkdtempSync(join(tmpdir(), 'privdav-cadaver-home-'));
  try {
    const host = new URL(url).hostname;
    writeFileSync(
      join(home, '.netrc'),
      `machine ${host}\nlogin ${user.name}\npassword "${user.password}"\n`,
      {
        mode: 0o600,
      },
    );
    const result = spawnSync('cadaver', [url], {
      cwd: workDir,
      env: { ...process.env, HOME: home },
      input: [...commands, 'quit', ''].join('\n'),
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (result.error) throw result.error;
    const pieces = result.stdout.split(/^dav:[^\n>]*> /m).slice(1);
    return pieces.map((piece) => {
      const newline = piece.indexOf('\n');
      return { command: piece.slice(0, newline), output: piece.slice(newline + 1) };
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

// ---- davfs2 ------------------------------------------------------------------------------------

/** Why a davfs2 mount cannot be tried on this machine, or null when it can. */
export function davfsUnavailable(): string | null {
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse';
  if (!existsSync('/sbin/mount.davfs') && !existsSync('/usr/sbin/mount.davfs'))
    return 'mount.davfs not installed';
  if (process.getuid?.() !== 0) return 'mounting needs root';
  try {
    posix.getgrnam('davfs2');
  } catch {
    return 'no davfs2 group (the davfs2 package creates it)';
  }
  return null;
}

export interface DavfsMount {
  mountPoint: string;
  /** Unmounts (davfs2 uploads dirty files first) and removes the temporary files; idempotent. */
  unmount(): void;
}

/**
 * Mounts `url` with davfs2 for `owner` (uid/gid of the files in the mount), with locks on and
 * the credentials in a 0600 secrets file named by a private davfs2.conf.
 */
export function mountDavfs(url: string, user: Credentials, owner: TestUser): DavfsMount {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-davfs-'));
  const mountPoint = join(dir, 'mnt');
  const cache = join(dir, 'cache');
  execFileSync('mkdir', [mountPoint, cache]);
  // mount.davfs drops to the davfs2 user, which must reach the cache (mkdtemp made the dir 0700).
  chmodSync(dir, 0o755);
  // mount.davfs works in its cache as the davfs2 group, like /var/cache/davfs2 (root:davfs2 0775).
  chownSync(cache, 0, posix.getgrnam('davfs2').gid);
  chmodSync(cache, 0o775);
  const secrets = join(dir, 'secrets');
  writeFileSync(secrets, `${url} ${user.name} "${user.password.replace(/(["\\])/g, '\\$1')}"\n`, {
    mode: 0o600,
  });
  const conf = join(dir, 'davfs2.conf');
  writeFileSync(conf, `secrets ${secrets}\ncache_dir ${cache}\nuse_locks 1\nask_auth 0\ndelay_upload 0\n`);
  const result = spawnSync(
    'mount',
    ['-t', 'davfs', url, mountPoint, '-o', `uid=${owner.uid},gid=${owner.gid},conf=${conf}`],
    { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mount -t davfs failed: ${result.stderr}${result.stdout}`);
  }
  let mounted = true;
  return {
    mountPoint,
    unmount() {
      if (mounted) {
        unmountForcefully(mountPoint);
        mounted = false;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `umount`, and if that fails (busy, daemon hung) `fusermount -u`, then a lazy unmount. */
export function unmountForcefully(mountPoint: string): void {
  for (const [command, args] of [
    ['umount', [mountPoint]],
    ['fusermount', ['-u', mountPoint]],
    ['umount', ['-l', mountPoint]],
  ] as const) {
    const result = spawnSync(command, [...args], { stdio: 'ignore', timeout: 30_000 });
    if (result.status === 0 && !isMountPoint(mountPoint)) return;
  }
  if (isMountPoint(mountPoint)) throw new Error(`could not unmount ${mountPoint}`);
}

export function isMountPoint(path: string): boolean {
  return spawnSync('mountpoint', ['-q', path]).status === 0;
}

// ---- a hand-driven upload ---------------------------------------------------------------------

export interface RawUpload {
  /** The response's status code, or null when the connection closed without a response. */
  status: Promise<number | null>;
  /** The response's status line and headers once all have arrived, or null when none came. */
  head: Promise<string | null>;
  /** Writes body bytes; resolves once the kernel took them, or at once when the connection is gone. */
  send(chunk: Buffer): Promise<void>;
  /** Hangs up abruptly, as a client that crashed or lost its network would. */
  hangUp(): void;
}

/**
 * Starts a PUT over a raw socket with a declared Content-Length and sends no body yet, so a test
 * can interrupt it (hang up, kill a process) at a chosen point of the upload.
 */
export function startRawPut(
  port: number,
  path: string,
  user: Credentials,
  contentLength: number,
): Promise<RawUpload> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let response = '';
    let settleStatus: (status: number | null) => void = () => undefined;
    const status = new Promise<number | null>((done) => (settleStatus = done));
    let settleHead: (head: string | null) => void = () => undefined;
    const head = new Promise<string | null>((done) => (settleHead = done));
    socket.on('data', (chunk: Buffer) => {
      response += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(response);
      if (match) settleStatus(Number(match[1]));
      const end = response.indexOf('\r\n\r\n');
      if (end >= 0) settleHead(response.slice(0, end));
    });
    // Writes still waiting when the connection goes: their callbacks may never come.
    const pendingWrites = new Set<() => void>();
    socket.on('close', () => {
      settleStatus(null);
      settleHead(null);
      for (const done of pendingWrites) done();
    });
    socket.on('error', () => undefined); // a reset after the server answered is expected
    socket.once('connect', () => {
      const authorization = Buffer.from(`${user.name}:${user.password}`).toString('base64');
      socket.write(
        `PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${authorization}\r\n` +
          `Content-Length: ${contentLength}\r\n\r\n`,
      );
      resolve({
        status,
        head,
        send: (chunk) =>
          new Promise<void>((sent) => {
            if (socket.destroyed) return sent();
            const done = (): void => {
              pendingWrites.delete(done);
              sent();
            };
            pendingWrites.add(done);
            socket.write(chunk, () => done());
          }),
        hangUp: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/** Sends `total` body bytes in 256 KiB pieces, stopping early once the server has answered. */
export async function sendBody(upload: RawUpload, total: number): Promise<void> {
  let answered = false;
  void upload.status.then(() => (answered = true));
  const piece = Buffer.alloc(256 * 1024, 'x');
  for (let sent = 0; sent < total && !answered; sent += piece.length) {
    await upload.send(piece.subarray(0, Math.min(piece.length, total - sent)));
  }
}

// ---- disk --------------------------------------------------------------------------------------

/** Bytes an unprivileged user may still allocate on the filesystem holding `path`. */
export function availableBytes(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

export interface LoopFilesystem {
  mountPoint: string;
  /** Unmounts and deletes the image; idempotent, safe after a partial set-up. */
  remove(): void;
}

/**
 * A fresh ext4 filesystem of `megabytes` in an image file, loop-mounted on `mountPoint` (which
 * must exist) and then owned by `owner`. No blocks are reserved for root, so "full" means full.
 */
export function mountLoopFilesystem(mountPoint: string, megabytes: number, owner: TestUser): LoopFilesystem {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-loop-'));
  const image = join(dir, 'fs.img');
  let mounted = false;
  const remove = (): void => {
    if (mounted) {
      unmountForcefully(mountPoint);
      mounted = false;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync('truncate', ['-s', `${megabytes}M`, image]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', image, mountPoint]);
    mounted = true;
    chownSync(mountPoint, owner.uid, owner.gid);
    chmodSync(mountPoint, 0o755);
  } catch (error) {
    remove();
    throw error;
  }
  return { mountPoint, remove };
}
