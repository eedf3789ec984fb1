// A compromised web process against the real monitor and a real worker: garbage, forged and
// expired credentials, NUL bytes, requests out of order. Each is refused, and both keep serving.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { alive, freePort, request, sleep, startDaemonWithConfig } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let dir: string;

before(() => {
  users = createUsers();
  dir = mkdtempSync(join(tmpdir(), 'privdav-hostile-'));
});
after(() => {
  users.remove();
  rmSync(dir, { recursive: true, force: true });
});

test('the monitor and the worker refuse what a compromised web process sends, and keep serving', async () => {
  const port = await freePort();
  const configPath = join(dir, 'privdav.toml');
  writeFileSync(
    configPath,
    `[server]\nlisten = ["127.0.0.1:${port}"]\nstate_dir = "${join(dir, 'state')}"\n` +
      `[auth]\ncredential_ttl = "10s"\nmin_uid = ${Math.min(users.alice.uid, users.bob.uid)}\n[log]\nlevel = "info"\n`,
  );
  const resultFile = join(dir, 'results.json');
  const paramsFile = join(dir, 'params.json');
  writeFileSync(paramsFile, JSON.stringify({ alice: users.alice, bob: users.bob, expireAfterMs: 10_500 }));
  const support = join(__dirname, '..', 'support');
  const monitor = spawn(
    process.execPath,
    [join(support, 'run-monitor.js'), configPath, join(support, 'hostile-web.js'), resultFile, paramsFile],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  monitor.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  monitor.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    const deadline = Date.now() + 60_000;
    let results: Record<string, any> = {};
    while (Date.now() < deadline) {
      if (existsSync(resultFile)) {
        results = JSON.parse(readFileSync(resultFile, 'utf8'));
        if (results.done || results.error) break;
      }
      assert.ok(alive(monitor.pid!), `the monitor is alive\n${output}`);
      await sleep(200);
    }
    assert.equal(results.error, undefined, String(results.error));
    assert.equal(results.done, true, `the hostile run finished\n${output}`);
    assert.equal(results.authBeforeReady, 'timeout', 'AUTH before READY is refused');
    assert.ok(results.garbageSent > 9000, 'the garbage was sent');
    assert.deepEqual(
      results.aliceAuth,
      { ok: true },
      'after 10,000 bad messages the monitor still answers AUTH',
    );
    assert.equal(results.nulUser.ok, false, 'NUL in a user name is refused');
    assert.equal(results.nulPassword.ok, false, 'NUL in a password is refused');
    assert.equal(results.connect.ok, true);
    assert.equal(results.connect.fds, 1, 'CONNECT passes one channel descriptor');
    assert.equal(results.forgedConnect.ok, false);
    assert.equal(results.validCookie.ok, true, 'the genuine cookie works');
    assert.equal(
      results.flippedBit.code,
      'COOKIE_INVALID',
      'a cookie with a flipped bit is refused by the worker',
    );
    assert.equal(
      results.otherUidCookie.code,
      'COOKIE_INVALID',
      "another uid's cookie is refused by the worker",
    );
    assert.equal(results.noCookie.code, 'COOKIE_INVALID');
    assert.equal(results.badOp.code, 'PROTOCOL', 'an unknown operation is refused');
    assert.equal(results.escape.code, 'BAD_PATH', '.. escaping the share is refused');
    // Refused at the channel, before LocalStorage's own path checks are even reached.
    assert.equal(results.nulPath.code, 'PROTOCOL', 'NUL in a path is refused');
    assert.equal(results.expiredCookie.code, 'COOKIE_EXPIRED', 'an expired cookie is refused by the worker');
    assert.deepEqual(results.afterExpiryAuth, { ok: true });
    assert.match(output, /request from the web process refused/);
    assert.ok(alive(monitor.pid!));
  } finally {
    monitor.kill('SIGTERM');
    await new Promise((resolve) => monitor.once('exit', resolve));
  }
});

test('an account below min_uid is refused even with the right password', async () => {
  const port = await freePort();
  const configPath = join(dir, 'min-uid.toml');
  // bob was created after alice, so his uid is higher: a min_uid of bob's uid excludes alice.
  const [low, high] = users.alice.uid < users.bob.uid ? [users.alice, users.bob] : [users.bob, users.alice];
  writeFileSync(
    configPath,
    `[server]\nlisten = ["127.0.0.1:${port}"]\nstate_dir = "${join(dir, 'state2')}"\n[auth]\nmin_uid = ${high.uid}\n`,
  );
  const daemon = await startDaemonWithConfig(configPath, port);
  try {
    assert.equal((await request(daemon, '/', { method: 'PROPFIND', user: low })).status, 401);
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: high })).status,
      207,
    );
    assert.match(daemon.output(), /below min_uid/);
  } finally {
    await daemon.stop();
  }
});
