// LOCK and UNLOCK: exclusive and shared locks, depth, timeouts, refresh, unmapped URLs, the If:
// header unlocking writes (also for members of locked collections), and principals.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseXml } from '../../src/dav/xml';
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
  server = await startDavTestServer({ maxLockTimeoutS: 600 });
});
after(() => server.close());

function write(file: string, content = file): void {
  fs.mkdirSync(path.dirname(path.join(server.root, file)), { recursive: true });
  fs.writeFileSync(path.join(server.root, file), content);
}

test('LOCK answers 200 with Lock-Token and a lockdiscovery naming owner, depth, timeout and root', async () => {
  write('doc.txt');
  const res = await davRequest(server, 'LOCK', '/doc.txt', {
    headers: { Timeout: 'Second-120', Depth: '0' },
    body: lockBody('exclusive', '<D:href>mailto:alice@example.org</D:href>'),
  });
  assert.equal(res.status, 200);
  assert.match(String(res.headers['lock-token']), /^<opaquelocktoken:[0-9a-f-]{36}>$/);
  parseXml(Buffer.from(res.body));
  assert.match(res.body, /<D:lockscope><D:exclusive\/><\/D:lockscope><D:depth>0<\/D:depth>/);
  assert.match(res.body, /mailto:alice@example.org/);
  assert.match(res.body, /<D:timeout>Second-1[12]\d<\/D:timeout>/);
  assert.match(res.body, /<D:lockroot><D:href>\/doc.txt<\/D:href><\/D:lockroot>/);
});

test('Timeout is capped at the configured maximum, Infinite gets the maximum', async () => {
  write('capped.txt');
  const res = await davRequest(server, 'LOCK', '/capped.txt', {
    headers: { Timeout: 'Infinite, Second-4100000000' },
    body: lockBody('shared'),
  });
  assert.match(res.body, /<D:timeout>Second-600<\/D:timeout>/);
});

test('a second exclusive lock conflicts (423); shared locks coexist', async () => {
  write('ex.txt');
  write('sh.txt');
  await takeLock(server, '/ex.txt');
  const conflict = await davRequest(server, 'LOCK', '/ex.txt', { body: lockBody('exclusive') });
  assert.equal(conflict.status, 423);
  assert.match(conflict.body, /no-conflicting-lock/);
  assert.equal((await davRequest(server, 'LOCK', '/ex.txt', { body: lockBody('shared') })).status, 423);
  await takeLock(server, '/sh.txt', 'shared');
  await takeLock(server, '/sh.txt', 'shared');
  assert.equal((await davRequest(server, 'LOCK', '/sh.txt', { body: lockBody('exclusive') })).status, 423);
});

test('writes to a locked file need its token in If:; a wrong token in a true If: is still 423', async () => {
  write('w.txt');
  const token = await takeLock(server, '/w.txt');
  assert.equal((await davRequest(server, 'PUT', '/w.txt', { body: 'no' })).status, 423);
  const corrupt = { If: `(<${token}x>) (Not <DAV:no-lock>)` };
  assert.equal((await davRequest(server, 'PUT', '/w.txt', { body: 'no', headers: corrupt })).status, 423);
  const etag = String((await davRequest(server, 'HEAD', '/w.txt')).headers.etag);
  const stale = { If: `(<${token}> ["stale"])` };
  assert.equal((await davRequest(server, 'PUT', '/w.txt', { body: 'no', headers: stale })).status, 412);
  const good = { If: `(<${token}> [${etag}])` };
  assert.equal((await davRequest(server, 'PUT', '/w.txt', { body: 'yes', headers: good })).status, 204);
  assert.equal(fs.readFileSync(path.join(server.root, 'w.txt'), 'utf8'), 'yes');
  assert.equal(
    (
      await davRequest(server, 'PROPPATCH', '/w.txt', {
        body: '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set></D:propertyupdate>',
      })
    ).status,
    423,
  );
});

test('a token is usable only by the principal who created the lock', async () => {
  write('mine.txt');
  const token = await takeLock(server, '/mine.txt');
  const asBob = { If: `(<${token}>)`, [PRINCIPAL_HEADER]: 'bob' };
  assert.equal((await davRequest(server, 'PUT', '/mine.txt', { body: 'bob', headers: asBob })).status, 423);
  const unlockAsBob = { 'Lock-Token': `<${token}>`, [PRINCIPAL_HEADER]: 'bob' };
  assert.equal((await davRequest(server, 'UNLOCK', '/mine.txt', { headers: unlockAsBob })).status, 403);
  assert.equal(
    (await davRequest(server, 'UNLOCK', '/mine.txt', { headers: { 'Lock-Token': `<${token}>` } })).status,
    204,
  );
  assert.equal(
    (await davRequest(server, 'PUT', '/mine.txt', { body: 'bob', headers: { [PRINCIPAL_HEADER]: 'bob' } }))
      .status,
    204,
  );
});

test('a depth-infinity lock on a collection protects its members; a tagged If: with its token unlocks them', async () => {
  write('coll/member.txt');
  const token = await takeLock(server, '/coll/');
  assert.equal((await davRequest(server, 'PUT', '/coll/member.txt', { body: 'x' })).status, 423);
  assert.equal((await davRequest(server, 'PUT', '/coll/new.txt', { body: 'x' })).status, 423);
  assert.equal((await davRequest(server, 'MKCOL', '/coll/sub/')).status, 423);
  assert.equal(
    (await davRequest(server, 'LOCK', '/coll/member.txt', { body: lockBody('exclusive') })).status,
    423,
  );
  const tagged = { If: `<${server.origin}/coll/> (<${token}>)` };
  assert.equal(
    (await davRequest(server, 'PUT', '/coll/member.txt', { body: 'x', headers: tagged })).status,
    204,
  );
  assert.equal(
    (await davRequest(server, 'PUT', '/coll/new.txt', { body: 'x', headers: { If: `(<${token}>)` } })).status,
    201,
  );
  const discovery = await davRequest(server, 'PROPFIND', '/coll/new.txt', {
    headers: { Depth: '0' },
    body: '<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>',
  });
  assert.ok(discovery.body.includes(token), "members report the collection's lock");
  assert.match(discovery.body, /<D:lockroot><D:href>\/coll<\/D:href>/);
});

test('LOCK without a body refreshes the lock named in If:, also through a member URL', async () => {
  write('refresh/inner.txt');
  const token = await takeLock(server, '/refresh/');
  const res = await davRequest(server, 'LOCK', '/refresh/inner.txt', {
    headers: { If: `(<${token}>)`, Timeout: 'Second-500' },
  });
  assert.equal(res.status, 200);
  assert.match(res.body, /<D:timeout>Second-(500|499)<\/D:timeout>/);
  assert.ok(res.body.includes(token));
  assert.equal(
    (await davRequest(server, 'LOCK', '/refresh/', { headers: { If: '(<opaquelocktoken:nope>)' } })).status,
    412,
  );
  assert.equal((await davRequest(server, 'LOCK', '/refresh/')).status, 400);
});

test('LOCK on an unmapped URL creates an empty locked resource (201)', async () => {
  const res = await davRequest(server, 'LOCK', '/fresh.txt', { body: lockBody('exclusive') });
  assert.equal(res.status, 201);
  assert.equal(fs.readFileSync(path.join(server.root, 'fresh.txt'), 'utf8'), '');
  assert.equal(
    (await davRequest(server, 'LOCK', '/no/parent.txt', { body: lockBody('exclusive') })).status,
    409,
  );
  assert.equal((await davRequest(server, 'PUT', '/fresh.txt', { body: 'x' })).status, 423);
});

test("UNLOCK: 204 for the lock's resource, 409 lock-token-matches-request-uri elsewhere, 400 without a token", async () => {
  write('u1.txt');
  write('u2.txt');
  const token = await takeLock(server, '/u1.txt');
  const elsewhere = await davRequest(server, 'UNLOCK', '/u2.txt', {
    headers: { 'Lock-Token': `<${token}>` },
  });
  assert.equal(elsewhere.status, 409);
  assert.match(elsewhere.body, /lock-token-matches-request-uri/);
  assert.equal((await davRequest(server, 'UNLOCK', '/u1.txt')).status, 400);
  assert.equal(
    (await davRequest(server, 'UNLOCK', '/u1.txt', { headers: { 'Lock-Token': `<${token}>` } })).status,
    204,
  );
  assert.equal(
    (await davRequest(server, 'UNLOCK', '/u1.txt', { headers: { 'Lock-Token': `<${token}>` } })).status,
    409,
  );
});

test('locks survive a restart of the server (same lock database)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-restart-'));
  const root = path.join(dir, 'share');
  const lockFile = path.join(dir, 'locks.sqlite');
  try {
    const first = await startDavTestServer({ root, lockFile });
    fs.writeFileSync(path.join(root, 'kept.txt'), 'x');
    const token = await takeLock(first, '/kept.txt');
    await first.close();
    const second = await startDavTestServer({ root, lockFile });
    try {
      assert.equal((await davRequest(second, 'PUT', '/kept.txt', { body: 'y' })).status, 423);
      const withToken = { If: `(<${token}>)` };
      assert.equal(
        (await davRequest(second, 'PUT', '/kept.txt', { body: 'y', headers: withToken })).status,
        204,
      );
    } finally {
      await second.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with locks present, requests under a missing parent still get 409', async () => {
  write('present.txt');
  const token = await takeLock(server, '/present.txt');
  assert.equal((await davRequest(server, 'MKCOL', '/no/such/parent/')).status, 409);
  assert.equal((await davRequest(server, 'PUT', '/no/such/file', { body: 'x' })).status, 409);
  assert.equal((await davRequest(server, 'LOCK', '/no/such/file', { body: lockBody('shared') })).status, 409);
  const unlock = await davRequest(server, 'UNLOCK', '/no/such/file', {
    headers: { 'Lock-Token': `<${token}>` },
  });
  assert.equal(unlock.status, 409);
});
