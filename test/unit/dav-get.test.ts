// GET and HEAD: bodies, ranges, validators, RFC 9110 conditional requests, collection listings.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { once } from 'node:events';
import { davRequest, startDavTestServer, type DavTestServer } from '../support/dav-test-server';
import { isPeerOnThisHost } from '../../src/http/send-file';

let server: DavTestServer;
const small = 'hello, world\n';
const big = Buffer.alloc(300 * 1024, 'abcdefghij');

before(async () => {
  server = await startDavTestServer();
  fs.writeFileSync(path.join(server.root, 'small.txt'), small);
  fs.writeFileSync(path.join(server.root, 'big.bin'), big);
  fs.writeFileSync(path.join(server.root, 'empty'), '');
  fs.mkdirSync(path.join(server.root, 'dir <&>'));
  fs.writeFileSync(path.join(server.root, 'dir <&>', '<script>.html'), 'x');
});
after(() => server.close());

test('GET returns the body with ETag, Last-Modified, Content-Type and Accept-Ranges', async () => {
  const res = await davRequest(server, 'GET', '/small.txt');
  assert.equal(res.status, 200);
  assert.equal(res.body, small);
  assert.match(String(res.headers.etag), /^"[^"]+"$/);
  assert.equal(
    res.headers['last-modified'],
    fs.statSync(path.join(server.root, 'small.txt')).mtime.toUTCString(),
  );
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(res.headers['accept-ranges'], 'bytes');
  assert.equal(res.headers['content-length'], String(small.length));
});

test('GET of a large file streams all of it; HEAD sends headers only', async () => {
  const res = await davRequest(server, 'GET', '/big.bin');
  assert.equal(res.status, 200);
  assert.equal(res.body, big.toString('utf8'));
  const head = await davRequest(server, 'HEAD', '/big.bin');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(big.length));
  assert.equal(head.body, '');
});

test('GET of an empty file and of a missing file', async () => {
  assert.equal((await davRequest(server, 'GET', '/empty')).status, 200);
  assert.equal((await davRequest(server, 'GET', '/nope')).status, 404);
});

test('a single Range gives 206 with Content-Range, from anywhere in the file', async () => {
  const middle = await davRequest(server, 'GET', '/big.bin', { headers: { Range: 'bytes=100000-100009' } });
  assert.equal(middle.status, 206);
  assert.equal(middle.headers['content-range'], `bytes 100000-100009/${big.length}`);
  assert.equal(middle.body, big.subarray(100000, 100010).toString());
  const suffix = await davRequest(server, 'GET', '/small.txt', { headers: { Range: 'bytes=-6' } });
  assert.equal(suffix.body, small.slice(-6));
  const open = await davRequest(server, 'GET', '/big.bin', { headers: { Range: 'bytes=307000-' } });
  assert.equal(open.status, 206);
  assert.equal(open.body.length, big.length - 307000);
});

test('an unsatisfiable Range gives 416 with bytes */size; several ranges give the full body', async () => {
  const res = await davRequest(server, 'GET', '/small.txt', { headers: { Range: 'bytes=1000-' } });
  assert.equal(res.status, 416);
  assert.equal(res.headers['content-range'], `bytes */${small.length}`);
  const multi = await davRequest(server, 'GET', '/small.txt', { headers: { Range: 'bytes=0-1,3-4' } });
  assert.equal(multi.status, 200);
  assert.equal(multi.body, small);
});

test('If-None-Match and If-Modified-Since give 304; If-Match and If-Unmodified-Since 412', async () => {
  const first = await davRequest(server, 'GET', '/small.txt');
  const etag = String(first.headers.etag);
  const lastModified = String(first.headers['last-modified']);
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-None-Match': etag } })).status,
    304,
  );
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-None-Match': '*' } })).status,
    304,
  );
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-None-Match': '"other"' } })).status,
    200,
  );
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-Modified-Since': lastModified } }))
      .status,
    304,
  );
  const old = 'Mon, 01 Jan 2001 00:00:00 GMT';
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-Modified-Since': old } })).status,
    200,
  );
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-Match': '"other"' } })).status,
    412,
  );
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-Match': etag } })).status,
    200,
  );
  assert.equal(
    (await davRequest(server, 'GET', '/small.txt', { headers: { 'If-Unmodified-Since': old } })).status,
    412,
  );
  // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
  const both = { 'If-None-Match': '"other"', 'If-Modified-Since': lastModified };
  assert.equal((await davRequest(server, 'GET', '/small.txt', { headers: both })).status, 200);
});

test('If-Range with the current ETag honours the Range, a stale one sends everything', async () => {
  const etag = String((await davRequest(server, 'HEAD', '/small.txt')).headers.etag);
  const current = await davRequest(server, 'GET', '/small.txt', {
    headers: { Range: 'bytes=0-4', 'If-Range': etag },
  });
  assert.equal(current.status, 206);
  const stale = await davRequest(server, 'GET', '/small.txt', {
    headers: { Range: 'bytes=0-4', 'If-Range': '"stale"' },
  });
  assert.equal(stale.status, 200);
  assert.equal(stale.body, small);
});

test('GET of a collection is an HTML listing with escaped names and encoded links', async () => {
  const res = await davRequest(server, 'GET', '/dir%20%3C%26%3E/');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/html/);
  assert.ok(res.body.includes('href="/dir%20%3C%26%3E/%3Cscript%3E.html"'), res.body);
  assert.ok(res.body.includes('&lt;script&gt;.html'));
  assert.ok(!res.body.includes('<script>'));
  const root = await davRequest(server, 'GET', '/');
  assert.ok(root.body.includes('small.txt'));
  assert.ok(root.body.includes('href="/dir%20%3C%26%3E/"'));
});

/** Raw bytes of everything the server sends on one connection until it closes. */
async function rawExchange(request: string, hangUpAfter?: number): Promise<Buffer> {
  const socket = net.connect(server.port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  let total = 0;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    total += chunk.length;
    if (hangUpAfter !== undefined && total >= hangUpAfter) socket.destroy();
  });
  socket.write(request);
  await once(socket, 'close');
  return Buffer.concat(chunks);
}

test('pipelined GETs of large files on one connection come back whole and in order', async () => {
  // The first response owns the socket (sendfile); the ones queued behind it are streamed.
  const get = 'GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n';
  const ranged = 'GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-200999\r\n\r\n';
  const last = 'GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const raw = await rawExchange(get + ranged + get + last);
  const bodies: Buffer[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const headerEnd = rest.indexOf('\r\n\r\n');
    assert.ok(headerEnd > 0, 'a response header');
    const header = rest.subarray(0, headerEnd).toString('latin1');
    const length = Number(/content-length: (\d+)/i.exec(header)?.[1]);
    bodies.push(rest.subarray(headerEnd + 4, headerEnd + 4 + length));
    rest = rest.subarray(headerEnd + 4 + length);
  }
  assert.equal(bodies.length, 4);
  assert.ok(bodies[0]!.equals(big));
  assert.ok(bodies[1]!.equals(big.subarray(1000, 201000)));
  assert.ok(bodies[2]!.equals(big));
  assert.equal(bodies[3]!.toString(), small);
});

test('a client that hangs up in the middle of a large body leaves the server serving', async () => {
  for (let i = 0; i < 5; i++) {
    const raw = await rawExchange('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n', 70_000);
    assert.ok(raw.length < big.length);
  }
  const res = await davRequest(server, 'GET', '/big.bin');
  assert.equal(res.status, 200);
  assert.equal(res.body.length, big.length);
  assert.deepEqual(server.problems, []);
});

test('a file body is copied from a mapping for a peer on this host, sent with sendfile otherwise', () => {
  const peer = (remoteAddress: string | undefined, localAddress = '192.0.2.1'): net.Socket =>
    ({ remoteAddress, localAddress }) as unknown as net.Socket;
  for (const local of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1'])
    assert.equal(isPeerOnThisHost(peer(local)), true, local);
  // The host's own address: the kernel routes it over loopback too.
  assert.equal(isPeerOnThisHost(peer('192.0.2.1', '192.0.2.1')), true);
  for (const remote of ['192.0.2.7', '::ffff:192.0.2.7', '2001:db8::1', '128.0.0.1', '::2'])
    assert.equal(isPeerOnThisHost(peer(remote)), false, remote);
  assert.equal(isPeerOnThisHost(peer(undefined)), false);
});
