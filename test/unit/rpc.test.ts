// RpcClient on a real channel pair: what it owns and when it gives up. The test plays the peer.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { Channel } from '../../common/channel';
import { RpcClient, RpcTimeoutError } from '../../common/rpc';
import { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES } from '../../common/protocol';
import { dupFd, socketpair } from '../../native';

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function pair(): { rpc: RpcClient; peer: Channel; close(): void } {
  const [a, b] = socketpair();
  const rpc = new RpcClient(new Channel(a), { deadlineMs: 200 });
  const peer = new Channel(b);
  return { rpc, peer, close: () => (rpc.close(), peer.destroy()) };
}

test('a call whose message cannot be encoded is refused, and the descriptors given with it are closed', async () => {
  const { rpc, close } = pair();
  const before = openFds();
  const fd = dupFd(0);
  await assert.rejects(rpc.call({ t: 'x', big: 'x'.repeat(MAX_MESSAGE_BYTES) }, [fd]), /too large/);
  assert.equal(openFds(), before, 'the descriptor did not leak');
  assert.equal(rpc.inFlight, 0);
  close();
});

test('a call the peer never answers fails at its deadline and is no longer pending', async () => {
  const { rpc, peer, close } = pair();
  peer.on('message', () => undefined);
  const started = Date.now();
  await assert.rejects(rpc.call({ t: 'x' }), RpcTimeoutError);
  assert.ok(Date.now() - started >= 190);
  assert.equal(rpc.inFlight, 0);
  await assert.rejects(rpc.call({ t: 'x' }, [], 50), RpcTimeoutError, 'a call may name its own deadline');
  close();
});

test("a stream's deadline is for each next reply: a steady peer is never cut off", async () => {
  const { rpc, peer, close } = pair();
  peer.on('message', (payload: Buffer) => {
    const id = Number(decodeMessage(payload)?.id);
    let sent = 0;
    const timer = setInterval(() => {
      sent++;
      peer.send(encodeMessage({ id, ok: true, more: sent < 6, result: sent }));
      if (sent === 6) clearInterval(timer);
    }, 100);
  });
  const results: unknown[] = [];
  for await (const reply of rpc.stream({ t: 'x' })) results.push(reply.message.result);
  assert.deepEqual(results, [1, 2, 3, 4, 5, 6], 'six replies over 600 ms with a 200 ms deadline');
  close();
});
