// Real Linux users for the end-to-end tests: created with useradd/chpasswd (homes under a temp
// dir so nothing else is touched), sharing a group, and removed again with userdel -r.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import posix from 'posix';

export interface TestUser {
  name: string;
  password: string;
  uid: number;
  gid: number;
  home: string;
}

export interface TestUsers {
  alice: TestUser;
  bob: TestUser;
  group: string;
  groupGid: number;
  remove(): void;
}

function run(command: string, args: string[], input?: string): void {
  execFileSync(command, args, { input, stdio: ['pipe', 'ignore', 'pipe'] });
}

/**
 * Creates alice and bob (random suffix) with passwords and a shared group. Alice's GECOS carries
 * `umask=0027` the way pam_umask reads it, so tests can check files get her umask.
 */
export function createUsers(): TestUsers {
  const suffix = randomBytes(3).toString('hex');
  const base = mkdtempSync(join(tmpdir(), 'privdav-homes-'));
  run('chmod', ['0755', base]);
  const group = `pdg${suffix}`;
  run('groupadd', [group]);
  const make = (short: string, gecos: string): TestUser => {
    const name = `pd${short}${suffix}`;
    const home = join(base, name);
    const password = `pw:${randomBytes(6).toString('base64url')} é`;
    run('useradd', [
      '-m',
      '-d',
      home,
      '-s',
      '/usr/sbin/nologin',
      '-c',
      gecos,
      '-G',
      group,
      '-K',
      'UMASK=022',
      name,
    ]);
    run('chpasswd', [], `${name}:${password}\n`);
    const entry = posix.getpwnam(name);
    return { name, password, uid: entry.uid, gid: entry.gid, home };
  };
  const alice = make('alice', 'Alice,,,,umask=0027');
  const bob = make('bob', 'Bob');
  const groupGid = posix.getgrnam(group).gid;
  return {
    alice,
    bob,
    group,
    groupGid,
    remove() {
      for (const user of [alice, bob]) {
        try {
          execFileSync('pkill', ['-KILL', '-u', user.name], { stdio: 'ignore' });
        } catch {
          // No processes left: fine.
        }
        try {
          run('userdel', ['-r', '-f', user.name]);
        } catch {
          // Already gone.
        }
      }
      try {
        run('groupdel', [group]);
      } catch {
        // Already gone.
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Runs a command as a user (for checking what the kernel lets them do). */
export function asUser(user: TestUser, command: string, args: string[]): string {
  return execFileSync(
    'setpriv',
    ['--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', command, ...args],
    {
      encoding: 'utf8',
    },
  );
}

/**
 * One user with exactly the name `name` (the caller adds a random part), a password and a home
 * under a temp dir; `remove` deletes both. For names beyond the usual grammar: useradd accepts
 * dots, "@", "+" and a final "$".
 */
export function createNamedUser(name: string): TestUser & { remove(): void } {
  const base = mkdtempSync(join(tmpdir(), 'privdav-homes-'));
  run('chmod', ['0755', base]);
  const home = join(base, 'home');
  const password = `pw:${randomBytes(6).toString('base64url')}`;
  run('useradd', ['-m', '-d', home, '-s', '/usr/sbin/nologin', '-K', 'UMASK=022', name]);
  run('chpasswd', [], `${name}:${password}\n`);
  const entry = posix.getpwnam(name);
  return {
    name,
    password,
    uid: entry.uid,
    gid: entry.gid,
    home,
    remove() {
      try {
        execFileSync('pkill', ['-KILL', '-u', String(entry.uid)], { stdio: 'ignore' });
      } catch {
        // No processes left: fine.
      }
      try {
        run('userdel', ['-r', '-f', name]);
      } catch {
        // Already gone.
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

export interface UserCrowd {
  users: TestUser[];
  remove(): void;
}

/**
 * `count` users at once (login bursts): the accounts and homes in one `newusers` batch (useradd in
 * a loop costs ~150 ms each), the passwords in one chpasswd batch. `fastHashes` stores SHA-512
 * hashes (~1 ms for PAM to check) instead of Debian's yescrypt (~50 ms), for tests about
 * everything but PAM's own cost. Removing them is a userdel each (~150 ms).
 */
export function createUserCrowd(count: number, options: { fastHashes?: boolean } = {}): UserCrowd {
  const suffix = randomBytes(3).toString('hex');
  const base = mkdtempSync(join(tmpdir(), 'privdav-crowd-'));
  run('chmod', ['0755', base]);
  const names = Array.from({ length: count }, (_, index) => `pdc${suffix}${index}`);
  const users: TestUser[] = [];
  const remove = (): void => {
    for (const name of names) {
      try {
        execFileSync('pkill', ['-KILL', '-u', name], { stdio: 'ignore' });
      } catch {
        // No processes left (or no such user): fine.
      }
      try {
        run('userdel', ['-f', name]);
      } catch {
        // Already gone.
      }
    }
    rmSync(base, { recursive: true, force: true });
  };
  try {
    // No password here (newusers would hash each with yescrypt, and complains about the empty
    // ones, exiting 1): the accounts are created locked and get their passwords just below.
    try {
      execFileSync('newusers', [], {
        input: names
          .map((name) => `${name}::::privdav test:${join(base, name)}:/usr/sbin/nologin\n`)
          .join(''),
        stdio: ['pipe', 'ignore', 'ignore'],
      });
    } catch {
      // Checked account by account below.
    }
    for (const name of names) {
      const entry = posix.getpwnam(name);
      users.push({
        name,
        password: `pw-${randomBytes(6).toString('base64url')}`,
        uid: entry.uid,
        gid: entry.gid,
        home: join(base, name),
      });
    }
    const hashing = options.fastHashes === true ? ['-c', 'SHA512', '-s', '1000'] : [];
    run('chpasswd', hashing, users.map((user) => `${user.name}:${user.password}\n`).join(''));
  } catch (error) {
    remove();
    throw error;
  }
  return { users, remove };
}

/**
 * Bob's team folder, `~bob/team`: his, writable by the shared group only (setgid, 2770), in a home
 * others may pass through (0711). Alice, a member, can write into it through /~bob/team/.
 */
export function makeTeamFolder(users: TestUsers): string {
  const { bob, groupGid } = users;
  chmodSync(bob.home, 0o711);
  const team = join(bob.home, 'team');
  mkdirSync(team);
  chownSync(team, bob.uid, groupGid);
  chmodSync(team, 0o2770);
  return team;
}
