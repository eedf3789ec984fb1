// The addon's system calls on real descriptors: socketpair, closeFd, dupFd, tcpListen,
// and setNoNewPrivs (in a child, since it cannot be undone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { closeFd, dupFd, socketpair, tcpListen } from '../../native';

const O_CLOEXEC = 0o2000000;

function openFlags(fd: number): number {
  const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  assert.ok(flags, 'fdinfo has a flags line');
  return parseInt(flags[1], 8);
}

function socketInode(fd: number): string {
  const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
  assert.ok(match, `fd ${fd} is a socket`);
  return match[1];
}

// /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path"; Type 0005 is SOCK_SEQPACKET,
// St 03 is SS_CONNECTED.
function unixSocketRow(inode: string): { type: string; state: string } {
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const columns = line.trim().split(/\s+/);
    if (columns[6] === inode) return { type: columns[4], state: columns[5] };
  }
  throw new Error(`socket inode ${inode} not in /proc/net/unix`);
}

async function adoptListeningFd(fd: number): Promise<net.Server> {
  const server = net.createServer((socket) => socket.end('hello'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, resolve);
  });
  return server;
}

async function readGreeting(host: string, port: number): Promise<string> {
  const socket = net.connect({ host, port });
  let text = '';
  for await (const chunk of socket) text += String(chunk);
  return text;
}

function addressOf(server: net.Server): net.AddressInfo {
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address;
}

test('socketpair gives two connected SEQPACKET sockets, both close-on-exec', () => {
  const [a, b] = socketpair();
  try {
    for (const fd of [a, b]) {
      assert.equal(openFlags(fd) & O_CLOEXEC, O_CLOEXEC);
      assert.deepEqual(unixSocketRow(socketInode(fd)), { type: '0005', state: '03' });
    }
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

test('closeFd closes a descriptor, and a second close throws EBADF', () => {
  const fd = fs.openSync('/dev/null', 'r');
  closeFd(fd);
  assert.equal(fs.existsSync(`/proc/self/fd/${fd}`), false);
  assert.throws(() => closeFd(fd), { code: 'EBADF', syscall: 'close' });
});

test('dupFd gives a close-on-exec copy of the same open file', () => {
  const fd = fs.openSync('/etc/hostname', 'r');
  const copy = dupFd(fd);
  try {
    assert.notEqual(copy, fd);
    assert.equal(fs.fstatSync(copy).ino, fs.fstatSync(fd).ino);
    assert.equal(openFlags(copy) & O_CLOEXEC, O_CLOEXEC);
  } finally {
    closeFd(copy);
    closeFd(fd);
  }
});

test('tcpListen on 127.0.0.1 port 0 gives a listening socket net.Server can adopt', async () => {
  const fd = tcpListen('127.0.0.1', 0, 16);
  assert.equal(openFlags(fd) & O_CLOEXEC, O_CLOEXEC);
  const server = await adoptListeningFd(fd);
  try {
    const address = addressOf(server);
    assert.equal(address.address, '127.0.0.1');
    assert.ok(address.port > 0);
    assert.equal(await readGreeting('127.0.0.1', address.port), 'hello');
  } finally {
    server.close();
  }
});

test('tcpListen on [::1] listens on IPv6 loopback', async () => {
  const server = await adoptListeningFd(tcpListen('[::1]', 0, 16));
  try {
    const address = addressOf(server);
    assert.deepEqual([address.address, address.family], ['::1', 'IPv6']);
    assert.equal(await readGreeting('::1', address.port), 'hello');
  } finally {
    server.close();
  }
});

test('tcpListen on :: is IPv6-only, so 0.0.0.0 can listen on the same port', async () => {
  const v6 = await adoptListeningFd(tcpListen('::', 0, 16));
  try {
    const v4 = await adoptListeningFd(tcpListen('0.0.0.0', addressOf(v6).port, 16));
    v4.close();
  } finally {
    v6.close();
  }
});

test('tcpListen refuses anything but a numeric address with EINVAL and a port already listened on with EADDRINUSE', async () => {
  for (const host of ['localhost', '', '127.1', '[127.0.0.1]'])
    assert.throws(() => tcpListen(host, 0, 16), { code: 'EINVAL' }, host);
  assert.throws(() => tcpListen('127.0.0.1', 70000, 16), TypeError);
  const server = await adoptListeningFd(tcpListen('127.0.0.1', 0, 16));
  try {
    assert.throws(() => tcpListen('127.0.0.1', addressOf(server).port, 16), {
      code: 'EADDRINUSE',
      syscall: 'bind',
    });
  } finally {
    server.close();
  }
});

test('setNoNewPrivs sets NoNewPrivs for the process that calls it', () => {
  // A child, because the flag can never be cleared again in this test process.
  const script = `
    const { setNoNewPrivs } = require(${JSON.stringify(require.resolve('../../native'))});
    const flag = () => /^NoNewPrivs:\\s+(\\d)$/m.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1];
    const before = flag();
    setNoNewPrivs();
    process.stdout.write(before + ' ' + flag());
  `;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(child.stderr, '');
  assert.equal(child.stdout, '0 1');
});
