// How many channel round trips a request costs, through the real worker program (spawned as
// root, dropped to alice) and the real PrivsepStorage. The test plays the monitor's part of
// CONNECT (handing over a fresh channel end) so it can count what crosses the worker channel,
// and send the worker file content it must refuse.

import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LIST_BATCH_BYTES } from '../../common/protocol';
import { MAX_INLINE_BYTES } from '../../common/storage-protocol';
import type { Session, WorkerChannels } from '../../src/storage/privsep-storage';
import { DavTestServer, davRequest, startDavTestServer } from '../support/dav-test-server';
import { TestUsers, createUsers } from '../support/users';
import { startUserWorker, type UserWorker } from '../support/user-worker';

const ENTRIES = 1000;
let users: TestUsers;
let userWorker: UserWorker;
let server: DavTestServer;
let channels: WorkerChannels;
let session: Session;

before(async () => {
  users = createUsers();
  const { alice } = users;
  const dir = join(alice.home, 'many');
  mkdirSync(dir);
  for (let i = 0; i < ENTRIES; i++)
    writeFileSync(join(dir, `file-${String(i).padStart(4, '0')}.txt`), `entry ${i}\n`);
  for (const name of [
    'many',
    ...Array.from({ length: ENTRIES }, (_, i) => `many/file-${String(i).padStart(4, '0')}.txt`),
  ]) {
    chownSync(join(alice.home, name), alice.uid, alice.gid);
  }
  userWorker = startUserWorker(alice.name);
  ({ channels, session } = userWorker);
  server = await startDavTestServer({ storage: userWorker.storage });
});

after(async () => {
  await server.close();
  userWorker.close();
  users.remove();
});

test(`PROPFIND Depth 1 over ${ENTRIES} entries is a handful of channel round trips`, async () => {
  // Warm up: the channel is opened on first use.
  assert.equal((await davRequest(server, 'PROPFIND', '/', { headers: { Depth: '0' } })).status, 207);
  const rpc = await channels.get(session);
  const before = { ...rpc.stats };
  const response = await davRequest(server, 'PROPFIND', '/many/', {
    headers: { Depth: '1' },
    body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
  });
  assert.equal(response.status, 207);
  assert.equal(response.body.match(/<D:response>/g)?.length, ENTRIES + 1);
  const requests = rpc.stats.requests - before.requests;
  const replies = rpc.stats.replies - before.replies;
  process.stdout.write(
    `# PROPFIND Depth 1 over ${ENTRIES} entries: ${requests} request(s), ${replies} reply message(s)\n`,
  );
  assert.ok(requests <= 2, `${requests} requests`);
  // The worker renders these members' responses itself (allprop, no locks): the replies carry the
  // multistatus's bytes, in batches of up to LIST_BATCH_BYTES — never a message per member.
  const batches = Math.ceil(Buffer.byteLength(response.body) / LIST_BATCH_BYTES);
  assert.ok(replies <= batches + 2, `${replies} replies for ${batches} batches' worth`);
});

test('GET of a file is one round trip and the bytes come through the passed descriptor', async () => {
  const rpc = await channels.get(session);
  const before = { ...rpc.stats };
  const response = await davRequest(server, 'GET', '/many/file-0042.txt');
  assert.equal(response.status, 200);
  assert.equal(response.body, 'entry 42\n');
  assert.equal(rpc.stats.requests - before.requests, 1);
});

test('PUT of a small file is one round trip; X-OC-Mtime rides along', async () => {
  const rpc = await channels.get(session);
  const before = { ...rpc.stats };
  const put = await davRequest(server, 'PUT', '/many/put.txt', {
    body: 'small body',
    headers: { 'X-OC-Mtime': '1600000000' },
  });
  assert.equal(put.status, 201);
  assert.equal(rpc.stats.requests - before.requests, 1);
  const stat = statSync(join(users.alice.home, 'many', 'put.txt'));
  assert.equal(stat.mtimeMs, 1_600_000_000_000);
  assert.equal(stat.uid, users.alice.uid);
  assert.equal(readFileSync(join(users.alice.home, 'many', 'put.txt'), 'utf8'), 'small body');
});

test('the worker refuses content it was not promised or of another size than declared, and keeps serving', async () => {
  const rpc = await channels.get(session);
  const call = async (op: string, args: unknown[], tail: Buffer | null = null) => {
    const reply = await rpc.call({ op, cookie: session.cookie, args }, [], 5000, tail);
    assert.equal(reply.fds.length, 0);
    return reply.message;
  };
  const target = '/many/hostile.txt';
  const content = Buffer.from('twelve bytes');
  assert.equal(
    (await call('putSmall', [target, 11, {}], content)).code,
    'PROTOCOL',
    'size and content disagree',
  );
  assert.equal((await call('putSmall', [target, 12, {}])).code, 'PROTOCOL', 'no content');
  assert.equal((await call('putSmall', [target, MAX_INLINE_BYTES + 1, {}], content)).code, 'PROTOCOL');
  assert.equal((await call('putSmall', [target, 12, { mtimeMs: 'now' }], content)).code, 'PROTOCOL');
  assert.equal((await call('stat', [target], content)).code, 'PROTOCOL', 'content where none belongs');
  assert.equal(existsSync(join(users.alice.home, 'many', 'hostile.txt')), false, 'nothing was written');
  const stored = await call('putSmall', [target, 12, {}], content);
  assert.equal(stored.ok, true);
  assert.equal(readFileSync(join(users.alice.home, 'many', 'hostile.txt'), 'utf8'), 'twelve bytes');
});
