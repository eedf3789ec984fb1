// Every request gets an answer, through the real daemon and worker. Tree operations whose members
// fail by the thousand answer more than one channel message holds: the client must still get its
// 207 in seconds (it used to wait for the 5-minute socket timer while the worker logged "reply not
// sent"). A worker that does not answer at all costs its request a 503 after worker_call_timeout.

import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { multistatusHrefs } from '../support/clients';
import { Daemon, request, sleep, startDaemon } from '../support/daemon';
import { readProcStatus } from '../../common/proc-status';
import { TestUsers, createUsers, type TestUser } from '../support/users';

/** Enough members that their failures take well over one 128 KiB message (~70 bytes each). */
const MEMBERS = 3000;
/** Generous for a loaded 2-core machine; the old code needed the 5-minute idle timer. */
const ANSWER_WITHIN_MS = 30_000;
/** worker_call_timeout for this file's daemon: short, so a stopped worker is given up on quickly. */
const CALL_TIMEOUT_S = 3;

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  daemon = await startDaemon({ extra: { limits: [`worker_call_timeout = "${CALL_TIMEOUT_S}s"`] } });
});
after(async () => {
  await daemon.stop();
  users.remove();
});

/** `dir` (created) with MEMBERS files, owned by `owner`; then its mode set to `mode`. */
function fillDirectory(owner: TestUser, dir: string, mode: number, fileMode = 0o644): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < MEMBERS; i++) {
    const file = join(dir, `member-with-a-longish-name-${String(i).padStart(5, '0')}.txt`);
    writeFileSync(file, 'x');
    chmodSync(file, fileMode);
    chownSync(file, owner.uid, owner.gid);
  }
  chownSync(dir, owner.uid, owner.gid);
  chmodSync(dir, mode);
}

function owned(owner: TestUser, dir: string): string {
  mkdirSync(dir, { recursive: true });
  chownSync(dir, owner.uid, owner.gid);
  return dir;
}

describe('a tree operation with thousands of failing members', () => {
  test('DELETE of a tree whose 3,000 files sit in a read-only directory answers 207 within seconds', async () => {
    const { alice } = users;
    owned(alice, join(alice.home, 'deltree'));
    fillDirectory(alice, join(alice.home, 'deltree', 'pkg'), 0o555);
    const started = Date.now();
    const response = await request(daemon, '/deltree', { method: 'DELETE', user: alice });
    const elapsed = Date.now() - started;
    assert.equal(response.status, 207);
    assert.ok(elapsed < ANSWER_WITHIN_MS, `answered after ${elapsed} ms`);
    const hrefs = multistatusHrefs(response.text);
    assert.equal(hrefs.length, MEMBERS, 'every member that could not be removed is reported');
    assert.ok(hrefs.every((href) => href.startsWith('/deltree/pkg/member-with-a-longish-name-')));
    assert.match(response.text, /HTTP\/1\.1 403/);
  });

  test('COPY of a tree with 3,000 unreadable files answers 207 within seconds', async () => {
    const { alice } = users;
    owned(alice, join(alice.home, 'copysrc'));
    fillDirectory(alice, join(alice.home, 'copysrc', 'secret'), 0o755, 0o000);
    const started = Date.now();
    const response = await request(daemon, '/copysrc', {
      method: 'COPY',
      user: alice,
      headers: { Destination: `${daemon.url}/copydst` },
    });
    const elapsed = Date.now() - started;
    assert.equal(response.status, 207);
    assert.ok(elapsed < ANSWER_WITHIN_MS, `answered after ${elapsed} ms`);
    assert.equal(multistatusHrefs(response.text).length, MEMBERS);
  });

  test('MOVE onto a tree of 3,000 members that cannot be removed answers 207 within seconds', async () => {
    const { alice } = users;
    owned(alice, join(alice.home, 'movesrc'));
    owned(alice, join(alice.home, 'movedst'));
    fillDirectory(alice, join(alice.home, 'movedst', 'pkg'), 0o555);
    const started = Date.now();
    const response = await request(daemon, '/movesrc', {
      method: 'MOVE',
      user: alice,
      headers: { Destination: `${daemon.url}/movedst`, Overwrite: 'T' },
    });
    const elapsed = Date.now() - started;
    assert.equal(response.status, 207);
    assert.ok(elapsed < ANSWER_WITHIN_MS, `answered after ${elapsed} ms`);
    assert.equal(multistatusHrefs(response.text).length, MEMBERS);
  });

  test('the worker still answers the same user afterwards', async () => {
    const response = await request(daemon, '/', {
      method: 'PROPFIND',
      user: users.alice,
      headers: { Depth: '0' },
    });
    assert.equal(response.status, 207);
  });
});

describe('a worker that does not answer', () => {
  test('a request to a stopped worker gets 503 after worker_call_timeout, and the next one is served once it runs again', async () => {
    const { bob } = users;
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', user: bob, headers: { Depth: '0' } })).status,
      207,
    );
    const workers = daemon.processes().workers.filter((pid) => readProcStatus(pid).uids[0] === bob.uid);
    assert.equal(workers.length, 1);
    const worker = workers[0]!;
    process.kill(worker, 'SIGSTOP');
    try {
      const started = Date.now();
      const response = await request(daemon, '/', { method: 'PROPFIND', user: bob, headers: { Depth: '0' } });
      const elapsed = Date.now() - started;
      assert.equal(response.status, 503);
      assert.ok(response.headers['retry-after'] !== undefined, 'a 503 says when to retry');
      assert.ok(elapsed >= CALL_TIMEOUT_S * 1000 - 100, `gave up after ${elapsed} ms`);
      assert.ok(elapsed < CALL_TIMEOUT_S * 1000 + 10_000, `gave up after ${elapsed} ms`);
    } finally {
      process.kill(worker, 'SIGCONT');
    }
    await sleep(200);
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', user: bob, headers: { Depth: '0' } })).status,
      207,
    );
  });
});
