// Non-root mode (DESIGN.md): started by an ordinary user, privdav serves only that user's own
// files with the same processes and code paths, no identity switch, and PAM checking only that
// user's password (pam_unix runs its setgid helper unix_chkpwd, as the monitor cannot read /etc/shadow).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readProcStatus } from '../../common/proc-status';
import { freePort, request } from '../support/daemon';
import {
  UserDaemon,
  childrenOf,
  configText,
  processesOfUid,
  serveAsArguments,
  running,
  startDaemonAs,
  userOwnedDir,
  writeConfig,
} from '../support/cli';
import { TestUsers, createUsers } from '../support/users';

let users: TestUsers;
before(() => {
  users = createUsers();
});
after(() => users.remove());

/** A config and state_dir in a directory alice owns, as helper/config.ts requires of a non-root daemon's file. */
async function configFor(layout: 'home' | 'tilde'): Promise<{ path: string; port: number; dir: string }> {
  const { alice } = users;
  const dir = userOwnedDir(tmpdir(), alice, layout);
  const port = await freePort();
  const path = join(dir, 'privdav.toml');
  writeConfig(
    path,
    configText({ port, stateDir: join(dir, 'state'), set: { shares: [`layout = "${layout}"`] } }),
    alice,
  );
  return { path, port, dir };
}

function noNewPrivs(pid: number): string {
  return /^NoNewPrivs:\s*(\d)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
}

describe('started by alice', () => {
  let daemon: UserDaemon;
  let dir: string;
  before(async () => {
    const config = await configFor('home');
    dir = config.dir;
    daemon = await startDaemonAs(users.alice, config.path, config.port, dir);
  });
  after(async () => {
    const monitor = daemon.pid;
    const children = childrenOf(monitor);
    assert.equal(await daemon.stop(), 0, 'SIGTERM stops it with exit status 0');
    for (const pid of children) assert.ok(!running(pid), `child ${pid} has exited`);
    assert.deepEqual(processesOfUid(users.alice.uid), [], 'no process of alice is left');
  });

  test('alice logs in with her real password and can PUT, GET and PROPFIND her files, owned by her', async () => {
    const { alice } = users;
    const put = await request(daemon, '/notes.txt', { method: 'PUT', body: 'non-root\n', user: alice });
    assert.equal(put.status, 201, daemon.output());
    const stat = statSync(join(alice.home, 'notes.txt'));
    assert.equal(stat.uid, alice.uid);
    assert.equal(stat.gid, alice.gid);
    assert.equal(stat.mode & 0o777, 0o640, 'her umask (027 from GECOS) applies');
    const get = await request(daemon, '/notes.txt', { user: alice });
    assert.equal(get.status, 200);
    assert.equal(get.text, 'non-root\n');
    const list = await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '1' }, user: alice });
    assert.equal(list.status, 207);
    assert.match(list.text, /<D:href>\/notes\.txt<\/D:href>/i);
    assert.equal((await request(daemon, '/notes.txt', { method: 'DELETE', user: alice })).status, 204);
  });

  test("PAM really checks alice's password: a wrong one is refused", async () => {
    // alice cannot read /etc/shadow: her successful logins above went through unix_chkpwd.
    const { alice } = users;
    const shadow = spawnSync('setpriv', [
      '--reuid',
      String(alice.uid),
      '--regid',
      String(alice.gid),
      '--init-groups',
      'cat',
      '/etc/shadow',
    ]);
    assert.notEqual(shadow.status, 0);
    const wrong = await request(daemon, '/', {
      user: { name: users.alice.name, password: 'not her password' },
    });
    assert.equal(wrong.status, 401);
    assert.match(
      daemon.output(),
      /login refused user=pdalice\w+ .*why="wrong password or account not usable"/,
    );
  });

  test("bob's correct password is refused: a non-root daemon serves only its own user", async () => {
    const { bob } = users;
    const response = await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: bob });
    assert.equal(response.status, 401);
    assert.match(
      daemon.output(),
      new RegExp(`login refused user=${bob.name} .*non-root mode serves only its own user`),
    );
    const root = await request(daemon, '/', { user: { name: 'root', password: 'x' } });
    assert.equal(root.status, 401);
  });

  test('no process of the tree runs as root: monitor, web process, worker and spare are all alice', async () => {
    const { alice } = users;
    await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: alice });
    const { web, workers, spares } = daemon.processes();
    assert.equal(web.length, 1);
    assert.equal(workers.length, 1);
    // The spare worker waiting for the next cold start is alice's too: nothing here is root.
    assert.ok(spares.length <= 1);
    const tree = [daemon.pid, ...childrenOf(daemon.pid)];
    assert.equal(tree.length, 3 + spares.length, 'monitor, web process, one worker (and the spare)');
    for (const pid of tree) {
      const status = readProcStatus(pid);
      assert.deepEqual(status.uids, [alice.uid, alice.uid, alice.uid, alice.uid], `uids of ${pid}`);
      assert.deepEqual(status.gids, [alice.gid, alice.gid, alice.gid, alice.gid], `gids of ${pid}`);
      assert.ok(!status.groups.includes(0), `pid ${pid} is not in group root`);
    }
    // The web process and the worker can never gain privileges (setuid/setgid programs run as plain
    // programs); the monitor must not be so restricted, as PAM's unix_chkpwd needs its setgid shadow.
    assert.equal(noNewPrivs(web[0]!), '1');
    assert.equal(noNewPrivs(workers[0]!), '1');
    assert.equal(noNewPrivs(daemon.pid), '0');
  });

  test('state_dir is created by alice, private to her', () => {
    const stateDir = join(dir, 'state');
    const stat = statSync(stateDir);
    assert.equal(stat.uid, users.alice.uid);
    assert.equal(stat.mode & 0o777, 0o700);
  });
});

describe('tilde layout, started by alice', () => {
  let daemon: UserDaemon;
  before(async () => {
    const { path, port, dir } = await configFor('tilde');
    daemon = await startDaemonAs(users.alice, path, port, dir);
  });
  after(async () => {
    assert.equal(await daemon.stop(), 0);
  });

  test("alice reaches her own share as /~alice/ but no other user's share", async () => {
    const { alice, bob } = users;
    assert.equal(
      (await request(daemon, `/~${alice.name}/tilde.txt`, { method: 'PUT', body: 't', user: alice })).status,
      201,
    );
    // bob's home is world-readable (0755), so only the daemon's rule can keep alice out of it.
    assert.ok(statSync(bob.home).mode & 0o005);
    const other = await request(daemon, `/~${bob.name}/.profile`, { user: alice });
    assert.ok(
      [403, 404].includes(other.status),
      `a non-root daemon serves only its user's files (got ${other.status})`,
    );
  });
});

test('a port below 1024 fails at start with a message that says it needs root', () => {
  const { alice } = users;
  const dir = userOwnedDir(tmpdir(), alice, 'low-port');
  try {
    const path = join(dir, 'privdav.toml');
    writeConfig(path, configText({ port: 81, stateDir: join(dir, 'state') }), alice);
    const result = spawnSync('setpriv', serveAsArguments(alice, path), { encoding: 'utf8', timeout: 10_000 });
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /cannot listen on 127\.0\.0\.1:81: EACCES \(ports below 1024 need root\)/);
  } finally {
    spawnSync('rm', ['-rf', dir]);
  }
});
