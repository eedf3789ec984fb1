// PROPFIND: allprop/propname/prop, Depth 0/1/infinity and its bound, live and quota properties,
// well-formed streamed multistatus.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseXml } from '../../src/dav/xml';
import { davRequest, startDavTestServer, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
let bounded: DavTestServer;
before(async () => {
  server = await startDavTestServer();
  bounded = await startDavTestServer({ maxInfinityEntries: 5 });
  fs.mkdirSync(path.join(server.root, 'dir', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(server.root, 'dir', 'a.txt'), 'hello');
  fs.writeFileSync(path.join(server.root, 'dir', 'sub', 'b & <c>.pdf'), 'x');
  for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(bounded.root, `f${i}`), '');
  for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(server.root, 'dir', 'sub', `m${i}`), '');
});
after(async () => {
  await server.close();
  await bounded.close();
});

function propfind(target: string, depth: string, body?: string): ReturnType<typeof davRequest> {
  return davRequest(server, 'PROPFIND', target, { headers: { Depth: depth }, body });
}

function hrefs(body: string): string[] {
  return [...body.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map((match) => match[1]);
}

test('an empty body is allprop: live properties, no quota (RFC 4331), well-formed XML', async () => {
  const res = await propfind('/dir/a.txt', '0');
  assert.equal(res.status, 207);
  assert.match(String(res.headers['content-type']), /application\/xml/);
  parseXml(Buffer.from(res.body));
  for (const name of [
    'creationdate',
    'getcontentlength>5<',
    'getetag',
    'getlastmodified',
    'resourcetype/',
    'supportedlock',
    'lockdiscovery',
    'displayname>a.txt<',
    'getcontenttype>text/plain',
  ]) {
    assert.ok(res.body.includes(name), name);
  }
  assert.ok(!res.body.includes('quota'));
});

test('Depth 1 lists the collection and its members, collections with a trailing slash', async () => {
  const res = await propfind('/dir', '1');
  assert.deepEqual(hrefs(res.body).sort(), ['/dir/', '/dir/a.txt', '/dir/sub/']);
  assert.ok(res.body.includes('<D:resourcetype><D:collection/></D:resourcetype>'));
});

test('Depth infinity walks the tree and percent-encodes hrefs', async () => {
  const res = await propfind(
    '/dir/',
    'infinity',
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>',
  );
  const listed = hrefs(res.body);
  assert.equal(listed.length, 1004);
  assert.ok(listed.includes('/dir/sub/b%20%26%20%3Cc%3E.pdf'), listed.slice(0, 5).join());
});

test('Depth infinity past the bound gives 403 propfind-finite-depth', async () => {
  const res = await davRequest(bounded, 'PROPFIND', '/', { headers: { Depth: 'infinity' } });
  assert.equal(res.status, 403);
  assert.match(res.body, /<D:propfind-finite-depth\/>/);
  assert.equal((await davRequest(bounded, 'PROPFIND', '/', { headers: { Depth: '1' } })).status, 207);
});

test('prop asks for named properties: found ones in 200, unknown ones in 404', async () => {
  const res = await propfind(
    '/dir/a.txt',
    '0',
    '<D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><D:getcontentlength/><Z:nothing/><nons xmlns=""/></D:prop></D:propfind>',
  );
  assert.match(
    res.body,
    /<D:propstat><D:prop><D:getcontentlength>5<\/D:getcontentlength><\/D:prop><D:status>HTTP\/1.1 200 OK/,
  );
  assert.match(
    res.body,
    /<D:propstat><D:prop><X:nothing xmlns:X="urn:z"\/><nons\/><\/D:prop><D:status>HTTP\/1.1 404 Not Found/,
  );
  parseXml(Buffer.from(res.body));
});

test('quota properties come from the storage when asked for by name', async () => {
  const res = await propfind(
    '/dir/',
    '0',
    '<D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>',
  );
  assert.match(res.body, /<D:quota-available-bytes>\d+<\/D:quota-available-bytes>/);
  assert.match(res.body, /<D:quota-used-bytes>\d+<\/D:quota-used-bytes>/);
});

test('propname lists names without values; allprop with include adds quota', async () => {
  const names = await propfind('/dir/a.txt', '0', '<propfind xmlns="DAV:"><propname/></propfind>');
  assert.ok(names.body.includes('<D:getetag/>'));
  assert.ok(!names.body.includes('<D:getetag>'), 'names only, no values');
  const include = await propfind(
    '/dir/',
    '0',
    '<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:quota-used-bytes/></D:include></D:propfind>',
  );
  assert.match(include.body, /quota-used-bytes>\d+/);
});

test('Depth 1 over 1,000 members is one well-formed multistatus', async () => {
  const res = await propfind('/dir/sub/', '1');
  assert.equal(hrefs(res.body).length, 1002);
  parseXml(Buffer.from(res.body));
});

test('a client that hangs up in the middle of a multistatus is no server error, and the server keeps serving', async () => {
  // Megabytes of multistatus, more than the sockets hold: the server is still writing when the
  // client, which reads nothing, goes away.
  const big = path.join(server.root, 'big');
  fs.mkdirSync(big);
  for (let i = 0; i < 6000; i++) fs.writeFileSync(path.join(big, `member-with-a-longish-name-${i}`), '');
  for (let round = 0; round < 3; round++) {
    const socket = net.connect(server.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.pause();
    socket.write('PROPFIND /big/ HTTP/1.1\r\nHost: x\r\nDepth: 1\r\nContent-Length: 0\r\n\r\n');
    await sleep(150);
    socket.destroy();
  }
  await sleep(100);
  assert.deepEqual(server.problems, []);
  const res = await propfind('/big/', '1');
  assert.equal(hrefs(res.body).length, 6001);
});

test('names mostly outside ASCII come through the multistatus intact', async () => {
  // Long CJK names: the multistatus text has more UTF-8 bytes than characters, chunk after chunk.
  const names = Array.from({ length: 300 }, (_, i) => `${'漢字かな'.repeat(20)}-${i}`);
  fs.mkdirSync(path.join(server.root, 'cjk'));
  for (const name of names) fs.writeFileSync(path.join(server.root, 'cjk', name), '');
  const res = await propfind('/cjk/', '1');
  assert.equal(res.status, 207);
  parseXml(Buffer.from(res.body));
  const shown = [...res.body.matchAll(/<D:displayname>([^<]*)<\/D:displayname>/g)].map((match) => match[1]);
  assert.deepEqual(shown.slice(1).sort(), [...names].sort());
});

test('PROPFIND of a missing resource gives 404; bad bodies and depths 400', async () => {
  assert.equal((await propfind('/missing', '0')).status, 404);
  assert.equal((await propfind('/dir/', '0', '<D:propfind xmlns:D="DAV:"><D:prop>')).status, 400);
  assert.equal((await propfind('/dir/', '0', '<D:other xmlns:D="DAV:"/>')).status, 400);
  assert.equal((await propfind('/dir/', '2')).status, 400);
});

test('prop naming dead properties over a listing: each member shows its own in 200, the rest in 404', async () => {
  fs.mkdirSync(path.join(server.root, 'named'));
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(server.root, 'named', `f${i}`), 'abc');
  const set = await davRequest(server, 'PROPPATCH', '/named/f2', {
    body: '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>one &amp; two</Z:a></D:prop></D:set></D:propertyupdate>',
  });
  assert.equal(set.status, 207);
  const res = await propfind(
    '/named/',
    '1',
    '<D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:a/><D:getcontentlength/><Z:b/><D:displayname/></D:prop></D:propfind>',
  );
  assert.equal(res.status, 207);
  const multistatus = parseXml(Buffer.from(res.body));
  const responses = [...res.body.matchAll(/<D:response>.*?<\/D:response>/g)].map((match) => match[0]);
  assert.equal(responses.length, 6);
  assert.equal(multistatus.children.filter((child) => typeof child !== 'string').length, 6);
  for (const response of responses) {
    const [, href] = /<D:href>([^<]*)<\/D:href>/.exec(response)!;
    const [, ok = ''] = /<D:propstat><D:prop>(.*?)<\/D:prop><D:status>HTTP\/1.1 200 OK/.exec(response) ?? [];
    const [, missing = ''] =
      /<D:propstat><D:prop>((?:(?!<D:propstat>).)*?)<\/D:prop><D:status>HTTP\/1.1 404/.exec(response) ?? [];
    assert.match(ok, /<D:displayname>/, href);
    assert.match(missing, /<X:b xmlns:X="urn:z"\/>/, href);
    if (href === '/named/') assert.match(missing, /<D:getcontentlength\/>/);
    else assert.match(ok, /<D:getcontentlength>3<\/D:getcontentlength>/, href);
    if (href === '/named/f2') {
      assert.match(ok, /<Z:a xmlns:Z="urn:z">one &amp; two<\/Z:a>/);
      assert.doesNotMatch(missing, /urn:z"\/><X:b|X:a/);
    } else assert.match(missing, /<X:a xmlns:X="urn:z"\/>/, href);
  }
});

test('a multistatus of many batches, read slowly, arrives whole: plain and gzip-compressed alike', async () => {
  // 3,000 members naming 40 unknown properties: ~5 MB, about 80 batches, more than the sockets
  // hold, so batches wait for the reader and their buffers are reused while it reads.
  fs.mkdirSync(path.join(server.root, 'batches'));
  for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(server.root, 'batches', `member-${i}`), '');
  let names = '';
  for (let i = 0; i < 40; i++) names += `<p${i} xmlns="urn:many"/>`;
  const body = `<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>${names}</D:prop></D:propfind>`;
  const read = async (encoding: string): Promise<Buffer> => {
    const socket = net.connect(server.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      `PROPFIND /batches/ HTTP/1.1\r\nHost: x\r\nDepth: 1\r\nAccept-Encoding: ${encoding}\r\n` +
        `Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // A reader slower than the server: the server's batches wait in its buffers.
      socket.pause();
      setTimeout(() => socket.resume(), 1);
    });
    await once(socket, 'end');
    return Buffer.concat(chunks);
  };
  const plain = dechunk(await read('identity'));
  const compressed = zlib.gunzipSync(dechunk(await read('gzip')));
  assert.ok(plain.length > 4_000_000, `${plain.length} bytes`);
  assert.ok(plain.equals(compressed), 'the gzip body decompresses to the plain one');
  const text = plain.toString('utf8');
  parseXml(plain);
  assert.equal(hrefs(text).length, 3001);
  const missingBlocks = text.match(
    /<X:p0 xmlns:X="urn:many"\/>.*?<X:p39 xmlns:X="urn:many"\/><\/D:prop><D:status>HTTP\/1.1 404 Not Found/g,
  );
  assert.equal(missingBlocks?.length, 3001);
});

/** The body of a raw HTTP/1.1 response with chunked transfer coding. */
function dechunk(response: Buffer): Buffer {
  const headEnd = response.indexOf('\r\n\r\n');
  assert.match(
    response.subarray(0, headEnd).toString('latin1'),
    /^HTTP\/1\.1 207 [^]*transfer-encoding: chunked/i,
  );
  const parts: Buffer[] = [];
  let at = headEnd + 4;
  for (;;) {
    const lineEnd = response.indexOf('\r\n', at);
    const size = parseInt(response.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) return Buffer.concat(parts);
    parts.push(response.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}
