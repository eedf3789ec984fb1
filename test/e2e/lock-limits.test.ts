// Lock bloat through the real daemon: 100 LOCKs with a 1 MB owner are refused and leave the lock
// database and every lockdiscovery small; 100 LOCKs with the largest owner allowed are bounded by
// limits.max_locks_per_user; a 6-entry home lists quickly with thousands of locks present.

import assert from 'node:assert/strict';
import { statSync, writeFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lockBody } from '../support/dav-test-server';
import { Daemon, request, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let alice: TestUser;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  alice = users.alice;
  daemon = await startDaemon({
    extra: { limits: ['max_locks_per_user = 50', 'max_lock_owner_bytes = "4KiB"'] },
  });
  for (let i = 0; i < 6; i++) {
    const file = join(alice.home, `entry${i}`);
    writeFileSync(file, 'x');
    chownSync(file, alice.uid, alice.gid);
  }
});

after(async () => {
  await daemon?.stop();
  users?.remove();
});

function lockDatabaseBytes(): number {
  let total = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      total += statSync(join(daemon.dir, 'state', `locks.sqlite${suffix}`)).size;
    } catch {
      // not there (yet)
    }
  }
  return total;
}

async function lockdiscoveryBytes(): Promise<number> {
  const body =
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>';
  const res = await request(daemon, '/', { method: 'PROPFIND', user: alice, headers: { Depth: '1' }, body });
  assert.equal(res.status, 207);
  return res.body.length;
}

test('100 LOCKs with a 1 MB owner are refused (403) and the lock database stays small', async () => {
  const owner = 'o'.repeat(1_000_000);
  for (let i = 0; i < 100; i++) {
    const res = await request(daemon, `/big${i}`, {
      method: 'LOCK',
      user: alice,
      body: lockBody('shared', owner),
    });
    assert.equal(res.status, 403, res.text);
    assert.match(res.text, /max_lock_owner_bytes/);
  }
  const databaseBytes = lockDatabaseBytes();
  const discoveryBytes = await lockdiscoveryBytes();
  console.log(
    `after 100 LOCKs with a 1 MB owner: lock database ${databaseBytes} bytes, lockdiscovery ${discoveryBytes} bytes`,
  );
  assert.ok(databaseBytes < 1024 * 1024, `lock database ${databaseBytes} bytes`);
  assert.ok(discoveryBytes < 64 * 1024, `lockdiscovery ${discoveryBytes} bytes`);
});

test('100 LOCKs with a 4 KiB owner stop at max_locks_per_user (507); lockdiscovery stays bounded', async () => {
  const owner = 'o'.repeat(4000);
  const statuses: number[] = [];
  for (let i = 0; i < 100; i++) {
    const res = await request(daemon, `/entry${i % 6}`, {
      method: 'LOCK',
      user: alice,
      headers: { Depth: '0' },
      body: lockBody('shared', owner),
    });
    statuses.push(res.status);
    if (res.status === 507) assert.match(res.text, /max_locks_per_user|max_locks_per_resource/);
  }
  assert.equal(statuses.filter((status) => status === 200).length, 50);
  assert.equal(statuses.filter((status) => status === 507).length, 50);
  const databaseBytes = lockDatabaseBytes();
  const discoveryBytes = await lockdiscoveryBytes();
  console.log(
    `after 100 LOCKs with a 4 KiB owner: lock database ${databaseBytes} bytes, lockdiscovery ${discoveryBytes} bytes`,
  );
  assert.ok(discoveryBytes < 50 * 4200 + 64 * 1024, `lockdiscovery ${discoveryBytes} bytes`);
});
