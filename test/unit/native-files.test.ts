// The addon's calls for file bodies: sendFile on real TCP sockets over loopback, by sendfile(2)
// and by copy from a mapping (exact bytes from an offset, a file that ends early or is truncated
// mid-transfer, a peer that stops reading, one that hangs up, abort, refusals), readCached (page-cache reads), closeLater (batched closes off the event loop) and
// openForRead (a GET's open in one call).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { abortSendFile, closeLater, openForRead, readCached, sendFile } from '../../native';
import { toStat } from '../../helper/file-stat';

let dir: string;
let content: Buffer;
let server: net.Server;
let sparse: number;

before(async () => {
  dir = fs.mkdtempSync('/tmp/privdav-sendfile-');
  content = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 11)) & 0xff;
  fs.writeFileSync(`${dir}/data`, content);
  // Larger than loopback socket buffers can hold, without writing it: a sparse file reads zeros.
  sparse = fs.openSync(`${dir}/sparse`, 'w+');
  fs.ftruncateSync(sparse, 256 * 1024 * 1024);
  server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});
after(() => {
  fs.closeSync(sparse);
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A connected pair: `sender` is the accepted side whose descriptor sendFile writes to. */
async function connect(): Promise<{ sender: net.Socket; receiver: net.Socket }> {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const receiver = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [[sender]] = await Promise.all([accepted, once(receiver, 'connect')]);
  // Tests hang up on purpose, with data in flight: the other side's ECONNRESET is expected.
  for (const socket of [sender, receiver]) socket.on('error', () => undefined);
  return { sender, receiver };
}

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

function run(
  socket: net.Socket,
  fd: number,
  offset: number,
  length: number,
  idleMs: number,
  copy: boolean,
): {
  done: Promise<{ error: NodeJS.ErrnoException | null; sent: number; copied: number }>;
  handle: ReturnType<typeof sendFile>;
} {
  let handle!: ReturnType<typeof sendFile>;
  const done = new Promise<{ error: NodeJS.ErrnoException | null; sent: number; copied: number }>(
    (resolve) => {
      handle = sendFile(fdOf(socket), fd, offset, length, idleMs, copy, (error, sent, copied) =>
        resolve({ error, sent, copied }),
      );
    },
  );
  return { done, handle };
}

function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

// Both ways of sending: sendfile(2), and write(2) from a mapping (`copy`, for peers on this host).
for (const copy of [false, true]) {
  const way = copy ? 'copy' : 'sendfile';

  test(`${way}: sends exactly length bytes from offset, and the socket stays usable afterwards`, async () => {
    const { sender, receiver } = await connect();
    const received = collect(receiver);
    const fd = fs.openSync(`${dir}/data`, 'r');
    // Not page-aligned at either end, and more than one mapping window (4 MiB) of the copy.
    const { done } = run(sender, fd, 1000, content.length - 2000, 0, copy);
    const result = await done;
    fs.closeSync(fd);
    assert.equal(result.error, null);
    assert.equal(result.sent, content.length - 2000);
    // It says which way the bytes went: all copied, or none.
    assert.equal(result.copied, copy ? result.sent : 0);
    sender.end('trailer');
    const body = await received;
    assert.ok(body.subarray(0, content.length - 2000).equals(content.subarray(1000, content.length - 1000)));
    assert.equal(body.subarray(content.length - 2000).toString(), 'trailer');
  });

  test(`${way}: a file shorter than the length promised ends with ENODATA after what it had`, async () => {
    const { sender, receiver } = await connect();
    const received = collect(receiver);
    const fd = fs.openSync(`${dir}/data`, 'r');
    const result = await run(sender, fd, content.length - 100, 1000, 0, copy).done;
    fs.closeSync(fd);
    // Before the assertions: a failing one must not leave the connection holding the server open.
    sender.destroy();
    assert.equal(result.error?.code, 'ENODATA');
    // Not the zeros that follow the end in the file's last page.
    assert.equal(result.sent, 100);
    assert.equal(result.copied, copy ? 100 : 0);
    assert.equal((await received).length, 100);
  });

  test(`${way}: a file truncated while its transfer waits ends with ENODATA, and this process lives`, async () => {
    const path = `${dir}/shrinking-${way}`;
    fs.writeFileSync(path, Buffer.alloc(64 * 1024 * 1024, 0x61));
    const fd = fs.openSync(path, 'r');
    const { sender, receiver } = await connect();
    receiver.pause();
    const { done } = run(sender, fd, 0, 64 * 1024 * 1024, 10_000, copy);
    // The socket is full and the transfer waits for it to drain; the file loses its pages.
    await new Promise((resolve) => setTimeout(resolve, 200));
    fs.truncateSync(path, 4096);
    const received = collect(receiver);
    receiver.resume();
    const result = await done;
    fs.closeSync(fd);
    fs.rmSync(path);
    assert.equal(result.error?.code, 'ENODATA', String(result.error));
    assert.ok(result.sent > 4096 && result.sent < 64 * 1024 * 1024, String(result.sent));
    sender.destroy();
    const body = await received;
    assert.equal(body.length, result.sent);
  });

  test(`${way}: files truncated at random moments of their transfers never take this process down`, async () => {
    // Some of these truncations land inside a write from the mapping: the kernel's copy faults
    // (EFAULT), where a read of the mapping by this process would have been a SIGBUS.
    const path = `${dir}/racing-${way}`;
    for (let round = 0; round < 12; round++) {
      fs.writeFileSync(path, Buffer.alloc(16 * 1024 * 1024, 0x62));
      const fd = fs.openSync(path, 'r');
      const { sender, receiver } = await connect();
      const received = collect(receiver);
      const { done } = run(sender, fd, 0, 16 * 1024 * 1024, 10_000, copy);
      setTimeout(() => fs.truncateSync(path, 4096 * round + 1), round % 4);
      const result = await done;
      fs.closeSync(fd);
      sender.destroy();
      const body = await received;
      if (result.error === null) assert.equal(result.sent, 16 * 1024 * 1024);
      else assert.equal(result.error.code, 'ENODATA', String(result.error));
      assert.equal(body.length, result.sent);
    }
    fs.rmSync(path);
  });

  test(`${way}: a peer that stops reading is given up after idleMs with ETIMEDOUT`, async () => {
    const { sender, receiver } = await connect();
    receiver.pause();
    const started = Date.now();
    const result = await run(sender, sparse, 0, 256 * 1024 * 1024, 300, copy).done;
    assert.equal(result.error?.code, 'ETIMEDOUT');
    assert.ok(result.sent > 0 && result.sent < 256 * 1024 * 1024);
    assert.ok(Date.now() - started >= 300);
    sender.destroy();
    receiver.destroy();
  });

  test(`${way}: a peer that hangs up mid-transfer ends it with EPIPE or ECONNRESET`, async () => {
    const { sender, receiver } = await connect();
    receiver.once('data', () => receiver.destroy());
    const result = await run(sender, sparse, 0, 256 * 1024 * 1024, 10_000, copy).done;
    assert.ok(['EPIPE', 'ECONNRESET'].includes(String(result.error?.code)), String(result.error));
    sender.destroy();
  });

  test(`${way}: abortSendFile ends a waiting transfer with ECANCELED; aborting again is harmless`, async () => {
    const { sender, receiver } = await connect();
    receiver.pause();
    const { done, handle } = run(sender, sparse, 0, 256 * 1024 * 1024, 0, copy);
    await new Promise((resolve) => setTimeout(resolve, 100));
    abortSendFile(handle);
    abortSendFile(handle);
    const result = await done;
    assert.equal(result.error?.code, 'ECANCELED');
    abortSendFile(handle);
    sender.destroy();
    receiver.destroy();
  });
}

test('copy: a file that cannot be mapped (ENODEV) is sent with sendfile instead', async () => {
  // sysfs: a regular file of 4096 bytes by its stat, shorter in fact, and mmap says ENODEV.
  const path = '/sys/kernel/mm/transparent_hugepage/enabled';
  const expected = fs.readFileSync(path);
  const fd = fs.openSync(path, 'r');
  const { sender, receiver } = await connect();
  const received = collect(receiver);
  const result = await run(sender, fd, 0, fs.fstatSync(fd).size, 0, true).done;
  fs.closeSync(fd);
  sender.destroy();
  // What sendfile gives for such a file: its bytes, then the end before the length stat promised.
  assert.equal(result.error?.code, 'ENODATA', String(result.error));
  assert.equal(result.sent, expected.length);
  assert.equal(result.copied, 0, 'no byte was written from a mapping');
  assert.ok((await received).equals(expected));
});

test('refuses what is not a stream socket, and bad arguments, before sending anything', () => {
  const fd = fs.openSync(`${dir}/data`, 'r');
  try {
    assert.throws(() => sendFile(fd, fd, 0, 10, 0, false, () => {}), { code: 'ENOTSOCK' });
    const device = fs.openSync('/dev/null', 'r');
    assert.throws(() => sendFile(device, fd, 0, 10, 0, false, () => {}), { code: 'ENOTSOCK' });
    fs.closeSync(device);
    assert.throws(() => sendFile(-1, fd, 0, 10, 0, false, () => {}), TypeError);
    assert.throws(() => sendFile(fd, fd, -5, 10, 0, false, () => {}), TypeError);
    assert.throws(() => sendFile(fd, fd, 0, 0, 0, false, () => {}), TypeError);
    assert.throws(() => sendFile(fd, fd, 0, 1.5, 0, false, () => {}), TypeError);
    assert.throws(() => sendFile(fd, fd, 0, 10, 0, 1 as unknown as boolean, () => {}), TypeError);
    assert.throws(() => abortSendFile({} as ReturnType<typeof sendFile>), TypeError);
  } finally {
    fs.closeSync(fd);
  }
});

test('readCached reads what the page cache holds, stops at end of file, reports errors as -errno', () => {
  const fd = fs.openSync(`${dir}/data`, 'r');
  try {
    fs.readFileSync(`${dir}/data`); // now cached
    const buffer = Buffer.alloc(4096);
    assert.equal(readCached(fd, buffer, 5000), 4096);
    assert.ok(buffer.equals(content.subarray(5000, 9096)));
    assert.equal(readCached(fd, buffer, content.length - 10), 10);
    assert.equal(readCached(fd, buffer, content.length + 10), 0);
  } finally {
    fs.closeSync(fd);
  }
  const closed = fs.openSync(`${dir}/data`, 'r');
  fs.closeSync(closed);
  assert.equal(readCached(closed, Buffer.alloc(8), 0), -9); // EBADF
  assert.throws(() => readCached(0, 'x' as unknown as Buffer, 0), TypeError);
  assert.throws(() => readCached(0, Buffer.alloc(1), -1), TypeError);
});

test('closeLater closes every descriptor it is given, in batches off the event loop', async () => {
  const fds = Array.from({ length: 50 }, () => fs.openSync(`${dir}/data`, 'r'));
  for (const fd of fds) closeLater(fd);
  const deadline = Date.now() + 5000;
  const open = (): number[] =>
    fds.filter((fd) => {
      try {
        fs.fstatSync(fd);
        return true;
      } catch {
        return false;
      }
    });
  while (open().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(open(), []);
  assert.throws(() => closeLater(-1), TypeError);
  assert.throws(() => closeLater(1.5), TypeError);
});

test('closeLater refuses a number no descriptor can have, and keeps closing what it is given afterwards', async () => {
  // 2^31 once wrapped to a negative number in the batch: the batch threw, and every later
  // closeLater waited behind a batch that would never end.
  assert.throws(() => closeLater(2 ** 31), TypeError);
  const fd = fs.openSync(`${dir}/data`, 'r');
  closeLater(fd);
  const deadline = Date.now() + 5000;
  const isOpen = (): boolean => {
    try {
      fs.fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  };
  while (isOpen() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(isOpen(), false, 'the descriptor given after the refusal is closed');
});

test('openForRead opens a regular file and reports the Stat toStat gives for it', () => {
  const opened = openForRead(`${dir}/data`);
  assert.equal(opened.kind, 'file');
  if (opened.kind !== 'file') return;
  try {
    const expected = toStat(fs.fstatSync(opened.fd, { bigint: true }));
    assert.deepEqual(
      {
        kind: 'file',
        size: opened.size,
        mtimeMs: opened.mtimeMs,
        birthtimeMs: opened.birthtimeMs,
        etag: opened.etag,
      },
      expected,
    );
    assert.equal(expected.size, content.length);
    // Opened read-only and non-blocking, close-on-exec.
    const flags = fs.readFileSync(`/proc/self/fdinfo/${opened.fd}`, 'utf8').match(/flags:\s+(\d+)/)![1]!;
    const mode = Number.parseInt(flags, 8);
    assert.equal(mode & 3, fs.constants.O_RDONLY);
    assert.notEqual(mode & fs.constants.O_NONBLOCK, 0);
    assert.notEqual(mode & 0o2000000, 0, 'O_CLOEXEC');
  } finally {
    fs.closeSync(opened.fd);
  }
});

test('openForRead opens no directory, FIFO or device, and fails as node:fs does', () => {
  const openBefore = fs.readdirSync('/proc/self/fd').length;
  assert.deepEqual(openForRead(dir), { kind: 'directory' });
  execFileSync('mkfifo', [`${dir}/fifo`]);
  // Opening a FIFO for reading would wait for a writer: this returns at once.
  assert.deepEqual(openForRead(`${dir}/fifo`), { kind: 'other' });
  fs.symlinkSync(`${dir}/fifo`, `${dir}/to-fifo`);
  assert.deepEqual(openForRead(`${dir}/to-fifo`), { kind: 'other' });
  assert.deepEqual(openForRead('/dev/null'), { kind: 'other' });
  assert.equal(fs.readdirSync('/proc/self/fd').length, openBefore, 'nothing left open');
  assert.throws(() => openForRead(`${dir}/missing`), { code: 'ENOENT', syscall: 'stat' });
  assert.throws(() => openForRead(`${dir}/data/below`), { code: 'ENOTDIR', syscall: 'stat' });
  // As node:fs: a name too long for the kernel is ENAMETOOLONG (a 414), not a bad argument (a 500).
  assert.throws(() => openForRead(`${dir}/${'a/'.repeat(2100)}f`), { code: 'ENAMETOOLONG' });
  assert.throws(() => openForRead(Buffer.from(`${dir}/${'b'.repeat(300)}`)), { code: 'ENAMETOOLONG' });
  assert.throws(() => openForRead(''), TypeError);
  assert.throws(() => openForRead(`${dir}/a\0b`), TypeError);
});
