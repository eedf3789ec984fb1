// PROPPATCH: ordered, atomic updates of dead properties (in xattrs), protected live properties,
// and Windows' Win32 properties.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { davRequest, startDavTestServer, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
before(async () => {
  server = await startDavTestServer();
  fs.writeFileSync(path.join(server.root, 'f.txt'), 'x');
});
after(() => server.close());

function update(body: string): string {
  return `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">${body}</D:propertyupdate>`;
}

async function getProp(name: string, ns = 'urn:z'): Promise<string> {
  const res = await davRequest(server, 'PROPFIND', '/f.txt', {
    headers: { Depth: '0' },
    body: `<D:propfind xmlns:D="DAV:"><D:prop><P:${name} xmlns:P="${ns}"/></D:prop></D:propfind>`,
  });
  return res.body;
}

test('set then read back a dead property with nested XML and its namespaces', async () => {
  const res = await davRequest(server, 'PROPPATCH', '/f.txt', {
    body: update(
      '<D:set><D:prop><Z:nested><inner xmlns="urn:other" a="1">v &amp; w</inner></Z:nested></D:prop></D:set>',
    ),
  });
  assert.equal(res.status, 207);
  assert.match(res.body, /<X:nested xmlns:X="urn:z"\/><\/D:prop><D:status>HTTP\/1.1 200 OK/);
  assert.ok(
    (await getProp('nested')).includes(
      '<Z:nested xmlns:Z="urn:z"><inner xmlns="urn:other" a="1">v &amp; w</inner></Z:nested>',
    ),
  );
});

test('two set blocks and a remove apply in document order', async () => {
  const res = await davRequest(server, 'PROPPATCH', '/f.txt', {
    body: update(
      '<D:set><D:prop><Z:a>1</Z:a></D:prop></D:set><D:set><D:prop><Z:b>2</Z:b><Z:a>3</Z:a></D:prop></D:set>' +
        '<D:remove><D:prop><Z:b/></D:prop></D:remove>',
    ),
  });
  assert.equal(res.status, 207);
  assert.ok(!res.body.includes('424'));
  assert.match(await getProp('a'), /<Z:a xmlns:Z="urn:z">3<\/Z:a>/);
  assert.match(await getProp('b'), /404 Not Found/);
});

test('a protected live property fails with 403 and everything else with 424, unapplied', async () => {
  const res = await davRequest(server, 'PROPPATCH', '/f.txt', {
    body: update('<D:set><D:prop><Z:c>new</Z:c><D:getetag>"forged"</D:getetag></D:prop></D:set>'),
  });
  assert.equal(res.status, 207);
  assert.match(
    res.body,
    /<D:getetag\/><\/D:prop><D:status>HTTP\/1.1 403 Forbidden<\/D:status><D:error><D:cannot-modify-protected-property\/>/,
  );
  assert.match(res.body, /<X:c xmlns:X="urn:z"\/><\/D:prop><D:status>HTTP\/1.1 424 Failed Dependency/);
  assert.match(await getProp('c'), /404 Not Found/);
});

test("Win32LastModifiedTime sets the file's mtime; other Win32 properties are accepted", async () => {
  const res = await davRequest(server, 'PROPPATCH', '/f.txt', {
    body:
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>' +
      '<Z:Win32CreationTime>Mon, 01 Jan 2001 00:00:00 GMT</Z:Win32CreationTime>' +
      '<Z:Win32LastAccessTime>Tue, 02 Jan 2001 00:00:00 GMT</Z:Win32LastAccessTime>' +
      '<Z:Win32LastModifiedTime>Wed, 03 Jan 2001 04:05:06 GMT</Z:Win32LastModifiedTime>' +
      '<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>' +
      '</D:prop></D:set></D:propertyupdate>',
  });
  assert.equal(res.status, 207);
  assert.ok(!/ 4\d\d /.test(res.body), res.body);
  const stat = fs.statSync(path.join(server.root, 'f.txt'));
  assert.equal(stat.mtime.toUTCString(), 'Wed, 03 Jan 2001 04:05:06 GMT');
});

test('PROPPATCH of a missing resource gives 404, of a malformed body 400', async () => {
  assert.equal(
    (
      await davRequest(server, 'PROPPATCH', '/missing', {
        body: update('<D:set><D:prop><Z:a/></D:prop></D:set>'),
      })
    ).status,
    404,
  );
  assert.equal(
    (await davRequest(server, 'PROPPATCH', '/f.txt', { body: '<D:propfind xmlns:D="DAV:"/>' })).status,
    400,
  );
  assert.equal((await davRequest(server, 'PROPPATCH', '/f.txt', { body: update('') })).status, 400);
  assert.equal((await davRequest(server, 'PROPPATCH', '/f.txt')).status, 400);
});
