// MKCOL: 201, and the refusals RFC 4918 §9.3 lists.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { davRequest, startDavTestServer, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
before(async () => {
  server = await startDavTestServer();
});
after(() => server.close());

test('MKCOL creates a collection (201), with or without the trailing slash', async () => {
  assert.equal((await davRequest(server, 'MKCOL', '/a/')).status, 201);
  assert.equal((await davRequest(server, 'MKCOL', '/a/b')).status, 201);
  assert.ok(fs.statSync(path.join(server.root, 'a', 'b')).isDirectory());
});

test('MKCOL where something exists gives 405', async () => {
  assert.equal((await davRequest(server, 'MKCOL', '/a/')).status, 405);
  fs.writeFileSync(path.join(server.root, 'plain'), 'x');
  assert.equal((await davRequest(server, 'MKCOL', '/plain/')).status, 405);
  assert.equal((await davRequest(server, 'MKCOL', '/')).status, 405);
});

test('MKCOL without a parent gives 409', async () => {
  assert.equal((await davRequest(server, 'MKCOL', '/no/such/parent/')).status, 409);
  assert.equal((await davRequest(server, 'MKCOL', '/plain/child/')).status, 409);
});

test('MKCOL with a body gives 415 and creates nothing', async () => {
  const res = await davRequest(server, 'MKCOL', '/withbody/', {
    body: '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:"/>',
    headers: { 'Content-Type': 'application/xml' },
  });
  assert.equal(res.status, 415);
  assert.equal(fs.existsSync(path.join(server.root, 'withbody')), false);
});
