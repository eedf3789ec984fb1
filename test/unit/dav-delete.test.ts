// DELETE: files, whole trees, and locked members inside a tree (423 for them, the rest goes).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { davRequest, startDavTestServer, takeLock, type DavTestServer } from '../support/dav-test-server';

let server: DavTestServer;
before(async () => {
  server = await startDavTestServer();
});
after(() => server.close());

function tree(root: string, files: string[]): void {
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(server.root, root, file)), { recursive: true });
    fs.writeFileSync(path.join(server.root, root, file), file);
  }
}

test('DELETE of a file gives 204, of a missing one 404', async () => {
  tree('', ['gone.txt']);
  assert.equal((await davRequest(server, 'DELETE', '/gone.txt')).status, 204);
  assert.equal(fs.existsSync(path.join(server.root, 'gone.txt')), false);
  assert.equal((await davRequest(server, 'DELETE', '/gone.txt')).status, 404);
});

test('DELETE of a collection removes the whole tree', async () => {
  tree('coll', ['a', 'sub/b', 'sub/deeper/c']);
  assert.equal((await davRequest(server, 'DELETE', '/coll/')).status, 204);
  assert.equal(fs.existsSync(path.join(server.root, 'coll')), false);
});

test('DELETE of the root is refused', async () => {
  assert.equal((await davRequest(server, 'DELETE', '/')).status, 403);
});

test('DELETE of a locked file without its token gives 423; with it, 204 and the lock is gone', async () => {
  tree('', ['locked.txt']);
  const token = await takeLock(server, '/locked.txt');
  const refused = await davRequest(server, 'DELETE', '/locked.txt');
  assert.equal(refused.status, 423);
  assert.match(refused.body, /lock-token-submitted/);
  assert.equal(
    (await davRequest(server, 'DELETE', '/locked.txt', { headers: { If: `(<${token}>)` } })).status,
    204,
  );
  assert.equal(await server.lockStore.get(token, Date.now()), null);
});

test('DELETE of a tree with a locked member: 207 with 423 for it, everything else removed', async () => {
  tree('mixed', ['free.txt', 'sub/locked.txt', 'sub/other.txt', 'elsewhere/x']);
  await takeLock(server, '/mixed/sub/locked.txt');
  const res = await davRequest(server, 'DELETE', '/mixed/');
  assert.equal(res.status, 207);
  assert.match(
    res.body,
    /<D:href>\/mixed\/sub\/locked.txt<\/D:href><D:status>HTTP\/1.1 423 Locked<\/D:status>/,
  );
  assert.deepEqual(fs.readdirSync(path.join(server.root, 'mixed')), ['sub']);
  assert.deepEqual(fs.readdirSync(path.join(server.root, 'mixed', 'sub')), ['locked.txt']);
});

test("DELETE inside a collection locked with depth 0 needs the collection's token", async () => {
  tree('flat', ['member']);
  const token = await takeLock(server, '/flat/', 'exclusive', { Depth: '0' });
  assert.equal((await davRequest(server, 'DELETE', '/flat/member')).status, 423);
  const tagged = { If: `<http://127.0.0.1:${server.port}/flat/> (<${token}>)` };
  assert.equal((await davRequest(server, 'DELETE', '/flat/member', { headers: tagged })).status, 204);
});
