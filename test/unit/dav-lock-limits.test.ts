// Locks are a commons: owners, locks per principal, per resource and the database's size are
// bounded (403/507 with a reason), refreshes stay within the maximum timeout, and a listing with
// many locks present costs members + locks, not their product.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  davRequest,
  lockBody,
  PRINCIPAL_HEADER,
  startDavTestServer,
  takeLock,
  type DavTestServer,
} from '../support/dav-test-server';

let server: DavTestServer;
before(async () => {
  server = await startDavTestServer({
    maxLockTimeoutS: 600,
    maxLockOwnerBytes: 1024,
    lockBounds: { maxPerPrincipal: 5, maxPerResource: 3, maxStoreBytes: 256 * 1024 * 1024 },
  });
});
after(() => server.close());

function write(file: string): void {
  fs.mkdirSync(path.dirname(path.join(server.root, file)), { recursive: true });
  fs.writeFileSync(path.join(server.root, file), file);
}

test('an owner larger than limits.max_lock_owner_bytes is refused with 403 and the key named', async () => {
  write('owner.txt');
  const res = await davRequest(server, 'LOCK', '/owner.txt', {
    body: lockBody('exclusive', 'x'.repeat(2000)),
  });
  assert.equal(res.status, 403);
  assert.match(res.body, /limits\.max_lock_owner_bytes/);
  assert.equal((await davRequest(server, 'PUT', '/owner.txt', { body: 'free' })).status, 204);
});

test('shared locks on one resource stop at limits.max_locks_per_resource (507)', async () => {
  write('shared.txt');
  const headers = { [PRINCIPAL_HEADER]: 'carol' };
  for (let i = 0; i < 3; i++) await takeLock(server, '/shared.txt', 'shared', headers);
  const res = await davRequest(server, 'LOCK', '/shared.txt', { headers, body: lockBody('shared') });
  assert.equal(res.status, 507);
  assert.match(res.body, /max_locks_per_resource/);
});

test('one principal stops at limits.max_locks_per_user (507); another principal still locks', async () => {
  const headers = { [PRINCIPAL_HEADER]: 'dave' };
  for (let i = 0; i < 5; i++) {
    write(`dave-${i}.txt`);
    await takeLock(server, `/dave-${i}.txt`, 'exclusive', headers);
  }
  write('dave-5.txt');
  const res = await davRequest(server, 'LOCK', '/dave-5.txt', { headers, body: lockBody('exclusive') });
  assert.equal(res.status, 507);
  assert.match(res.body, /max_locks_per_user/);
  await takeLock(server, '/dave-5.txt', 'exclusive', { [PRINCIPAL_HEADER]: 'erin' });
});

test('a refresh without Timeout renews for the lock’s own timeout, and never beyond the maximum', async () => {
  write('refresh.txt');
  const granted = await davRequest(server, 'LOCK', '/refresh.txt', {
    headers: { Timeout: 'Second-30', [PRINCIPAL_HEADER]: 'frank' },
    body: lockBody('exclusive'),
  });
  const token = String(granted.headers['lock-token']).slice(1, -1);
  const refresh = async (timeout?: string): Promise<string> => {
    const headers: Record<string, string> = { If: `(<${token}>)`, [PRINCIPAL_HEADER]: 'frank' };
    if (timeout !== undefined) headers.Timeout = timeout;
    const res = await davRequest(server, 'LOCK', '/refresh.txt', { headers });
    assert.equal(res.status, 200, res.body);
    return /<D:timeout>([^<]+)<\/D:timeout>/.exec(res.body)?.[1] ?? '';
  };
  assert.equal(await refresh(), 'Second-30');
  assert.equal(await refresh('Infinite'), 'Second-600');
  assert.equal(await refresh('Second-99999999'), 'Second-600');
});

test('the lock database stops at limits.max_lock_db_bytes (507)', async () => {
  const small = await startDavTestServer({
    maxLockOwnerBytes: 64 * 1024,
    lockBounds: { maxPerPrincipal: 1000, maxPerResource: 64, maxStoreBytes: 1024 * 1024 },
  });
  try {
    const owner = 'o'.repeat(60 * 1024);
    let granted = 0;
    let status = 0;
    for (let i = 0; i < 40 && status !== 507; i++) {
      fs.writeFileSync(path.join(small.root, `f${i}`), '');
      const res = await davRequest(small, 'LOCK', `/f${i}`, { body: lockBody('exclusive', owner) });
      status = res.status;
      if (res.status === 200) granted++;
      else assert.match(res.body, /max_lock_db_bytes/);
    }
    assert.equal(status, 507);
    assert.ok(granted >= 10 && granted <= 17, `granted ${granted} locks of 60 KiB under 1 MiB`);
    assert.ok(small.lockStore.bytesInUse() <= 1.1 * 1024 * 1024);
  } finally {
    await small.close();
  }
});

test('PROPFIND Depth 1 of 2,000 members with 10,000 locks on and below them costs members + locks, not their product', async () => {
  const many = await startDavTestServer();
  try {
    const now = Date.now();
    for (const name of ['locked', 'plain']) {
      const dir = path.join(many.root, name);
      fs.mkdirSync(dir);
      for (let member = 0; member < 2000; member++) fs.mkdirSync(path.join(dir, `m${member}`));
    }
    const real = fs.realpathSync(path.join(many.root, 'locked'));
    for (let member = 0; member < 2000; member++) {
      // Four shared locks on each member (shown in its lockdiscovery) and one on a member of it
      // (shown nowhere in this listing).
      for (let index = 0; index < 5; index++) {
        const below = index === 4 ? '/c' : '';
        await many.lockStore.acquire(
          {
            token: `opaquelocktoken:${randomUUID()}`,
            root: `${real}/m${member}${below}`,
            rootPath: `/locked/m${member}${below}`,
            principal: `p${member}`,
            scope: 'shared',
            depth: 0,
            ownerXml: '',
            timeoutS: 600,
            expiresMs: now + 600_000,
          },
          now,
          { maxPerPrincipal: 100, maxPerResource: 64, maxStoreBytes: 1e9 },
        );
      }
    }
    // One more lock on a member, taken through LOCK.
    const token = await takeLock(many, '/locked/m7', 'shared', { Depth: '0' });
    const fastest = async (dir: string): Promise<number> => {
      let best = Infinity;
      for (let run = 0; run < 3; run++) {
        const started = process.hrtime.bigint();
        const res = await davRequest(many, 'PROPFIND', `/${dir}/`, { headers: { Depth: '1' } });
        best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
        assert.equal(res.status, 207);
        assert.equal(res.body.split('<D:response>').length - 1, 2001);
        if (dir === 'locked')
          assert.equal(res.body.split(token).length - 1, 1, 'the lock on a member is shown once');
      }
      return best;
    };
    const plainMs = await fastest('plain');
    const lockedMs = await fastest('locked');
    console.log(
      `PROPFIND Depth 1, 2,000 members: ${plainMs.toFixed(0)} ms; with 10,000 locks on and below its members: ${lockedMs.toFixed(0)} ms`,
    );
    // Fetching 10,000 locks costs tens of milliseconds; comparing each member with each lock (20
    // million comparisons) cost 600 ms or more here.
    assert.ok(lockedMs - plainMs < 350, `locks added ${lockedMs - plainMs} ms`);
  } finally {
    await many.close();
  }
});
