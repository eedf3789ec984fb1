// A partial update copies the whole file before patching it (PATCH is atomic): that copy runs on the
// web process's threadpool, shared by every user, so it must go in bounded steps — one user's
// PATCHes of large files must not hold every thread while another user's upload waits.
import assert from 'node:assert/strict';
import { chownSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request, startDaemon, type Daemon } from '../support/daemon';
import { createUsers, type TestUsers } from '../support/users';

const FILES = 6;
const FILE_BYTES = 384 * 1024 * 1024;

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  daemon = await startDaemon();
});
after(async () => {
  try {
    await daemon?.stop();
  } finally {
    users?.remove();
  }
});

test("another user's 4 KiB PUT is not held up by one user's PATCHes of large files", async () => {
  const { alice, bob } = users;
  for (let index = 0; index < FILES; index++) {
    // Sparse: nothing on disk until the copies (the kernel copies holes as zeros).
    const file = join(bob.home, `big${index}`);
    writeFileSync(file, '');
    truncateSync(file, FILE_BYTES);
    chownSync(file, bob.uid, bob.gid);
  }
  // Both users' workers started, so neither start is timed.
  for (const user of [alice, bob])
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', user, headers: { Depth: '0' } })).status,
      207,
    );

  const patches = Array.from({ length: FILES }, (_, index) =>
    request(daemon, `/big${index}`, {
      method: 'PATCH',
      user: bob,
      headers: { 'Content-Type': 'application/x-sabredav-partialupdate', 'X-Update-Range': 'bytes=0-3' },
      body: 'edit',
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 300)); // the copies are under way
  const latencies: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = process.hrtime.bigint();
    const put = await request(daemon, `/small${round}`, {
      method: 'PUT',
      user: alice,
      body: Buffer.alloc(4096, 1),
    });
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
    assert.equal(put.status, 201);
  }
  const results = await Promise.all(patches);
  for (const result of results) assert.equal(result.status, 204, result.text);
  const worst = Math.max(...latencies);
  // Generous for a loaded machine: whole-file copies in one threadpool job each held alice's PUTs
  // for seconds here; 16 MiB steps let her writes in between them.
  assert.ok(worst < 1000, `alice's PUTs took ${latencies.map((ms) => ms.toFixed(0)).join(', ')} ms`);
});
