// Real Linux users for the end-to-end tests: created with useradd/chpasswd (homes under a temp
// dir so nothing else is touched), sharing a group, and removed again with userdel -r.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
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
