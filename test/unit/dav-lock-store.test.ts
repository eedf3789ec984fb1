// LockStore semantics shared by the memory, SQLite and PostgreSQL stores (one suite, run against
// each): conflicts, coverage by depth, expiry, refresh, bounds, removal of trees; SQLite locks
// surviving a reopen (a daemon restart); PostgreSQL grants atomic across two stores (two nodes).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  LockLimitError,
  MemoryLockStore,
  SqliteLockStore,
  type LockBounds,
  type LockRecord,
  type LockStore,
} from '../../src/dav/lock-store';
import { PostgresLockStore } from '../../src/dav/postgres-lock-store';
import { POSTGRES_AVAILABLE, startPostgres, type TestPostgres } from '../support/postgres';

// Real time: the PostgreSQL store judges expiry by the database's clock, not by the nowMs it is given.
const NOW = Date.now();
const WIDE: LockBounds = { maxPerPrincipal: 1000, maxPerResource: 64, maxStoreBytes: 1e9 };

let postgres: TestPostgres | null = null;
before(async () => {
  if (POSTGRES_AVAILABLE) postgres = await startPostgres();
});
after(() => postgres?.destroy());

function postgresStore(url: string): PostgresLockStore {
  return new PostgresLockStore({ url, log: () => undefined });
}

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

const stores: [string, () => Promise<{ store: LockStore; done: () => void }>][] = [
  ['MemoryLockStore', async () => ({ store: new MemoryLockStore(), done: () => undefined })],
  [
    'SqliteLockStore',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-locks-'));
      const store = new SqliteLockStore(path.join(dir, 'locks.sqlite'));
      return { store, done: () => (store.close(), fs.rmSync(dir, { recursive: true, force: true })) };
    },
  ],
  [
    'PostgresLockStore',
    async () => {
      assert.ok(postgres, 'PostgreSQL 15 is not installed (scripts/setup.sh installs it)');
      const store = postgresStore(await postgres.createDatabase());
      return { store, done: () => store.close() };
    },
  ],
];

for (const [name, make] of stores) {
  test(`${name}: exclusive locks conflict with every lock that overlaps, shared ones only with exclusive`, async () => {
    const { store, done } = await make();
    try {
      assert.equal(await store.hasLocks(NOW), false);
      assert.deepEqual(await store.acquire(lock('t1', '/srv/home/dir', { scope: 'shared' }), NOW, WIDE), []);
      assert.equal(await store.hasLocks(NOW), true);
      assert.deepEqual(await store.acquire(lock('t2', '/srv/home/dir', { scope: 'shared' }), NOW, WIDE), []);
      assert.equal(await store.liveLocks(NOW), 2, 'liveLocks counts them (the privdav_locks gauge)');
      assert.deepEqual(tokens(await store.acquire(lock('t3', '/srv/home/dir/file'), NOW, WIDE)), [
        't1',
        't2',
      ]);
      assert.deepEqual(tokens(await store.acquire(lock('t4', '/srv/home'), NOW, WIDE)), ['t1', 't2']);
      assert.deepEqual(
        await store.acquire(lock('t5', '/srv/home', { depth: 0 }), NOW, WIDE),
        [],
        'depth 0 above: no overlap',
      );
      assert.deepEqual(
        await store.acquire(lock('t6', '/srv/home/dirx'), NOW, WIDE),
        [],
        'a sibling with a common prefix',
      );
    } finally {
      done();
    }
  });

  test(`${name}: covering finds the resource's own locks and depth-infinity ancestors, below finds descendants`, async () => {
    const { store, done } = await make();
    try {
      await store.acquire(lock('deep', '/srv/home/a', { scope: 'shared' }), NOW, WIDE);
      await store.acquire(lock('flat', '/srv/home/a/b', { depth: 0, scope: 'shared' }), NOW, WIDE);
      await store.acquire(lock('leaf', '/srv/home/a/b/c', { scope: 'shared' }), NOW, WIDE);
      assert.deepEqual(tokens(await store.covering('/srv/home/a/b', NOW)), ['deep', 'flat']);
      assert.deepEqual(tokens(await store.covering('/srv/home/a/b/c', NOW)), ['deep', 'leaf']);
      assert.deepEqual(tokens(await store.covering('/srv/home/ab', NOW)), []);
      assert.deepEqual(tokens(await store.below('/srv/home/a', NOW)), ['flat', 'leaf']);
      assert.deepEqual(tokens(await store.below('/', NOW)), ['deep', 'flat', 'leaf']);
      assert.deepEqual(tokens(await store.atMembers('/srv/home', NOW)), ['deep']);
      assert.deepEqual(tokens(await store.atMembers('/srv/home/a', NOW)), ['flat']);
      assert.deepEqual(tokens(await store.atMembers('/srv/home/a/b/c', NOW)), []);
      await store.removeTree('/srv/home/a/b');
      assert.deepEqual(tokens(await store.below('/', NOW)), ['deep']);
    } finally {
      done();
    }
  });

  test(`${name}: expired locks are gone, refresh extends, remove deletes`, async () => {
    const { store, done } = await make();
    try {
      const start = Date.now();
      await store.acquire(lock('t', '/srv/home/f', { expiresMs: start + 1000, timeoutS: 1 }), start, WIDE);
      const held = await store.get('t', start);
      assert.equal(held?.principal, 'alice');
      assert.ok(Math.abs(held!.expiresMs - (start + 1000)) < 500, 'expiry reported on the caller’s clock');
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const later = Date.now();
      assert.equal(await store.get('t', later), null);
      assert.equal(await store.hasLocks(later), false);
      assert.equal(await store.liveLocks(later), 0, 'expired locks are not counted');
      assert.deepEqual(
        await store.acquire(lock('u', '/srv/home/f', { expiresMs: later + 60_000 }), later, WIDE),
        [],
        'an expired lock conflicts with nothing',
      );
      const refreshed = await store.refresh('u', 600, later);
      assert.ok(Math.abs(refreshed!.expiresMs - (later + 600_000)) < 1000);
      assert.equal(refreshed?.timeoutS, 600);
      assert.equal(await store.refresh('missing', 600, later), null);
      await store.remove('u');
      assert.equal(await store.get('u', later), null);
    } finally {
      done();
    }
  });

  test(`${name}: bounds on locks per principal, per resource and the store's size`, async () => {
    const { store, done } = await make();
    try {
      const bounds: LockBounds = { maxPerPrincipal: 3, maxPerResource: 2, maxStoreBytes: 1e9 };
      const shared = { scope: 'shared' as const };
      await store.acquire(lock('s1', '/srv/home/s', shared), NOW, bounds);
      await store.acquire(lock('s2', '/srv/home/s', { ...shared, principal: 'bob' }), NOW, bounds);
      await assert.rejects(
        store.acquire(lock('s3', '/srv/home/s', { ...shared, principal: 'carol' }), NOW, bounds),
        {
          name: 'LockLimitError',
          limit: 'locks-per-resource',
        },
      );
      await store.acquire(lock('a2', '/srv/home/a2'), NOW, bounds);
      await store.acquire(lock('a3', '/srv/home/a3'), NOW, bounds);
      await assert.rejects(store.acquire(lock('a4', '/srv/home/a4'), NOW, bounds), (error) => {
        return error instanceof LockLimitError && error.limit === 'locks-per-principal';
      });
      await store.acquire(lock('b2', '/srv/home/b2', { principal: 'bob' }), NOW, bounds);
      await assert.rejects(
        store.acquire(lock('big', '/srv/home/big', { principal: 'dave' }), NOW, {
          ...bounds,
          maxStoreBytes: 100,
        }),
        { limit: 'store-full' },
      );
      assert.equal(await store.get('a4', NOW), null, 'nothing refused was stored');
      assert.equal(await store.get('big', NOW), null);
    } finally {
      done();
    }
  });

  test(`${name}: a lock database that was full takes locks again once locks are removed`, async () => {
    const { store, done } = await make();
    try {
      const bounds: LockBounds = { maxPerPrincipal: 10_000, maxPerResource: 64, maxStoreBytes: 256 * 1024 };
      const ownerXml = `<D:owner xmlns:D="DAV:">${'x'.repeat(2000)}</D:owner>`;
      const taken: string[] = [];
      let full = false;
      for (let index = 0; index < 2000 && !full; index++) {
        try {
          await store.acquire(lock(`f${index}`, `/srv/home/f${index}`, { ownerXml }), NOW, bounds);
          taken.push(`f${index}`);
        } catch (error) {
          assert.ok(error instanceof LockLimitError && error.limit === 'store-full', String(error));
          full = true;
        }
      }
      assert.ok(full && taken.length > 0, 'the store filled up');
      for (const token of taken) await store.remove(token);
      // Space that held removed (or expired) locks is free again: nobody is refused for ever.
      await store.acquire(lock('again', '/srv/home/again', { ownerXml }), NOW, bounds);
      assert.equal((await store.get('again', NOW))?.root, '/srv/home/again');
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
      WIDE,
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

test('PostgresLockStore: two stores (two nodes) on one database never both grant overlapping locks', async () => {
  assert.ok(postgres, 'PostgreSQL 15 is not installed');
  const url = await postgres.createDatabase();
  // Two nodes starting together migrate the schema once between them.
  const [a, b] = [postgresStore(url), postgresStore(url)];
  try {
    await Promise.all([a.ensureSchema(), b.ensureSchema()]);
    for (let round = 0; round < 100; round++) {
      // Same resource in even rounds; in odd rounds one node locks a collection, the other a member.
      const upper = `/srv/home/r${round}`;
      const lower = round % 2 === 0 ? upper : `${upper}/member`;
      const [first, second] = await Promise.all([
        a.acquire(lock(`a${round}`, upper), Date.now(), WIDE),
        b.acquire(lock(`b${round}`, lower, { principal: 'bob' }), Date.now(), WIDE),
      ]);
      const granted = [first, second].filter((conflicts) => conflicts.length === 0).length;
      assert.equal(granted, 1, `round ${round}: exactly one of the two grants wins`);
    }
  } finally {
    a.close();
    b.close();
  }
});

test('PostgresLockStore: an unreachable database is LockStoreUnavailableError, never "no locks"', async () => {
  const store = postgresStore('postgresql://privdav:x@127.0.0.1:1/privdav');
  try {
    await assert.rejects(store.hasLocks(Date.now()), { name: 'LockStoreUnavailableError' });
    await assert.rejects(store.acquire(lock('x', '/srv/home/x'), Date.now(), WIDE), {
      name: 'LockStoreUnavailableError',
    });
    await assert.rejects(store.covering('/srv/home/x', Date.now()), { name: 'LockStoreUnavailableError' });
  } finally {
    store.close();
  }
});
