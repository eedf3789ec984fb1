// DAV: conditions belong to the situation that breaks them, through the real daemon and worker: a
// worker's LIMIT on open uploads answers a PUT with a plain 403, not PROPFIND's
// propfind-finite-depth, which only a Depth: infinity PROPFIND past its bound gets; an upload
// whose worker died is refused with 503 at once, its body left unread.

import assert from 'node:assert/strict';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readProcStatus } from '../../common/proc-status';
import { INLINE_PUT_BYTES } from '../../src/dav/methods/put';
import { startRawPut, type RawUpload } from '../support/clients';
import { Daemon, alive, request, sleep, startDaemon } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

/** The uploads one web-process channel may hold open in a worker (helper/storage-server.ts). */
const MAX_UPLOADS_PER_CHANNEL = 256;

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  // Room for more uploads at once from 127.0.0.1 than one worker channel may hold open.
  daemon = await startDaemon({
    extra: { limits: ['max_infinity_entries = 5', 'max_connections_per_address = 1000'] },
  });
});
after(async () => {
  await daemon.stop();
  users.remove();
});

test('a PUT refused because too many uploads are open is a plain 403, without propfind-finite-depth', async () => {
  const { alice } = users;
  const open: RawUpload[] = [];
  try {
    for (let i = 0; i < MAX_UPLOADS_PER_CHANNEL; i++)
      open.push(await startRawPut(daemon.port, `/pending-${i}.bin`, alice, 10));
    await sleep(2000); // every one of them has its upload open in the worker
    // Larger than a small upload, which is stored in one call and holds no upload open.
    const body = 'x'.repeat(INLINE_PUT_BYTES + 1);
    const refused = await request(daemon, '/one-too-many.bin', { method: 'PUT', user: alice, body });
    assert.equal(refused.status, 403);
    assert.doesNotMatch(refused.text, /propfind-finite-depth/);
  } finally {
    for (const upload of open) upload.hangUp();
  }
});

test('a Depth: infinity PROPFIND past max_infinity_entries is 403 with propfind-finite-depth', async () => {
  const { alice } = users;
  const dir = join(alice.home, 'deep');
  mkdirSync(dir);
  chownSync(dir, alice.uid, alice.gid);
  for (let i = 0; i < 10; i++) {
    writeFileSync(join(dir, `f${i}`), 'x');
    chownSync(join(dir, `f${i}`), alice.uid, alice.gid);
  }
  const response = await request(daemon, '/deep', {
    method: 'PROPFIND',
    user: alice,
    headers: { Depth: 'infinity' },
  });
  assert.equal(response.status, 403);
  assert.match(response.text, /<D:propfind-finite-depth\/>/);
});

test('a PUT whose worker is killed mid-upload gets 503 with Retry-After at once, the rest of the body unread', async () => {
  const { alice } = users;
  const total = 400 * 1024 * 1024;
  const upload = await startRawPut(daemon.port, '/big.bin', alice, total);
  let answered = false;
  void upload.status.then(() => (answered = true));
  const piece = Buffer.alloc(1024 * 1024, 'x');
  let sent = 0;
  let killedAt = 0;
  let sentAtKill = 0;
  try {
    // About 50 MB/s: slow enough that a server draining the body would take seconds to answer.
    while (sent < total && !answered) {
      await upload.send(piece);
      sent += piece.length;
      if (killedAt === 0 && sent >= 20 * piece.length) {
        const worker = daemon.processes().workers.find((pid) => readProcStatus(pid).uids[0] === alice.uid);
        assert.ok(worker !== undefined, 'the upload has a worker');
        process.kill(worker, 'SIGKILL');
        while (alive(worker)) await sleep(10);
        killedAt = performance.now();
        sentAtKill = sent;
      }
      await sleep(20);
    }
    const head = await upload.head;
    const answeredMs = performance.now() - killedAt;
    console.log(
      `503 after ${Math.round(answeredMs)} ms, ${(sent - sentAtKill) >> 20} MiB sent after the kill`,
    );
    assert.match(head ?? '', /^HTTP\/1\.1 503 /);
    assert.match(head ?? '', /\r\nRetry-After: \d+/i);
    assert.ok(sent < total / 2, `answered after ${sent >> 20} of ${total >> 20} MiB`);
    assert.ok(answeredMs < 3000, `answered ${Math.round(answeredMs)} ms after the kill`);
  } finally {
    upload.hangUp();
  }
  // The user's next request gets a new worker; the half upload left nothing behind.
  const listing = await request(daemon, '/big.bin', { method: 'HEAD', user: alice, agent: false });
  assert.equal(listing.status, 404);
});
