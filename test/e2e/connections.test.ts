// Connection limits through the real daemon, with raw sockets and curl from several loopback
// addresses: one address holding every connection slot with slow request heads does not keep
// another address's client out; heads must arrive within a deadline at a minimum rate; one address
// gets at most max_connections_per_address connections.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Daemon, request, sleep, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

let users: TestUsers;

before(() => {
  users = createUsers();
});
after(() => users.remove());

interface SlowClient {
  socket: net.Socket;
  /** Resolves to the ms from connect to the server closing the connection. */
  closed: Promise<number>;
  stop(): void;
}

/** A connection from `from` that sends a request head `chunk` by `chunk`, one every `everyMs`. */
async function slowClient(daemon: Daemon, from: string, chunk: string, everyMs: number): Promise<SlowClient> {
  const socket = net.connect({ host: '127.0.0.1', port: daemon.port, localAddress: from });
  socket.on('error', () => undefined);
  socket.resume();
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const started = Date.now();
  socket.write(`PROPFIND / HTTP/1.1\r\nHost: x\r\n`);
  const timer = setInterval(() => socket.write(chunk), everyMs);
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      clearInterval(timer);
      resolve(Date.now() - started);
    }),
  );
  return {
    socket,
    closed,
    stop: () => {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

async function curlPropfind(daemon: Daemon, user: TestUser, from: string): Promise<string> {
  const { stdout } = await promisify(execFile)('curl', [
    '--interface',
    from,
    '--max-time',
    '25',
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-u',
    `${user.name}:${user.password}`,
    '-X',
    'PROPFIND',
    '-H',
    'Depth: 0',
    `${daemon.url}/`,
  ]);
  return stdout;
}

describe('one address holding every connection', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({
      extra: { limits: ['max_connections = 20', 'max_connections_per_address = 20'] },
    });
  });
  after(async () => {
    await daemon.stop();
  });

  test('with max_connections slow heads from one address, another address is served at once, and a logged-in connection is kept', async () => {
    const { alice, bob } = users;
    // Bob is logged in on a keep-alive connection from 127.0.0.4 before the flood.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await request(daemon, '/', {
      method: 'PROPFIND',
      headers: { Depth: '0' },
      user: bob,
      agent,
      from: '127.0.0.4',
    });
    assert.equal(first.status, 207);
    const slow: SlowClient[] = [];
    for (let i = 0; i < 25; i++) slow.push(await slowClient(daemon, '127.0.0.2', 'X', 5000));
    await sleep(300);
    const started = Date.now();
    assert.equal(await curlPropfind(daemon, alice, '127.0.0.3'), '207');
    const waited = Date.now() - started;
    console.log(
      `# another address served ${waited} ms after one address took all 20 connections with slow heads`,
    );
    assert.ok(waited < 20_000);
    const again = await request(daemon, '/', {
      method: 'PROPFIND',
      headers: { Depth: '0' },
      user: bob,
      agent,
      from: '127.0.0.4',
    });
    assert.equal(again.status, 207, 'the logged-in connection was not shed');
    agent.destroy();
    for (const client of slow) client.stop();
  });
});

describe('request heads and connections per address', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({
      extra: {
        limits: [
          'max_connections_per_address = 3',
          'header_timeout = "2s"',
          'header_timeout_max = "4s"',
          'header_min_rate = 100',
        ],
      },
    });
  });
  after(async () => {
    await daemon.stop();
  });

  test('a head that stalls is dropped after header_timeout; one arriving fast enough is extended up to header_timeout_max', async () => {
    const silent = await slowClient(daemon, '127.0.0.7', '', 60_000);
    const crawling = await slowClient(daemon, '127.0.0.8', 'X', 500); // 2 bytes/s: below the rate
    const trickling = await slowClient(
      daemon,
      '127.0.0.9',
      'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n',
      200,
    ); // 200 bytes/s
    const [silentMs, crawlingMs, tricklingMs] = await Promise.all([
      silent.closed,
      crawling.closed,
      trickling.closed,
    ]);
    console.log(
      `# head deadlines: silent closed after ${silentMs} ms, 2 B/s after ${crawlingMs} ms, 200 B/s after ${tricklingMs} ms`,
    );
    for (const ms of [silentMs, crawlingMs]) assert.ok(ms >= 1900 && ms < 4500, `${ms}`);
    assert.ok(tricklingMs >= 3900 && tricklingMs < 6500, `${tricklingMs}`);
  });

  test('a slow head that completes in time is answered', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: daemon.port, localAddress: '127.0.0.10' });
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    await new Promise((resolve) => socket.once('connect', resolve));
    for (const part of [
      'OPTIONS / HTTP/1.1\r\n',
      'Host: x\r\n',
      'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n',
      '\r\n',
    ]) {
      socket.write(part);
      await sleep(700);
    }
    assert.match(answer, /^HTTP\/1\.1 (200|401)/);
    socket.destroy();
  });

  test('the connection beyond max_connections_per_address is closed at once; another address still connects', async () => {
    const held = await Promise.all([0, 1, 2].map(() => slowClient(daemon, '127.0.0.5', 'X-A: b\r\n', 300)));
    const extra = await slowClient(daemon, '127.0.0.5', 'X-A: b\r\n', 300);
    const extraMs = await extra.closed;
    assert.ok(extraMs < 1000, `${extraMs}`);
    assert.ok(
      held.every((client) => !client.socket.destroyed),
      'the first three stay',
    );
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', user: users.alice, from: '127.0.0.6', agent: false }))
        .status,
      207,
    );
    for (const client of held) client.stop();
  });
});
