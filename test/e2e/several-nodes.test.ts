// Two real privdav nodes serving the same homes, their locks in one real PostgreSQL 15: a lock
// taken through one node binds the other, grants race correctly, locks outlive a killed node, an
// unreachable database fails closed (503) while reads go on, and HAProxy (config/haproxy.cfg)
// keeps each user on one node.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lockBody } from '../support/dav-test-server';
import { Daemon, alive, freePort, request, sleep, startDaemon, type Response } from '../support/daemon';
import { startPostgres, type TestPostgres } from '../support/postgres';
import { TestUser, TestUsers, createUsers } from '../support/users';

const ROOT = join(__dirname, '..', '..', '..');

let postgres: TestPostgres;
let users: TestUsers;
let alice: TestUser;
let bob: TestUser;
let nodeA: Daemon;
let nodeB: Daemon;

before(async () => {
  postgres = await startPostgres();
  users = createUsers();
  ({ alice, bob } = users);
  const options = { extra: { locks: [`database = "${postgres.url}"`] } };
  [nodeA, nodeB] = await Promise.all([startDaemon(options), startDaemon(options)]);
});

after(async () => {
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  users?.remove();
  postgres?.destroy();
});

function aliceFile(name: string, content = name): void {
  const file = join(alice.home, name);
  writeFileSync(file, content);
  chownSync(file, alice.uid, alice.gid);
}

async function lock(node: Daemon, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return request(node, path, { method: 'LOCK', user: alice, headers, body: lockBody('exclusive') });
}

function tokenOf(res: Response): string {
  const match = /^<(.+)>$/.exec(String(res.headers['lock-token'] ?? ''));
  assert.ok(match, `LOCK gave ${res.status}: ${res.text}`);
  return match[1];
}

test('a LOCK through node A binds node B; its token unlocks writes there; UNLOCK through B frees it for A', async () => {
  aliceFile('shared.txt');
  const token = tokenOf(await lock(nodeA, '/shared.txt'));
  assert.equal((await request(nodeB, '/shared.txt', { method: 'PUT', user: alice, body: 'B' })).status, 423);
  const withToken = { If: `(<${token}>)` };
  const put = await request(nodeB, '/shared.txt', {
    method: 'PUT',
    user: alice,
    body: 'B',
    headers: withToken,
  });
  assert.equal(put.status, 204);
  const discovery = await request(nodeB, '/shared.txt', {
    method: 'PROPFIND',
    user: alice,
    headers: { Depth: '0' },
    body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>',
  });
  assert.equal(discovery.status, 207);
  assert.ok(discovery.text.includes(token), "node B's lockdiscovery shows node A's lock");
  const unlock = await request(nodeB, '/shared.txt', {
    method: 'UNLOCK',
    user: alice,
    headers: { 'Lock-Token': `<${token}>` },
  });
  assert.equal(unlock.status, 204);
  tokenOf(await lock(nodeA, '/shared.txt'));
});

test('100 rounds of simultaneous exclusive LOCKs on a fresh file, one through each node: exactly one wins', async () => {
  for (let round = 0; round < 100; round++) {
    const path = `/race-${round}.txt`;
    const [a, b] = await Promise.all([lock(nodeA, path), lock(nodeB, path)]);
    const statuses = [a.status, b.status].sort();
    assert.deepEqual(statuses, [201, 423], `round ${round}: ${a.status} ${b.status}`);
  }
});

test('database stopped: LOCK and a write on a locked path get 503 with Retry-After, reads 200; started again: service resumes', async () => {
  aliceFile('fail-closed.txt');
  tokenOf(await lock(nodeA, '/fail-closed.txt'));
  postgres.stop();
  try {
    aliceFile('other.txt');
    const refused = await lock(nodeB, '/other.txt');
    assert.equal(refused.status, 503, refused.text);
    assert.ok(Number(refused.headers['retry-after']) > 0);
    const write = await request(nodeB, '/fail-closed.txt', { method: 'PUT', user: alice, body: 'lost?' });
    assert.equal(write.status, 503);
    assert.equal(readFileSync(join(alice.home, 'fail-closed.txt'), 'utf8'), 'fail-closed.txt');
    assert.equal((await request(nodeB, '/fail-closed.txt', { user: alice })).status, 200);
    const listing = await request(nodeB, '/', { method: 'PROPFIND', user: alice, headers: { Depth: '1' } });
    assert.equal(listing.status, 207);
    assert.match(nodeB.output(), /lock database unavailable/);
  } finally {
    postgres.start();
  }
  // The pool reconnects on the next request.
  let status = 0;
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(200)) {
    status = (await lock(nodeB, '/other.txt')).status;
    if (status === 200) break;
  }
  assert.equal(status, 200);
  assert.equal(
    (await request(nodeB, '/fail-closed.txt', { method: 'PUT', user: alice, body: 'x' })).status,
    423,
  );
});

test('HAProxy with config/haproxy.cfg sends each user’s requests to one node', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-haproxy-'));
  const port = await freePort();
  const shipped = readFileSync(join(ROOT, 'config', 'haproxy.cfg'), 'utf8');
  const config = shipped
    .replace(/^\s*log .*$/gm, '')
    .replace('bind 127.0.0.1:8443', `bind 127.0.0.1:${port}`)
    .replace('server node1 10.0.0.11:8080 check', `server node1 127.0.0.1:${nodeA.port} check`)
    .replace('server node2 10.0.0.12:8080 check', `server node2 127.0.0.1:${nodeB.port} check`);
  assert.ok(config.includes(`127.0.0.1:${nodeB.port} check`), 'the example still has its two server lines');
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  const haproxy: ChildProcess = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], {
    stdio: 'ignore',
  });
  try {
    const balancer = { port };
    for (const deadline = Date.now() + 10_000; ; await sleep(100)) {
      const probe = await request(balancer, '/', { user: alice }).catch(() => null);
      if (probe?.status === 200) break;
      assert.ok(Date.now() < deadline, 'HAProxy did not start');
    }
    // Health checks see both nodes up before the hash is judged.
    await sleep(2500);
    for (const user of [alice, bob]) {
      const nodes = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const res = await request(balancer, '/', { method: 'PROPFIND', user, headers: { Depth: '0' } });
        assert.equal(res.status, 207);
        nodes.add(String(res.headers['x-privdav-node']));
      }
      assert.equal(nodes.size, 1, `${user.name} went to ${[...nodes].join(' and ')}`);
      // Bob came only through the balancer: the other node never started a worker for him.
      const [served, other] = [...nodes][0] === 'node1' ? [nodeA, nodeB] : [nodeB, nodeA];
      if (user === bob) {
        assert.ok(workerUids(served).includes(bob.uid));
        assert.ok(!workerUids(other).includes(bob.uid), 'bob has a worker on both nodes');
      }
    }
  } finally {
    haproxy.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

function workerUids(node: Daemon): number[] {
  return node.processes().workers.map((pid) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  });
}

test('node A killed: its locks still bind node B until they expire', async () => {
  aliceFile('orphan.txt');
  tokenOf(await lock(nodeA, '/orphan.txt', { Timeout: 'Second-3' }));
  const web = nodeA.processes().web;
  process.kill(nodeA.pid, 'SIGKILL');
  for (const pid of web) process.kill(pid, 'SIGKILL');
  for (const deadline = Date.now() + 5000; alive(nodeA.pid) && Date.now() < deadline;) await sleep(50);
  assert.equal((await request(nodeB, '/orphan.txt', { method: 'PUT', user: alice, body: 'B' })).status, 423);
  await sleep(3200);
  assert.equal((await request(nodeB, '/orphan.txt', { method: 'PUT', user: alice, body: 'B' })).status, 204);
  nodeA = await nodeA.restart();
});
