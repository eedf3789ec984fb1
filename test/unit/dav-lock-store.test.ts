// LockStore semantics shared by the SQLite and memory stores: conflicts, coverage by depth,
// expiry, refresh, removal of trees; and SQLite locks surviving a reopen (a daemon restart).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryLockStore, SqliteLockStore, type LockRecord, type LockStore } from '../../src/dav/lock-store';

const NOW = 1_700_000_000_000;

function lock(token: string, root: string, overrides: Partial<LockRecord> = {}): LockRecord {
  return {
    token,
    root,
    rootPath: root.replace('/srv/home', '') || '/',
    principal: 'alice',
    scope: 'exclusive',
    depth: 'infinity',
    ownerXml: '',
    timeoutS: 60,
    expiresMs: NOW + 60_000,
    ...overrides,
  };
}

function tokens(locks: LockRecord[]): string[] {
  return locks.map((each) => each.token).sort();
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-locks-'));
  try {
    await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const stores: [string, () => { store: LockStore; done: () => void }][] = [
  ['MemoryLockStore', () => ({ store: new MemoryLockStore(), done: () => undefined })],
  [
    'SqliteLockStore',
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-locks-'));
      const store = new SqliteLockStore(path.join(dir, 'locks.sqlite'));
      return { store, done: () => (store.close(), fs.rmSync(dir, { recursive: true, force: true })) };
    },
  ],
];

for (const [name, make] of stores) {
  test(`${name}: exclusive locks conflict with every lock that overlaps, shared ones only with exclusive`, async () => {
    const { store, done } = make();
    try {
      assert.equal(await store.hasLocks(NOW), false);
      assert.deepEqual(await store.acquire(lock('t1', '/srv/home/dir', { scope: 'shared' }), NOW), []);
      assert.equal(await store.hasLocks(NOW), true);
      assert.deepEqual(await store.acquire(lock('t2', '/srv/home/dir', { scope: 'shared' }), NOW), []);
      assert.deepEqual(tokens(await store.acquire(lock('t3', '/srv/home/dir/file'), NOW)), ['t1', 't2']);
      assert.deepEqual(tokens(await store.acquire(lock('t4', '/srv/home'), NOW)), ['t1', 't2']);
      assert.deepEqual(
        await store.acquire(lock('t5', '/srv/home', { depth: 0 }), NOW),
        [],
        'depth 0 above: no overlap',
      );
      assert.deepEqual(
        await store.acquire(lock('t6', '/srv/home/dirx'), NOW),
        [],
        'a sibling with a common prefix',
      );
    } finally {
      done();
    }
  });

  test(`${name}: covering finds the resource's own locks and depth-infinity ancestors, below finds descendants`, async () => {
    const { store, done } = make();
    try {
      await store.acquire(lock('deep', '/srv/home/a', { scope: 'shared' }), NOW);
      await store.acquire(lock('flat', '/srv/home/a/b', { depth: 0, scope: 'shared' }), NOW);
      await store.acquire(lock('leaf', '/srv/home/a/b/c', { scope: 'shared' }), NOW);
      assert.deepEqual(tokens(await store.covering('/srv/home/a/b', NOW)), ['deep', 'flat']);
      assert.deepEqual(tokens(await store.covering('/srv/home/a/b/c', NOW)), ['deep', 'leaf']);
      assert.deepEqual(tokens(await store.covering('/srv/home/ab', NOW)), []);
      assert.deepEqual(tokens(await store.below('/srv/home/a', NOW)), ['flat', 'leaf']);
      assert.deepEqual(tokens(await store.below('/', NOW)), ['deep', 'flat', 'leaf']);
      await store.removeTree('/srv/home/a/b');
      assert.deepEqual(tokens(await store.below('/', NOW)), ['deep']);
    } finally {
      done();
    }
  });

  test(`${name}: expired locks are gone, refresh extends, remove deletes`, async () => {
    const { store, done } = make();
    try {
      await store.acquire(lock('t', '/srv/home/f', { expiresMs: NOW + 1000, timeoutS: 1 }), NOW);
      assert.equal((await store.get('t', NOW))?.principal, 'alice');
      assert.equal(await store.get('t', NOW + 1000), null);
      assert.equal(await store.hasLocks(NOW + 1000), false);
      assert.deepEqual(
        await store.acquire(lock('u', '/srv/home/f'), NOW + 2000),
        [],
        'an expired lock conflicts with nothing',
      );
      const refreshed = await store.refresh('u', 600, NOW + 3000);
      assert.equal(refreshed?.expiresMs, NOW + 3000 + 600_000);
      assert.equal(refreshed?.timeoutS, 600);
      assert.equal(await store.refresh('missing', 600, NOW), null);
      await store.remove('u');
      assert.equal(await store.get('u', NOW), null);
    } finally {
      done();
    }
  });
}

test('SqliteLockStore: locks survive closing and reopening the database', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'locks.sqlite');
    const first = new SqliteLockStore(file);
    await first.acquire(
      lock('opaquelocktoken:keep', '/srv/home/doc', { ownerXml: '<D:owner xmlns:D="DAV:">me</D:owner>' }),
      NOW,
    );
    first.close();
    const second = new SqliteLockStore(file);
    try {
      const kept = await second.get('opaquelocktoken:keep', NOW);
      assert.equal(kept?.root, '/srv/home/doc');
      assert.equal(kept?.ownerXml, '<D:owner xmlns:D="DAV:">me</D:owner>');
      assert.equal(kept?.depth, 'infinity');
    } finally {
      second.close();
    }
  });
});
