// Single requests that crashed webdav-server 2.6.3, XML bombs and malformed input: each gets a
// correct answer quickly, and the server goes on serving.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { davRequest, startDavTestServer, takeLock, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
before(async () => {
  server = await startDavTestServer({ maxXmlBytes: 1024 * 1024 });
  fs.writeFileSync(path.join(server.root, 'file.txt'), 'content');
});
after(() => server.close());

async function stillServing(): Promise<void> {
  const res = await davRequest(server, 'GET', '/file.txt');
  assert.equal(res.body, 'content');
  assert.deepEqual(server.problems, [], 'nothing was logged as a server failure');
}

/** Sends raw bytes on a fresh connection and returns what came back before the server closed. */
function rawExchange(request: string, waitMs = 2000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(received);
    }, waitMs);
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.on('error', reject);
    socket.write(request);
  });
}

test('an untagged If: (<opaquelocktoken:…>) header, as davfs2 sends after LOCK, is answered', async () => {
  const token = await takeLock(server, '/file.txt');
  const withToken = await davRequest(server, 'PUT', '/file.txt', {
    body: 'content',
    headers: { If: `(<${token}>)` },
  });
  assert.equal(withToken.status, 204);
  const unknown = await davRequest(server, 'PUT', '/file.txt', {
    body: 'x',
    headers: { If: '(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)' },
  });
  assert.equal(unknown.status, 412);
  const onGet = await davRequest(server, 'GET', '/file.txt', { headers: { If: `(<${token}>)` } });
  assert.equal(onGet.status, 200);
  assert.equal(
    (await davRequest(server, 'UNLOCK', '/file.txt', { headers: { 'Lock-Token': `<${token}>` } })).status,
    204,
  );
  await stillServing();
});

test('a PROPPATCH with two <set> blocks, as neon sends, is answered', async () => {
  const res = await davRequest(server, 'PROPPATCH', '/file.txt', {
    body:
      '<?xml version="1.0" encoding="utf-8"?><propertyupdate xmlns="DAV:"><set><prop><a xmlns="urn:n">1</a></prop></set>' +
      '<set><prop><b xmlns="urn:n">2</b></prop></set></propertyupdate>',
  });
  assert.equal(res.status, 207);
  assert.equal((res.body.match(/200 OK/g) ?? []).length, 1);
  await stillServing();
});

test('Content-Length: 99999999999 on PROPFIND gives 413 at once, without reading a body', async () => {
  const started = Date.now();
  const answer = await rawExchange(
    `PROPFIND / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nDepth: 0\r\nContent-Length: 99999999999\r\n\r\n<`,
  );
  assert.match(answer, /^HTTP\/1.1 413 /);
  assert.match(answer, /Connection: close/i);
  assert.ok(Date.now() - started < 1500, 'answered without waiting for the body');
  await stillServing();
});

test('a billion-laughs body gives 400 fast', async () => {
  const entities = Array.from({ length: 10 }, (_, i) =>
    i === 0 ? '<!ENTITY lol0 "lol">' : `<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`,
  ).join('');
  const body = `<?xml version="1.0"?><!DOCTYPE D:propfind [${entities}]><D:propfind xmlns:D="DAV:"><D:prop><x xmlns="urn:x">&lol9;</x></D:prop></D:propfind>`;
  const started = Date.now();
  for (const method of ['PROPFIND', 'PROPPATCH', 'LOCK']) {
    assert.equal((await davRequest(server, method, '/file.txt', { body })).status, 400, method);
  }
  assert.ok(Date.now() - started < 1000);
  await stillServing();
});

test('100,000 levels of nesting give 400 fast and no memory spike', async () => {
  const body =
    '<D:propfind xmlns:D="DAV:">' + '<x>'.repeat(100_000) + '</x>'.repeat(100_000) + '</D:propfind>';
  const rssBefore = process.memoryUsage().rss;
  const started = Date.now();
  assert.equal((await davRequest(server, 'PROPFIND', '/', { body, headers: { Depth: '0' } })).status, 400);
  assert.ok(Date.now() - started < 1000);
  assert.ok(process.memoryUsage().rss - rssBefore < 50 * 1024 * 1024, 'under 50 MB more resident memory');
  await stillServing();
});

test('an XML body over maxXmlBytes gives 413, declared or chunked', async () => {
  const big = '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>' + ' '.repeat(1024 * 1024);
  assert.equal((await davRequest(server, 'PROPFIND', '/', { body: big })).status, 413);
  const chunked = await rawExchange(
    `PROPFIND / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `100000\r\n${' '.repeat(0x100000)}\r\n100000\r\n${' '.repeat(0x100000)}\r\n`,
  );
  assert.match(chunked, /^HTTP\/1.1 413 /);
  await stillServing();
});

test('malformed URLs and headers give 400, never a crash', async () => {
  for (const target of ['/%00', '/a%2Fb', '/%zz', '/a/../../etc/passwd', '/%2e%2e/%2e%2e/']) {
    assert.equal((await davRequest(server, 'GET', target)).status, 400, target);
  }
  assert.equal(
    (await davRequest(server, 'PUT', '/file.txt', { body: 'x', headers: { If: '(<unterminated' } })).status,
    400,
  );
  assert.equal((await davRequest(server, 'PROPFIND', '/', { headers: { Depth: 'banana' } })).status, 400);
  assert.equal(
    (await davRequest(server, 'COPY', '/file.txt', { headers: { Destination: 'http://[::1' } })).status,
    400,
  );
  assert.equal(
    (await davRequest(server, 'COPY', '/file.txt', { headers: { Destination: '/x', Overwrite: 'maybe' } }))
      .status,
    400,
  );
  assert.equal(
    (await davRequest(server, 'LOCK', '/file.txt', { body: '<D:lockinfo xmlns:D="DAV:"/>' })).status,
    400,
  );
  assert.equal((await davRequest(server, 'LOCK', '/file.txt', { body: 'not xml' })).status, 400);
  await stillServing();
});
