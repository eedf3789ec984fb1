// The Channel over real socket pairs and real child processes: boundaries and order, descriptor
// passing and ownership, backpressure and limits, peer death, ref/unref. This file is also the
// peer: spawned with PRIVDAV_CHANNEL_PEER set, it plays that role on fd 3 instead of testing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Channel, ChannelError, type ChannelOptions } from '../../common/channel';
import { closeFd, socketpair, tcpListen } from '../../native';

const PEER_FD = 3;
const O_CLOEXEC = 0o2000000;
const probeInode = fs.statSync(__filename).ino;

function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function isOpen(fd: number): boolean {
  return fs.existsSync(`/proc/self/fd/${fd}`);
}

/** A fresh descriptor of this very file: the receiver recognises it by inode. */
function openProbe(): number {
  return fs.openSync(__filename, 'r');
}

function isProbe(fd: number): boolean {
  return fs.fstatSync(fd).ino === probeInode;
}

function closeFds(fds: readonly number[]): void {
  for (const fd of fds) closeFd(fd);
}

function numbered(sequence: number, bytes = 200): Buffer {
  const payload = Buffer.alloc(bytes);
  payload.writeUInt32BE(sequence, 0);
  return payload;
}

function channelPair(
  options: ChannelOptions = {},
  receiverOptions: ChannelOptions = options,
): [Channel, Channel] {
  const [a, b] = socketpair();
  return [new Channel(a, options), new Channel(b, receiverOptions)];
}

/** Errors and closes of a channel, in order, as text: ['error PEER_CLOSED', 'close']. */
function recordEnding(channel: Channel): { events: string[]; closed: Promise<void> } {
  const events: string[] = [];
  channel.on('error', (error) => events.push(`error ${error.code}`));
  const closed = new Promise<void>((resolve) =>
    channel.on('close', () => {
      events.push('close');
      resolve();
    }),
  );
  return { events, closed };
}

function spawnPeer(
  role: string,
  env: Record<string, string> = {},
): { channel: Channel; child: ChildProcess } {
  const [ours, theirs] = socketpair();
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, PRIVDAV_CHANNEL_PEER: role };
  delete childEnv.NODE_TEST_CONTEXT;
  try {
    const child = spawn(process.execPath, [__filename], {
      stdio: ['ignore', 'inherit', 'inherit', theirs],
      env: childEnv,
    });
    return { channel: new Channel(ours), child };
  } finally {
    closeFd(theirs);
  }
}

// ---- peers: run in a child process on fd 3 ---------------------------------------------------

/** Does not read for 300 ms, then reads with a 20 ms stall every 2,000 messages; reports back. */
function runSlowReceiver(): void {
  const expected = Number(process.env.PRIVDAV_PEER_MESSAGES);
  const channel = new Channel(PEER_FD);
  const fdsBefore = fdCount();
  let received = 0;
  let inOrder = true;
  let validFds = true;
  const onMessage = (payload: Buffer, fds: number[]): void => {
    if (payload.length !== 200 || payload.readUInt32BE(0) !== received) inOrder = false;
    if (fds.length !== 1 || !isProbe(fds[0]) || !isCloseOnExec(fds[0])) validFds = false;
    closeFds(fds);
    received++;
    if (received % 2000 === 0) {
      channel.pause();
      setTimeout(() => channel.resume(), 20);
    }
    if (received < expected) return;
    channel.off('message', onMessage);
    const report = { received, inOrder, validFds, fdsBefore, fdsAfter: fdCount() };
    channel.send(Buffer.from(JSON.stringify(report)));
    if (channel.queuedMessages === 0) channel.destroy();
    else channel.once('drain', () => channel.destroy());
  };
  setTimeout(() => channel.on('message', onMessage), 300);
}

function isCloseOnExec(fd: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return flags !== null && (parseInt(flags[1], 8) & O_CLOEXEC) !== 0;
}

/** Reads one message per millisecond, forever; says 'reading' after its 100th. */
function runTricklingReceiver(): void {
  const channel = new Channel(PEER_FD);
  let received = 0;
  channel.on('message', (_payload, fds) => {
    closeFds(fds);
    if (++received === 100) channel.send(Buffer.from('reading'));
    channel.pause();
    setTimeout(() => channel.resume(), 1);
  });
}

/** Holds a reading channel; exits on its own only if the channel is unref'd. */
function runIdleReader(unref: boolean): void {
  const [a, b] = socketpair();
  const channel = new Channel(a);
  channel.on('message', () => {});
  if (unref) channel.unref();
  setTimeout(() => {
    process.stdout.write('kept alive');
    channel.destroy();
    closeFd(b);
  }, 300).unref();
}

const peerRole = process.env.PRIVDAV_CHANNEL_PEER;
if (peerRole === 'slow-receiver') runSlowReceiver();
else if (peerRole === 'trickling-receiver') runTricklingReceiver();
else if (peerRole === 'idle-reader') runIdleReader(false);
else if (peerRole === 'unref-idle-reader') runIdleReader(true);
else if (peerRole !== undefined) throw new Error(`unknown peer role ${peerRole}`);
else defineTests();

// ---- tests ---------------------------------------------------------------------------------

function defineTests(): void {
  test('messages keep their boundaries and order; descriptors arrive open and close-on-exec', async () => {
    const before = fdCount();
    const [sender, receiver] = channelPair({ maxMessageBytes: 4096 });
    const received: { payload: Buffer; fds: number[] }[] = [];
    const all = new Promise<void>((resolve) =>
      receiver.on('message', (payload, fds) => {
        received.push({ payload, fds });
        if (received.length === 4) resolve();
      }),
    );
    sender.send(Buffer.from('one'));
    sender.send(Buffer.alloc(3000, 'b'), [openProbe(), openProbe()]);
    sender.send(Buffer.alloc(4096, 'c'), [openProbe()]);
    sender.send(Buffer.alloc(0), [openProbe()]);
    await all;
    assert.deepEqual(
      received.map(({ payload, fds }) => [payload.length, payload.subarray(0, 3).toString(), fds.length]),
      [
        [3, 'one', 0],
        [3000, 'bbb', 2],
        [4096, 'ccc', 1],
        [0, '', 1],
      ],
    );
    const fds = received.flatMap((message) => message.fds);
    assert.ok(fds.every((fd) => isProbe(fd) && isCloseOnExec(fd)));
    closeFds(fds);
    receiver.destroy();
    sender.destroy();
    await once(sender, 'close');
    assert.equal(fdCount(), before);
  });

  test('20,000 messages each carrying a descriptor reach a slow receiver in order, and no descriptor leaks', async () => {
    const before = fdCount();
    const { channel, child } = spawnPeer('slow-receiver', { PRIVDAV_PEER_MESSAGES: '20000' });
    const exited = once(child, 'exit');
    const report = once(channel, 'message');
    let mostQueued = 0;
    for (let sequence = 0; sequence < 20_000; sequence++) {
      if (channel.queuedMessages >= 1000) await once(channel, 'drain');
      channel.send(numbered(sequence), [openProbe()]);
      mostQueued = Math.max(mostQueued, channel.queuedMessages);
    }
    const [payload] = (await report) as [Buffer];
    const summary = JSON.parse(payload.toString()) as Record<string, unknown>;
    assert.deepEqual(summary, {
      received: 20_000,
      inOrder: true,
      validFds: true,
      fdsBefore: summary.fdsBefore,
      fdsAfter: summary.fdsBefore,
    });
    assert.equal(mostQueued, 1000, 'the receiver was slow enough that the sender had to queue');
    assert.deepEqual(await exited, [0, null]);
    channel.destroy();
    await once(channel, 'close');
    assert.equal(fdCount(), before);
  });

  test('a peer killed mid-stream gives error then close, without a crash or a leaked descriptor', async () => {
    const before = fdCount();
    const { channel, child } = spawnPeer('trickling-receiver');
    const exited = once(child, 'exit');
    const { events, closed } = recordEnding(channel);
    let sent = 0;
    const pump = (): void => {
      while (!channel.destroyed && channel.queuedMessages < 200)
        channel.send(numbered(sent++), [openProbe()]);
    };
    channel.on('drain', pump);
    pump();
    await once(channel, 'message'); // the child has read 100 and is still reading
    child.kill('SIGKILL');
    await closed;
    assert.deepEqual(events, ['error PEER_CLOSED', 'close']);
    assert.ok(sent > 300, `the stream was still going (${sent} sent)`);
    assert.equal(channel.queuedMessages, 0);
    assert.deepEqual(await exited, [null, 'SIGKILL']);
    assert.equal(fdCount(), before);
  });

  test('a full send queue gives CHANNEL_FULL, and every message accepted before it arrives in order', async () => {
    const before = fdCount();
    const [sender, receiver] = channelPair({ maxQueuedMessages: 8 }); // receiver not listening yet
    let accepted = 0;
    let refusal: unknown = null;
    while (refusal === null && accepted < 100_000) {
      try {
        sender.send(numbered(accepted), [openProbe()]);
        accepted++;
      } catch (error) {
        refusal = error;
      }
    }
    assert.ok(refusal instanceof ChannelError);
    assert.equal(refusal.code, 'CHANNEL_FULL');
    assert.equal(sender.queuedMessages, 8);
    assert.equal(fdCount(), before + 2 + 8, 'the 8 queued fds are held, the refused one is closed');

    const sequences: number[] = [];
    await new Promise<void>((resolve) =>
      receiver.on('message', (payload, fds) => {
        assert.ok(fds.length === 1 && isProbe(fds[0]));
        closeFds(fds);
        sequences.push(payload.readUInt32BE(0));
        if (sequences.length === accepted) resolve();
      }),
    );
    assert.deepEqual(
      sequences,
      Array.from({ length: accepted }, (_, i) => i),
    );
    assert.equal(sender.queuedMessages, 0);
    receiver.destroy();
    sender.destroy();
    await once(sender, 'close');
    assert.equal(fdCount(), before);
  });

  test('a full byte budget gives CHANNEL_FULL as well', () => {
    const [sender, receiver] = channelPair({ maxQueuedBytes: 1000 });
    try {
      while (sender.queuedMessages === 0) sender.send(numbered(0, 300)); // fill the kernel's queue
      sender.send(numbered(0, 300));
      sender.send(numbered(0, 300));
      assert.equal(sender.queuedBytes, 900);
      assert.throws(() => sender.send(numbered(0, 300)), { name: 'ChannelError', code: 'CHANNEL_FULL' });
      assert.deepEqual([sender.queuedMessages, sender.queuedBytes], [3, 900]);
    } finally {
      sender.destroy();
      receiver.destroy();
    }
  });

  test('send says whether the kernel took the message; a queued one with release is freed once sent', async () => {
    const [sender, receiver] = channelPair(); // receiver not listening yet
    const owned = (fill: number): Buffer => Buffer.allocUnsafeSlow(64 * 1024).fill(fill);
    try {
      const first = owned(1);
      assert.equal(sender.send(first, [], first.buffer as ArrayBuffer), true);
      assert.equal(first.length, 64 * 1024, "sent at once: the buffer is the caller's again, untouched");
      while (sender.queuedMessages === 0) sender.send(owned(2)); // fill the kernel's queue
      const queued = [owned(3), owned(4)];
      for (const buffer of queued) assert.equal(sender.send(buffer, [], buffer.buffer as ArrayBuffer), false);
      const kept = owned(5);
      assert.equal(sender.send(kept), false);
      assert.deepEqual(
        queued.map((buffer) => buffer.length),
        [64 * 1024, 64 * 1024],
        'queued: still whole until sent',
      );

      const fills: number[] = [];
      receiver.on('message', (payload: Buffer) => fills.push(payload[0]!));
      await once(sender, 'drain');
      assert.deepEqual(
        queued.map((buffer) => buffer.byteLength),
        [0, 0],
        'sent from the queue: released (detached)',
      );
      assert.equal(kept.length, 64 * 1024, 'a message sent without release is left alone');
      await sleep(20);
      assert.deepEqual(
        fills.filter((fill) => fill !== 2),
        [1, 3, 4, 5],
        'and every payload arrived whole, in order',
      );

      // destroy() frees what it drops.
      receiver.pause();
      while (sender.queuedMessages === 0) sender.send(owned(2));
      const dropped = owned(6);
      sender.send(dropped, [], dropped.buffer as ArrayBuffer);
      sender.destroy();
      assert.equal(dropped.byteLength, 0);
    } finally {
      sender.destroy();
      receiver.destroy();
    }
  });

  test("send refuses to release anything but the payload's own ArrayBuffer", () => {
    const [sender, receiver] = channelPair();
    try {
      const small = Buffer.allocUnsafe(100); // a slice of Node's shared pool
      assert.throws(() => sender.send(small, [], small.buffer as ArrayBuffer), { name: 'TypeError' });
      const big = Buffer.allocUnsafeSlow(64 * 1024);
      const other = Buffer.allocUnsafeSlow(64 * 1024);
      assert.throws(() => sender.send(big, [], other.buffer as ArrayBuffer), { name: 'TypeError' });
      assert.equal(other.length, 64 * 1024);
      assert.equal(small.length, 100);
    } finally {
      sender.destroy();
      receiver.destroy();
    }
  });

  test('a message above the receiver maxMessageBytes gives TRUNCATED, and its descriptors are closed', async () => {
    const before = fdCount();
    const [sender, receiver] = channelPair({}, { maxMessageBytes: 100 });
    const { events, closed } = recordEnding(receiver);
    receiver.on('message', () => assert.fail('a truncated message must not be delivered'));
    sender.send(Buffer.alloc(101), [openProbe(), openProbe()]);
    await closed;
    assert.deepEqual(events, ['error TRUNCATED', 'close']);
    assert.equal(fdCount(), before + 1, 'only the sender socket is left open');
    sender.destroy();
  });

  test('more descriptors than the receiver maxFdsPerMessage gives TRUNCATED, and all of them are closed', async () => {
    const before = fdCount();
    const [sender, receiver] = channelPair({}, { maxFdsPerMessage: 1 });
    const { events, closed } = recordEnding(receiver);
    receiver.on('message', () => assert.fail('a truncated message must not be delivered'));
    sender.send(Buffer.from('three fds'), [openProbe(), openProbe(), openProbe()]);
    await closed;
    assert.deepEqual(events, ['error TRUNCATED', 'close']);
    assert.equal(fdCount(), before + 1, 'only the sender socket is left open');
    sender.destroy();
  });

  test('send refuses what it cannot deliver, and still closes the descriptors it was given', async () => {
    const before = fdCount();
    const [sender, receiver] = channelPair({ maxMessageBytes: 100, maxFdsPerMessage: 2 });
    const refused = (payload: Buffer, fds: number[], code: string): void => {
      assert.throws(() => sender.send(payload, fds), { name: 'ChannelError', code });
      assert.ok(
        fds.every((fd) => !isOpen(fd)),
        `${code}: the fds were closed`,
      );
    };
    refused(Buffer.alloc(101), [openProbe()], 'TOO_LARGE');
    refused(Buffer.from('x'), [openProbe(), openProbe(), openProbe()], 'TOO_MANY_FDS');
    refused(Buffer.alloc(0), [], 'EMPTY_MESSAGE');
    const probe = openProbe();
    refused(Buffer.from('x'), [probe, probe], 'INVALID_FDS');
    refused(Buffer.from('x'), [openProbe(), -1], 'INVALID_FDS');
    receiver.destroy();
    sender.destroy();
    refused(Buffer.from('x'), [openProbe()], 'CHANNEL_CLOSED');
    await once(sender, 'close');
    assert.equal(fdCount(), before);
  });

  test('the constructor refuses a stream socket, and closes it', () => {
    const fd = tcpListen('127.0.0.1', 0, 1);
    assert.throws(() => new Channel(fd), { code: 'EPROTOTYPE' });
    assert.equal(isOpen(fd), false);
  });

  test('a paused channel reads nothing until resumed', async () => {
    const [sender, receiver] = channelPair();
    const sequences: number[] = [];
    receiver.on('message', (payload) => {
      sequences.push(payload.readUInt32BE(0));
      if (sequences.length === 1) receiver.pause();
    });
    for (let i = 0; i < 5; i++) sender.send(numbered(i));
    await sleep(50);
    assert.deepEqual(sequences, [0]);
    receiver.resume();
    await sleep(50);
    assert.deepEqual(sequences, [0, 1, 2, 3, 4]);
    receiver.destroy();
    sender.destroy();
  });

  test('the peer closing its end gives PEER_CLOSED after every message it sent', async () => {
    const [sender, receiver] = channelPair();
    const { events, closed } = recordEnding(receiver);
    receiver.on('message', (payload) => events.push(payload.toString()));
    sender.send(Buffer.from('a'));
    sender.send(Buffer.from('b'));
    sender.destroy();
    await closed;
    assert.deepEqual(events, ['a', 'b', 'error PEER_CLOSED', 'close']);
  });

  test('a peer that dies with our messages unread still has its last messages delivered, then PEER_CLOSED', async () => {
    const [peer, survivor] = channelPair(); // the peer never reads
    const { events, closed } = recordEnding(survivor);
    survivor.on('message', (payload) => events.push(payload.toString()));
    survivor.send(Buffer.from('never read'));
    peer.send(Buffer.from('last words'));
    peer.destroy(); // unread data makes the kernel flag ECONNRESET (POLLERR) on the survivor
    await closed;
    assert.deepEqual(events, ['last words', 'error PEER_CLOSED', 'close']);
  });

  test('destroy closes the socket and every queued descriptor, and emits close once', async () => {
    const before = fdCount();
    const [a, b] = socketpair();
    const sender = new Channel(a);
    while (sender.queuedMessages < 10) sender.send(numbered(0), [openProbe()]);
    let closes = 0;
    sender.on('close', () => closes++);
    sender.destroy();
    sender.destroy();
    assert.equal(fdCount(), before + 1, 'only the raw peer socket is left');
    assert.deepEqual([sender.queuedMessages, sender.queuedBytes], [0, 0]);
    await sleep(10);
    assert.equal(closes, 1);
    closeFd(b);
  });

  test('a reading channel keeps the process alive, an unref one does not', () => {
    const run = (role: string): { status: number | null; stdout: string } => {
      const env: NodeJS.ProcessEnv = { ...process.env, PRIVDAV_CHANNEL_PEER: role };
      delete env.NODE_TEST_CONTEXT;
      const { status, stdout } = spawnSync(process.execPath, [__filename], {
        env,
        encoding: 'utf8',
        timeout: 10_000,
      });
      return { status, stdout };
    };
    assert.deepEqual(run('idle-reader'), { status: 0, stdout: 'kept alive' });
    assert.deepEqual(run('unref-idle-reader'), { status: 0, stdout: '' });
  });
}
