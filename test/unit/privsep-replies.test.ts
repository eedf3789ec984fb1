// PrivsepStorage against a confused worker: the test answers the real web-side storage over a real
// channel with replies that are not what common/storage-protocol.ts declares. Each must be refused
// (StorageError PROTOCOL), any descriptor it carried closed, and silence must end at the deadline.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Channel } from '../../common/channel';
import { decodeMessage, encodeMessage } from '../../common/protocol';
import { StorageError } from '../../common/storage';
import { dupFd, socketpair } from '../../native';
import { PrivsepStorage, WorkerChannels, type Session } from '../../src/storage/privsep-storage';

const CALL_DEADLINE_MS = 300;

/** What the fake worker answers to a call: a result (or a whole message), and descriptors. */
type Answer = { message: Record<string, unknown>; fds?: number[] } | 'silence';
let answer: (op: string, id: number) => Answer;
let worker: Channel;
let storage: PrivsepStorage;

before(() => {
  const session: Session = { user: 'nobody', uid: 65534, cookie: 'c', refresh: async () => undefined };
  const connector = {
    async connect(): Promise<number> {
      const [workerSide, webSide] = socketpair();
      worker = new Channel(workerSide);
      worker.on('message', (payload: Buffer) => {
        const call = decodeMessage(payload);
        const id = Number(call?.id);
        const reply = answer(String(call?.op), id);
        if (reply !== 'silence') worker.send(encodeMessage({ id, ...reply.message }), reply.fds ?? []);
      });
      return webSide;
    },
  };
  const channels = new WorkerChannels(connector, () => ({
    callMs: CALL_DEADLINE_MS,
    treeMs: CALL_DEADLINE_MS,
  }));
  storage = new PrivsepStorage(channels, session);
});
after(() => worker.destroy());

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** A descriptor to send: a duplicate of stdin, which the channel closes once sent. */
function spareFd(): number {
  return dupFd(0);
}

async function refused(call: () => Promise<unknown>, code = 'PROTOCOL'): Promise<void> {
  await assert.rejects(call(), (error: unknown) => error instanceof StorageError && error.code === code);
}

const STAT = { kind: 'file', size: 3, mtimeMs: 1, birthtimeMs: 1, etag: '"1-3-1"' };

describe('replies that do not match their declaration are refused', () => {
  test('a stat whose kind, size or ETag is not a Stat', async () => {
    for (const result of [
      { ...STAT, kind: 'socket' },
      { ...STAT, size: -1 },
      { ...STAT, size: 'big' },
      { ...STAT, etag: 'has spaces' },
      'a string',
      [],
    ]) {
      answer = () => ({ message: { ok: true, result } });
      await refused(() => storage.stat('/f'));
    }
    answer = () => ({ message: { ok: true, result: STAT } });
    assert.deepEqual(await storage.stat('/f'), STAT);
  });

  test('member failures with a bad path or an unknown code, and a transfer without `created`', async () => {
    answer = () => ({ message: { ok: true, result: [{ path: 'relative', code: 'EACCES' }] } });
    await refused(() => storage.remove('/t'));
    answer = () => ({ message: { ok: true, result: [{ path: '/t/a', code: 'EWHATEVER' }] } });
    await refused(() => storage.remove('/t'));
    answer = () => ({ message: { ok: true, result: { errors: [] } } });
    await refused(() => storage.copy('/a', '/b', { depth: 'infinity', overwrite: true }));
    answer = () => ({ message: { ok: true, result: { created: true, errors: [] } } });
    assert.deepEqual(await storage.move('/a', '/b', { overwrite: true }), { created: true, errors: [] });
  });

  test('an openRead reply without its descriptor, or with two, is refused and the two are closed', async () => {
    answer = () => ({ message: { ok: true, result: { stat: STAT } } });
    await refused(() => storage.openRead('/f'));
    const before = openFds();
    answer = () => ({ message: { ok: true, result: { stat: STAT } }, fds: [spareFd(), spareFd()] });
    await refused(() => storage.openRead('/f'));
    assert.equal(openFds(), before, 'the descriptors of a refused reply are closed');
    answer = () => ({ message: { ok: true, result: { stat: { ...STAT, kind: 42 } } }, fds: [spareFd()] });
    await refused(() => storage.openRead('/f'));
    assert.equal(openFds(), before);
  });

  test('a descriptor on a reply that must carry none is closed and the reply refused', async () => {
    const before = openFds();
    answer = () => ({ message: { ok: true, result: STAT }, fds: [spareFd()] });
    await refused(() => storage.stat('/f'));
    assert.equal(openFds(), before);
  });

  test('an error reply with an unknown code is INTERNAL, not whatever the worker named', async () => {
    answer = () => ({ message: { ok: false, code: 'TOTALLY_FINE', message: 'x' } });
    await refused(() => storage.stat('/f'), 'INTERNAL');
    answer = () => ({ message: { ok: 'maybe' } });
    await refused(() => storage.stat('/f'));
  });

  test('a listing batch with an entry that is not an entry', async () => {
    answer = () => ({ message: { ok: true, result: [['/a', 'file', 1, 1, 1, 'no etag']] } });
    await refused(async () => {
      for await (const entry of storage.list('/', 1, { props: 'none', limit: 10 })) void entry;
    });
  });
});

describe('a worker that never answers', () => {
  test('the call fails with UNAVAILABLE at its deadline, and the late reply is dropped', async () => {
    let lateId = -1;
    answer = (_op, id) => {
      lateId = id;
      return 'silence';
    };
    const started = Date.now();
    await refused(() => storage.stat('/f'), 'UNAVAILABLE');
    assert.ok(Date.now() - started >= CALL_DEADLINE_MS - 20);
    const before = openFds();
    worker.send(encodeMessage({ id: lateId, ok: true, result: STAT }), [spareFd()]);
    answer = () => ({ message: { ok: true, result: STAT } });
    assert.deepEqual(await storage.stat('/f'), STAT, 'the channel still works');
    assert.equal(openFds(), before, "the late reply's descriptor was closed");
  });
});
