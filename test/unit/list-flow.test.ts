// Flow control of streamed listings over a real socket pair: a web process whose caller falls
// behind stops reading the channel (the replies wait in the kernel and in the worker, not in its
// memory), and the worker's listing waits for its channel to drain instead of queueing the whole
// directory. Then everything arrives, in order.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Channel } from '../../common/channel';
import { issueCookie } from '../../helper/cookie';
import { LocalStorage } from '../../helper/local-storage';
import { encodeMessage } from '../../common/protocol';
import { RpcClient } from '../../common/rpc';
import { serveStorage } from '../../helper/storage-server';
import { socketpair } from '../../native';

const channels: Channel[] = [];
const roots: string[] = [];
after(() => {
  for (const channel of channels) channel.destroy();
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

function pair(): [Channel, Channel] {
  const [a, b] = socketpair();
  const ends: [Channel, Channel] = [new Channel(a), new Channel(b)];
  channels.push(...ends);
  return ends;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 10_000) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

test('a stream its caller does not take stops the channel; the replies wait at the sender', async () => {
  const [webSide, workerSide] = pair();
  const rpc = new RpcClient(webSide);
  const REPLIES = 200;
  workerSide.on('message', (payload: Buffer) => {
    const { id } = JSON.parse(payload.toString('utf8')) as { id: number };
    for (let i = 0; i < REPLIES; i++) {
      const reply = { id, ok: true, more: i < REPLIES - 1, result: [i, 'x'.repeat(60_000)] };
      workerSide.send(encodeMessage(reply));
    }
  });
  const stream = rpc.stream({ op: 'list' });
  const first = await stream.next();
  assert.equal((first.value as { message: { result: unknown[] } }).message.result[0], 0);
  await sleep(300);
  // 12 MB were sent; the web side holds a few replies, the kernel a few more, the sender the rest.
  assert.ok(
    workerSide.queuedMessages > REPLIES / 2,
    `${workerSide.queuedMessages} replies wait at the sender`,
  );

  const seen = [0];
  for (let next = await stream.next(); !next.done; next = await stream.next())
    seen.push((next.value.message.result as number[])[0]!);
  assert.deepEqual(
    seen,
    Array.from({ length: REPLIES }, (_, i) => i),
  );
  await until(() => workerSide.queuedMessages === 0, 'the sender has sent everything');
  // The channel reads again: an ordinary call is answered.
  workerSide.removeAllListeners('message');
  workerSide.on('message', (payload: Buffer) => {
    const { id } = JSON.parse(payload.toString('utf8')) as { id: number };
    workerSide.send(encodeMessage({ id, ok: true, result: 'pong' }));
  });
  assert.equal((await rpc.call({ op: 'ping' })).message.result, 'pong');
});

test('a worker listing a big directory to a web process that does not read keeps pace with it', async () => {
  const root = fs.mkdtempSync('/tmp/privdav-list-flow-');
  roots.push(root);
  const MEMBERS = 30_000;
  for (let i = 0; i < MEMBERS; i++)
    fs.writeFileSync(`${root}/a-member-with-a-rather-long-name-${String(i).padStart(6, '0')}.txt`, '');
  const [webSide, workerSide] = pair();
  const userKey = Buffer.alloc(32, 7);
  const uid = process.getuid!();
  serveStorage(workerSide, {
    storage: new LocalStorage({ layout: { kind: 'home', root } }),
    userKey,
    uid,
    maxInfinityEntries: 10,
    log: () => {},
    onActivity: () => {},
    dup: (fd) => fd,
  });
  const now = Date.now();
  const cookie = issueCookie(userKey, { uid, gid: 0, user: 'root', issued: now, expires: now + 60_000 });
  webSide.send(encodeMessage({ id: 1, op: 'list', cookie, args: ['/', 1, { props: 'all', limit: 1e9 }] }));
  // Nobody reads the web side: the worker sends until ~1 MiB waits, then waits itself (the
  // listing is ~4 MB of entries).
  await until(() => workerSide.queuedBytes > 0, 'the kernel buffer is full');
  await sleep(300);
  assert.ok(
    workerSide.queuedBytes <= 1.25 * 1024 * 1024,
    `${workerSide.queuedBytes} bytes wait at the worker`,
  );

  let entries = 0;
  let last = false;
  webSide.on('message', (payload: Buffer) => {
    const reply = JSON.parse(payload.toString('utf8')) as { ok: boolean; more?: boolean; result: unknown[] };
    assert.equal(reply.ok, true);
    entries += reply.result.length;
    last = reply.more !== true;
  });
  await until(() => last, 'the last reply arrives');
  assert.equal(entries, MEMBERS + 1);
});
