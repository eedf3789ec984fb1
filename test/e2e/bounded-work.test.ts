// Work the shared web process does for one request is bounded (DESIGN.md invariant 8): property
// counts are capped, listings are streamed with flow control, and while bob runs the worst of
// these at once, alice's small GET stays fast.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Daemon, freePort, getPlain, metricValue, request, sleep, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

const BIG_DIRECTORY_ENTRIES = 50_000;
/** A tree of TREE_DIRECTORIES collections of TREE_FILES files each, for Depth: infinity. */
const TREE_DIRECTORIES = 200;
const TREE_FILES = 100;
/** bob's big file, more than a few of the copy's 4 MiB mapping windows. */
const BIG_FILE_BYTES = 64 * 1024 * 1024;

let users: TestUsers;
let daemon: Daemon;
let metricsPort: number;
let bigFileSha256: string;

before(async () => {
  users = createUsers();
  const { alice, bob } = users;
  writeFileSync(join(alice.home, 'small.bin'), Buffer.alloc(4096, 7));
  chownSync(join(alice.home, 'small.bin'), alice.uid, alice.gid);
  const big = join(bob.home, 'big');
  mkdirSync(big);
  for (let i = 0; i < BIG_DIRECTORY_ENTRIES; i++) writeFileSync(join(big, `file-${i}.txt`), '');
  chownSync(big, bob.uid, bob.gid);
  chmodSync(big, 0o755);
  const tree = join(bob.home, 'tree');
  mkdirSync(tree);
  for (let d = 0; d < TREE_DIRECTORIES; d++) {
    mkdirSync(join(tree, `d${d}`));
    for (let i = 0; i < TREE_FILES; i++) writeFileSync(join(tree, `d${d}`, `f${i}`), '');
  }
  // Not one repeated byte: a window sent twice or out of order changes the digest.
  const content = Buffer.alloc(BIG_FILE_BYTES);
  for (let i = 0; i < BIG_FILE_BYTES; i += 4) content.writeUInt32LE(i, i);
  writeFileSync(join(bob.home, 'big.bin'), content);
  chownSync(join(bob.home, 'big.bin'), bob.uid, bob.gid);
  bigFileSha256 = createHash('sha256').update(content).digest('hex');
  metricsPort = await freePort();
  daemon = await startDaemon({
    extra: {
      limits: ['max_infinity_entries = 100000'],
      metrics: [`listen = ["127.0.0.1:${metricsPort}"]`],
    },
  });
});
after(async () => {
  await daemon.stop();
  users.remove();
});

function authorization(user: TestUser): string {
  return `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;
}

function propfindNaming(count: number): string {
  let names = '';
  for (let i = 0; i < count; i++) names += `<p${i} xmlns="urn:many"/>`;
  return `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>${names}</D:prop></D:propfind>`;
}

/** Peak VmRSS of a process, in MiB, sampled every 25 ms while `during` runs. */
async function peakRssDuring(pid: number, during: () => Promise<void>): Promise<number> {
  let peak = 0;
  const sample = (): void => {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (match) peak = Math.max(peak, Number(match[1]) / 1024);
  };
  sample();
  const timer = setInterval(sample, 25);
  try {
    await during();
  } finally {
    clearInterval(timer);
    sample();
  }
  return peak;
}

/**
 * Sends a GET (or a PROPFIND Depth 1, allprop) and never reads its response: a slow reader.
 * `waitForHead` waits until the status line arrived (the listing began).
 */
function slowReader(
  user: TestUser,
  path: string,
  waitForHead: boolean,
  method: 'GET' | 'PROPFIND' = 'GET',
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(daemon.port, '127.0.0.1', () => {
      const depth = method === 'PROPFIND' ? 'Depth: 1\r\n' : '';
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${depth}Authorization: ${authorization(user)}\r\n\r\n`,
      );
      if (!waitForHead) resolve(socket);
    });
    socket.once('data', (chunk) => {
      socket.pause();
      if (!waitForHead) return;
      assert.match(chunk.toString('latin1'), method === 'PROPFIND' ? /^HTTP\/1\.1 207/ : /^HTTP\/1\.1 200/);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Runs curl as `user` with `args`, its body discarded; resolves to the HTTP status it saw. */
function curlStatus(user: TestUser, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-u', `${user.name}:${user.password}`, ...args],
      { encoding: 'utf8' },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    );
  });
}

/** Reads a whole response, returning the time to its first byte and in total. */
function timedRequest(
  user: TestUser,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; firstByteMs: number; totalMs: number; bytes: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(
      {
        host: '127.0.0.1',
        port: daemon.port,
        method,
        path,
        agent: false,
        headers: { ...headers, Authorization: authorization(user) },
      },
      (res) => {
        let firstByteMs = -1;
        let bytes = 0;
        let tail = '';
        res.on('data', (chunk: Buffer) => {
          if (firstByteMs < 0) firstByteMs = performance.now() - started;
          bytes += chunk.length;
          tail = (tail + chunk.toString('utf8')).slice(-2000);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            firstByteMs,
            totalMs: performance.now() - started,
            bytes,
            tail,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('bounds on one request', () => {
  test('a PROPFIND naming 1,000 properties is refused with 403 and the reason, before any listing', async () => {
    const reply = await request(daemon, '/big/', {
      method: 'PROPFIND',
      user: users.bob,
      headers: { Depth: '1', 'Content-Type': 'application/xml' },
      body: propfindNaming(1000),
    });
    assert.equal(reply.status, 403);
    assert.match(reply.text, /at most 200 properties; this one names 1000/);
    const allowed = await request(daemon, '/', {
      method: 'PROPFIND',
      user: users.bob,
      headers: { Depth: '0' },
      body: propfindNaming(200),
    });
    assert.equal(allowed.status, 207);
  });

  test('a URL longer than any path gets 414, not 500', async () => {
    const reply = await request(daemon, '/' + 'abcdefghi/'.repeat(1500), { user: users.bob });
    assert.equal(reply.status, 414);
    const fine = await request(daemon, '/' + './'.repeat(3000) + 'small.bin', { user: users.alice });
    assert.equal(fine.status, 200, 'a long URL naming a short path is fine');
  });

  test('Depth: infinity is streamed: its first byte comes long before its end', async () => {
    const reply = await timedRequest(users.bob, 'PROPFIND', '/tree/', { Depth: 'infinity' });
    assert.equal(reply.status, 207);
    assert.match(reply.tail, /<\/D:multistatus>$/);
    assert.ok(
      reply.firstByteMs < reply.totalMs / 3,
      `first byte after ${reply.firstByteMs.toFixed(0)} ms of ${reply.totalMs.toFixed(0)} ms`,
    );
  });
});

describe('Depth: infinity past max_infinity_entries (600)', () => {
  let small: Daemon;
  before(async () => {
    small = await startDaemon({ extra: { limits: ['max_infinity_entries = 600'] } });
  });
  after(() => small.stop());

  const propfind = (path: string): Promise<{ status: number; text: string }> =>
    request(small, path, { method: 'PROPFIND', user: users.bob, headers: { Depth: 'infinity' } });

  test('within the bound: the whole tree', async () => {
    const reply = await propfind('/tree/d0/');
    assert.equal(reply.status, 207);
    assert.equal(reply.text.match(/<D:response>/g)?.length, 1 + TREE_FILES);
  });

  // Caught before the worker's first batch (512 entries) it is a 403 (test/unit/dav-propfind).
  test('past it after the reply began: a well-formed 207 that ends with 507 for the request-URI', async () => {
    const reply = await propfind('/tree/');
    assert.equal(reply.status, 207);
    assert.match(
      reply.text,
      /<D:response><D:href>\/tree\/<\/D:href><D:status>HTTP\/1.1 507 Insufficient Storage<\/D:status><D:error><D:number-of-matches-within-limits\/><\/D:error><\/D:response><\/D:multistatus>$/,
    );
  });
});

describe('another user while bob runs the heaviest requests', () => {
  /** 100 sequential GETs of alice's 4 KiB file: [p50, p99] in ms. */
  async function aliceGetLatency(): Promise<[number, number]> {
    const latencies: number[] = [];
    for (let i = 0; i < 100; i++) {
      const reply = await timedRequest(users.alice, 'GET', '/small.bin');
      assert.equal(reply.status, 200);
      assert.equal(reply.bytes, 4096);
      latencies.push(reply.totalMs);
    }
    latencies.sort((a, b) => a - b);
    return [latencies[49], latencies[98]];
  }

  test('20 slow readers of a 50,000-entry HTML listing hold little memory; alice stays fast', async () => {
    const web = daemon.processes().web[0];
    assert.ok(web !== undefined);
    assert.equal((await request(daemon, '/small.bin', { user: users.alice })).status, 200);
    const readers: net.Socket[] = [];
    let latency: [number, number] = [0, 0];
    const peak = await peakRssDuring(web, async () => {
      // A reader that stops reading also stops bob's channel to his worker (flow control): his
      // own later requests wait, nobody else's do.
      readers.push(await slowReader(users.bob, '/big/', true));
      for (let i = 1; i < 20; i++) readers.push(await slowReader(users.bob, '/big/', false));
      await sleep(300);
      latency = await aliceGetLatency();
    });
    for (const reader of readers) reader.destroy();
    console.log(
      `slow readers: web peak RSS ${peak.toFixed(0)} MiB; alice GET p50 ${latency[0].toFixed(1)} ms, p99 ${latency[1].toFixed(1)} ms`,
    );
    assert.ok(peak < 200, `web process peak RSS ${peak.toFixed(0)} MiB`);
    assert.ok(latency[1] < 1000, `p99 ${latency[1].toFixed(0)} ms`);
  });

  test('20 slow readers of a 50,000-entry rendered PROPFIND hold little memory; alice stays fast', async () => {
    // The web process passes the worker's rendered responses on without copying them and holds
    // each message until its write is done: a reader that stops reading must still hold only what
    // flow control lets through (a write or two and the channel's bounded queue), not its listing.
    const web = daemon.processes().web[0];
    assert.ok(web !== undefined);
    const readers: net.Socket[] = [];
    let latency: [number, number] = [0, 0];
    const peak = await peakRssDuring(web, async () => {
      readers.push(await slowReader(users.bob, '/big/', true, 'PROPFIND'));
      for (let i = 1; i < 20; i++) readers.push(await slowReader(users.bob, '/big/', false, 'PROPFIND'));
      await sleep(300);
      latency = await aliceGetLatency();
    });
    for (const reader of readers) reader.destroy();
    console.log(
      `slow PROPFIND readers: web peak RSS ${peak.toFixed(0)} MiB; alice GET p50 ${latency[0].toFixed(1)} ms, p99 ${latency[1].toFixed(1)} ms`,
    );
    assert.ok(peak < 200, `web process peak RSS ${peak.toFixed(0)} MiB`);
    assert.ok(latency[1] < 1000, `p99 ${latency[1].toFixed(0)} ms`);
  });

  test("alice's 4 KiB GET stays under 1 s at p99 while bob runs big PROPFINDs in parallel", async () => {
    const { bob } = users;
    const body = join(bob.home, 'propfind-200.xml');
    writeFileSync(body, propfindNaming(200));
    // The heavy load comes from curl processes, so this process's event loop measures only alice.
    let stop = false;
    const loop = (args: string[]): Promise<void> =>
      (async () => {
        while (!stop) {
          const status = await curlStatus(bob, args);
          assert.equal(status, '207');
        }
      })();
    const heavy = [
      loop(['-X', 'PROPFIND', '-H', 'Depth: 1', '--data-binary', `@${body}`, `${daemon.url}/big/`]),
      loop(['-X', 'PROPFIND', '-H', 'Depth: 1', '--data-binary', `@${body}`, `${daemon.url}/big/`]),
      loop(['-X', 'PROPFIND', '-H', 'Depth: infinity', `${daemon.url}/tree/`]),
    ];
    await sleep(1000);
    const [p50, p99] = await aliceGetLatency();
    stop = true;
    await Promise.all(heavy);
    console.log(`heavy PROPFINDs: alice GET p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
    assert.ok(p99 < 1000, `p99 ${p99.toFixed(0)} ms`);
  });
});

/** The counter `privdav_file_body_bytes_total` by way. */
async function fileBodyBytes(): Promise<{ sendfile: number; copy: number }> {
  const { status, text } = await getPlain(metricsPort, '/metrics');
  const sendfile = metricValue(text, 'privdav_file_body_bytes_total{way="sendfile"}');
  const copy = metricValue(text, 'privdav_file_body_bytes_total{way="copy"}');
  if (status !== 200 || !Number.isInteger(sendfile) || !Number.isInteger(copy))
    throw new Error(`no privdav_file_body_bytes_total in /metrics (${status}):\n${text}`);
  return { sendfile, copy };
}

/** A whole GET of bob's big file: its length and SHA-256 as received. */
function download(): Promise<{ status: number; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(
        {
          host: '127.0.0.1',
          port: daemon.port,
          path: '/big.bin',
          agent: false,
          headers: { Authorization: authorization(users.bob) },
        },
        (res) => {
          const hash = createHash('sha256');
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            hash.update(chunk);
          });
          res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: hash.digest('hex') }));
          res.on('error', reject);
        },
      )
      .on('error', reject);
  });
}

describe('big downloads to clients on this host', () => {
  test('are written from a mapping, a window at a time: 16 at once and 8 stalled add little to the web process', async () => {
    // To a loopback client a body over 64 KiB is copied from a mapping of the file (faster there
    // than sendfile); each threadpool step maps at most 4 MiB and unmaps it before it ends, so
    // what the shared web process maps is bounded by its threadpool (4 threads), not by how many
    // downloads run or stall. A mapping held per transfer would add 24 x 4 MiB or more.
    const web = daemon.processes().web[0];
    assert.ok(web !== undefined);
    // The counter moves when a transfer's callback runs, which may be after the client has it all.
    const settled = async (copy: number): Promise<{ sendfile: number; copy: number }> => {
      let counted = await fileBodyBytes();
      for (let i = 0; i < 200 && counted.copy < copy; i++) {
        await sleep(50);
        counted = await fileBodyBytes();
      }
      return counted;
    };
    const initial = await fileBodyBytes();
    assert.equal((await download()).bytes, BIG_FILE_BYTES);
    const before = await settled(initial.copy + BIG_FILE_BYTES);
    assert.equal(before.copy, initial.copy + BIG_FILE_BYTES, 'the first download was counted, whole');
    const baseline =
      Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${web}/status`, 'utf8'))![1]) / 1024;
    const stalled: net.Socket[] = [];
    let downloads: { status: number; bytes: number; sha256: string }[] = [];
    const peak = await peakRssDuring(web, async () => {
      for (let i = 0; i < 8; i++) stalled.push(await slowReader(users.bob, '/big.bin', true));
      downloads = await Promise.all(Array.from({ length: 16 }, () => download()));
    });
    // Counted while the stalled transfers still wait (they count when they end): exactly the 16.
    const after = await settled(before.copy + 16 * BIG_FILE_BYTES);
    for (const socket of stalled) socket.destroy();
    for (const result of downloads) {
      assert.equal(result.status, 200);
      assert.equal(result.bytes, BIG_FILE_BYTES);
      assert.equal(result.sha256, bigFileSha256);
    }
    console.log(
      `16 + 8 stalled 64 MiB downloads: web VmRSS ${baseline.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB`,
    );
    assert.ok(peak - baseline < 48, `the web process grew by ${(peak - baseline).toFixed(0)} MiB`);
    // Every byte went the copy's way.
    assert.equal(after.copy - before.copy, 16 * BIG_FILE_BYTES, 'the 16 downloads were counted as copied');
    assert.equal(after.sendfile, initial.sendfile, 'no byte went by sendfile to a client on this host');
  });
});
