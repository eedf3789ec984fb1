// OPTIONS over a real server: WebDAV class 1 and 2, and Allow per kind of resource.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { davRequest, startDavTestServer, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
before(async () => {
  server = await startDavTestServer();
  fs.writeFileSync(path.join(server.root, 'file.txt'), 'x');
});
after(() => server.close());

test('OPTIONS advertises DAV 1, 2 and MS-Author-Via on any URL', async () => {
  for (const target of ['/', '/file.txt', '/missing', '*']) {
    const res = await davRequest(server, 'OPTIONS', target);
    assert.equal(res.status, 200, target);
    assert.equal(res.headers.dav, '1, 2, sabredav-partialupdate');
    assert.equal(res.headers['ms-author-via'], 'DAV');
  }
});

test('Allow depends on the resource: PUT on files, MKCOL where nothing is mapped', async () => {
  const allowed = async (target: string): Promise<string[]> =>
    String((await davRequest(server, 'OPTIONS', target)).headers.allow).split(', ');
  assert.ok((await allowed('/file.txt')).includes('PUT'));
  assert.ok(!(await allowed('/')).includes('PUT'));
  assert.ok((await allowed('/')).includes('PROPFIND'));
  assert.ok((await allowed('/missing')).includes('MKCOL'));
  assert.ok(!(await allowed('/missing')).includes('GET'));
});

test('a method WebDAV does not define here (TRACE) gives 405 with Allow', async () => {
  const res = await davRequest(server, 'TRACE', '/');
  assert.equal(res.status, 405);
  assert.match(String(res.headers.allow), /PROPFIND/);
});
