// COPY and MOVE: Destination forms, Overwrite, Depth, dead properties travelling, and locks at
// both ends.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { davRequest, startDavTestServer, takeLock, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
let origin: string;
before(async () => {
  server = await startDavTestServer();
  origin = server.origin;
});
after(() => server.close());

function write(file: string, content = file): void {
  fs.mkdirSync(path.dirname(path.join(server.root, file)), { recursive: true });
  fs.writeFileSync(path.join(server.root, file), content);
}

function read(file: string): string {
  return fs.readFileSync(path.join(server.root, file), 'utf8');
}

const deadProp =
  '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:colour>blue</Z:colour>' +
  '</D:prop></D:set></D:propertyupdate>';

test('COPY to a new URL gives 201, onto an existing one 204, with an absolute URL or a path', async () => {
  write('src.txt', 'source');
  assert.equal(
    (await davRequest(server, 'COPY', '/src.txt', { headers: { Destination: `${origin}/c1.txt` } })).status,
    201,
  );
  assert.equal(
    (await davRequest(server, 'COPY', '/src.txt', { headers: { Destination: '/c1.txt' } })).status,
    204,
  );
  assert.equal(read('c1.txt'), 'source');
  assert.equal(read('src.txt'), 'source');
});

test('Overwrite: F onto an existing destination gives 412', async () => {
  write('keep.txt', 'keep');
  const res = await davRequest(server, 'COPY', '/src.txt', {
    headers: { Destination: '/keep.txt', Overwrite: 'F' },
  });
  assert.equal(res.status, 412);
  assert.equal(read('keep.txt'), 'keep');
});

test('a Destination on another host or port gives 502; a missing destination parent 409', async () => {
  const other = await davRequest(server, 'COPY', '/src.txt', {
    headers: { Destination: 'http://example.org/x' },
  });
  assert.equal(other.status, 502);
  const port = await davRequest(server, 'COPY', '/src.txt', {
    headers: { Destination: 'http://127.0.0.1:1/x' },
  });
  assert.equal(port.status, 502);
  const orphan = await davRequest(server, 'COPY', '/src.txt', { headers: { Destination: '/no/parent' } });
  assert.equal(orphan.status, 409);
  assert.equal((await davRequest(server, 'COPY', '/src.txt')).status, 400);
  assert.equal((await davRequest(server, 'COPY', '/absent', { headers: { Destination: '/x' } })).status, 404);
});

test('COPY of a collection at Depth 0 copies it alone, at infinity the whole tree', async () => {
  write('tree/a.txt');
  write('tree/sub/b.txt');
  assert.equal(
    (await davRequest(server, 'COPY', '/tree/', { headers: { Destination: '/shallow/', Depth: '0' } }))
      .status,
    201,
  );
  assert.deepEqual(fs.readdirSync(path.join(server.root, 'shallow')), []);
  assert.equal(
    (await davRequest(server, 'COPY', '/tree/', { headers: { Destination: '/deep/' } })).status,
    201,
  );
  assert.equal(read('deep/sub/b.txt'), 'tree/sub/b.txt');
  assert.equal(
    (await davRequest(server, 'COPY', '/tree/', { headers: { Destination: '/x/', Depth: '1' } })).status,
    400,
  );
  assert.equal(
    (await davRequest(server, 'COPY', '/tree/', { headers: { Destination: '/tree/sub/in/' } })).status,
    403,
  );
});

test('MOVE renames (201) and replaces (204); dead properties travel with the resource', async () => {
  write('m1.txt', 'moving');
  assert.equal((await davRequest(server, 'PROPPATCH', '/m1.txt', { body: deadProp })).status, 207);
  assert.equal(
    (await davRequest(server, 'MOVE', '/m1.txt', { headers: { Destination: `${origin}/m2.txt` } })).status,
    201,
  );
  assert.equal(fs.existsSync(path.join(server.root, 'm1.txt')), false);
  assert.equal(read('m2.txt'), 'moving');
  const props = await davRequest(server, 'PROPFIND', '/m2.txt', {
    headers: { Depth: '0' },
    body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:z"/></D:prop></D:propfind>',
  });
  assert.match(props.body, /blue/);
  write('m3.txt', 'old');
  assert.equal(
    (await davRequest(server, 'MOVE', '/m2.txt', { headers: { Destination: '/m3.txt' } })).status,
    204,
  );
  assert.equal(read('m3.txt'), 'moving');
  assert.equal(
    (await davRequest(server, 'MOVE', '/m3.txt', { headers: { Destination: '/x', Depth: '0' } })).status,
    400,
  );
});

test('MOVE of a locked source needs its token, and the lock does not travel', async () => {
  write('lm.txt');
  const token = await takeLock(server, '/lm.txt');
  assert.equal(
    (await davRequest(server, 'MOVE', '/lm.txt', { headers: { Destination: '/lm2.txt' } })).status,
    423,
  );
  const moved = await davRequest(server, 'MOVE', '/lm.txt', {
    headers: { Destination: '/lm2.txt', If: `(<${token}>)` },
  });
  assert.equal(moved.status, 201);
  assert.equal(await server.lockStore.get(token, Date.now()), null);
  assert.equal((await davRequest(server, 'PUT', '/lm2.txt', { body: 'free' })).status, 204);
});

test("COPY onto a locked destination needs its token; the source's lock is not copied", async () => {
  write('ld-src.txt', 'new');
  write('ld-dst.txt', 'old');
  const sourceToken = await takeLock(server, '/ld-src.txt');
  const token = await takeLock(server, '/ld-dst.txt');
  assert.equal(
    (await davRequest(server, 'COPY', '/ld-src.txt', { headers: { Destination: '/ld-dst.txt' } })).status,
    423,
  );
  const copied = await davRequest(server, 'COPY', '/ld-src.txt', {
    headers: { Destination: '/ld-dst.txt', If: `</ld-dst.txt> (<${token}>)` },
  });
  assert.equal(copied.status, 204);
  assert.equal(read('ld-dst.txt'), 'new');
  assert.equal(
    (await davRequest(server, 'COPY', '/ld-src.txt', { headers: { Destination: '/ld-copy.txt' } })).status,
    201,
  );
  assert.equal((await davRequest(server, 'PUT', '/ld-copy.txt', { body: 'unlocked' })).status, 204);
  assert.ok(await server.lockStore.get(sourceToken, Date.now()));
});
