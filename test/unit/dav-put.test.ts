// PUT: create (201), replace (204), refusals (405, 409, 400, 413, 412), partial PUT with
// Content-Range, and atomicity when the client goes away mid-upload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { davRequest, startDavTestServer, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
let limited: DavTestServer;
before(async () => {
  server = await startDavTestServer();
  limited = await startDavTestServer({ maxUploadBytes: 1000 });
  fs.mkdirSync(path.join(server.root, 'dir'));
});
after(async () => {
  await server.close();
  await limited.close();
});

test('PUT of a new file gives 201 and its ETag; a replacement gives 204', async () => {
  const created = await davRequest(server, 'PUT', '/new.txt', { body: 'one' });
  assert.equal(created.status, 201);
  assert.match(String(created.headers.etag), /^"/);
  const replaced = await davRequest(server, 'PUT', '/new.txt', { body: 'two!' });
  assert.equal(replaced.status, 204);
  assert.equal(fs.readFileSync(path.join(server.root, 'new.txt'), 'utf8'), 'two!');
  assert.notEqual(replaced.headers.etag, created.headers.etag);
});

test('PUT of a UTF-8 name and an empty body', async () => {
  assert.equal((await davRequest(server, 'PUT', '/%E2%82%AC%20x', { body: '' })).status, 201);
  assert.equal(fs.readFileSync(path.join(server.root, '€ x'), 'utf8'), '');
});

test('PUT into a missing parent gives 409', async () => {
  assert.equal((await davRequest(server, 'PUT', '/missing/file', { body: 'x' })).status, 409);
});

test('PUT onto a collection gives 405', async () => {
  assert.equal((await davRequest(server, 'PUT', '/dir', { body: 'x' })).status, 405);
  assert.equal((await davRequest(server, 'PUT', '/', { body: 'x' })).status, 405);
});

test('PUT with Content-Range replaces exactly those bytes, as Apache mod_dav does', async () => {
  fs.writeFileSync(path.join(server.root, 'ranged'), 'keep');
  const res = await davRequest(server, 'PUT', '/ranged', {
    body: 'XY',
    headers: { 'Content-Range': 'bytes 1-2/4' },
  });
  assert.equal(res.status, 204);
  assert.equal(fs.readFileSync(path.join(server.root, 'ranged'), 'utf8'), 'kXYp');
});

test('PUT with a Content-Range that does not match its body gives 400 and changes nothing', async () => {
  fs.writeFileSync(path.join(server.root, 'ranged2'), 'keep');
  for (const range of ['bytes 0-5/4', 'bytes 2-1/4', 'bytes 0-1', 'items 0-1/4']) {
    const res = await davRequest(server, 'PUT', '/ranged2', {
      body: 'xx',
      headers: { 'Content-Range': range },
    });
    assert.equal(res.status, 400, range);
  }
  assert.equal(fs.readFileSync(path.join(server.root, 'ranged2'), 'utf8'), 'keep');
});

test('If-None-Match: * refuses to replace (412) but creates; If-Match guards a replacement', async () => {
  assert.equal(
    (await davRequest(server, 'PUT', '/guarded', { body: 'a', headers: { 'If-None-Match': '*' } })).status,
    201,
  );
  assert.equal(
    (await davRequest(server, 'PUT', '/guarded', { body: 'b', headers: { 'If-None-Match': '*' } })).status,
    412,
  );
  assert.equal(
    (await davRequest(server, 'PUT', '/guarded', { body: 'c', headers: { 'If-Match': '"stale"' } })).status,
    412,
  );
  assert.equal(
    (await davRequest(server, 'PUT', '/nothing', { body: 'c', headers: { 'If-Match': '*' } })).status,
    412,
  );
  const etag = String((await davRequest(server, 'HEAD', '/guarded')).headers.etag);
  assert.equal(
    (await davRequest(server, 'PUT', '/guarded', { body: 'd', headers: { 'If-Match': etag } })).status,
    204,
  );
  assert.equal(fs.readFileSync(path.join(server.root, 'guarded'), 'utf8'), 'd');
});

test('an upload over maxUploadBytes gives 413, declared or chunked, and leaves nothing', async () => {
  const declared = await davRequest(limited, 'PUT', '/too-big', { body: Buffer.alloc(1001) });
  assert.equal(declared.status, 413);
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request({
      port: limited.port,
      host: '127.0.0.1',
      method: 'PUT',
      path: '/too-big-chunked',
      agent: false,
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    for (let i = 0; i < 5; i++) req.write(Buffer.alloc(400));
    req.end();
  });
  assert.equal(chunked, 413);
  assert.deepEqual(fs.readdirSync(limited.root), []);
  assert.equal((await davRequest(limited, 'PUT', '/fits', { body: Buffer.alloc(1000) })).status, 201);
});

test('a client that hangs up mid-upload leaves the old content and no temporary file', async () => {
  fs.writeFileSync(path.join(server.root, 'precious'), 'old content');
  const before = fs.readdirSync(server.root).sort();
  await new Promise<void>((resolve) => {
    const req = http.request({
      port: server.port,
      host: '127.0.0.1',
      method: 'PUT',
      path: '/precious',
      headers: { 'Content-Length': '100000' },
      agent: false,
    });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(5000, 'n'));
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 100);
  });
  await sleep(200);
  assert.equal(fs.readFileSync(path.join(server.root, 'precious'), 'utf8'), 'old content');
  assert.deepEqual(fs.readdirSync(server.root).sort(), before);
  assert.equal((await davRequest(server, 'GET', '/precious')).body, 'old content', 'the server goes on');
});
