// A directory far past 100,000 members, where the worker's listing used to fall back from the
// addon to a JavaScript stat per member (~4× the cost per entry): listed in full through the real
// daemon, every member once with its properties, at the same worker CPU per entry as a smaller one.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Daemon, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

/** Past the old 100,000-member cliff by half. */
const BIG_MEMBERS = 150_000;
/** Listed natively before and after: the per-entry cost to compare with. */
const SMALL_MEMBERS = 20_000;
const SMALL_REPEATS = 4;

let users: TestUsers;
let daemon: Daemon;

function memberName(i: number): string {
  return `m-${String(i).padStart(6, '0')}`;
}

/** `count` empty files m-000000... in a new directory `name` of bob's home, plus the given extras. */
function makeDirectory(name: string, count: number): string {
  const dir = join(users.bob.home, name);
  mkdirSync(dir);
  for (let i = 0; i < count; i++) closeSync(openSync(join(dir, memberName(i)), 'w'));
  chmodSync(dir, 0o755);
  return dir;
}

before(() => {
  users = createUsers();
  const big = makeDirectory('big', BIG_MEMBERS - 3);
  // Samples whose entries say more than an empty file's.
  writeFileSync(join(big, 'hello.txt'), 'hello');
  execFileSync('setfattr', [
    '-n',
    'user.dav:{urn:x}color',
    '-v',
    '<color xmlns="urn:x">red</color>',
    join(big, 'hello.txt'),
  ]);
  mkdirSync(join(big, 'sub'));
  writeFileSync(join(big, 'ünïcödé'), '12');
  makeDirectory('small', SMALL_MEMBERS);
});
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon.stop();
  users.remove();
});

const ALLPROP = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>';

/** User and system CPU seconds a process has used (from /proc/PID/stat). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

function workerOf(user: TestUser): number {
  const pid = daemon.processes().workers.find((worker) => {
    const status = readFileSync(`/proc/${worker}/status`, 'utf8');
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === user.uid;
  });
  assert.ok(pid !== undefined, `${user.name} has a worker`);
  return pid;
}

interface Listing {
  status: number;
  /** Each response's href (the body is read as it streams by, not kept whole). */
  hrefs: Set<string>;
  responses: number;
  /** The text of the responses for the hrefs asked for. */
  samples: Map<string, string>;
  /** What followed the last response. */
  tail: string;
}

/** A PROPFIND Depth 1 as bob, its multistatus read response by response. */
function propfind(path: string, samples: readonly string[]): Promise<Listing> {
  const wanted = new Set(samples);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: daemon.port,
        method: 'PROPFIND',
        path,
        agent: false,
        headers: {
          Depth: '1',
          'Content-Type': 'application/xml',
          Authorization: `Basic ${Buffer.from(`${users.bob.name}:${users.bob.password}`).toString('base64')}`,
        },
      },
      (res) => {
        const listing: Listing = {
          status: res.statusCode!,
          hrefs: new Set(),
          responses: 0,
          samples: new Map(),
          tail: '',
        };
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const pieces = (pending + chunk).split('</D:response>');
          pending = pieces.pop()!;
          for (const piece of pieces) {
            listing.responses++;
            const href = /<D:href>([^<]*)<\/D:href>/.exec(piece)?.[1] ?? '';
            listing.hrefs.add(href);
            if (wanted.has(href)) listing.samples.set(href, piece);
          }
        });
        res.on('end', () => resolve({ ...listing, tail: pending }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(ALLPROP);
  });
}

describe(`a directory of ${BIG_MEMBERS.toLocaleString('en')} members`, () => {
  let bigCpu = 0;

  test('PROPFIND Depth 1 lists every member once, each with its own properties', async () => {
    // The worker exists after a first request; its CPU is counted from here.
    assert.equal((await propfind('/small/', [])).status, 207);
    const worker = workerOf(users.bob);
    const cpuBefore = cpuSeconds(worker);
    const first = `/big/${memberName(0)}`;
    const middle = `/big/${memberName(77_777)}`;
    const last = `/big/${memberName(BIG_MEMBERS - 4)}`;
    const listing = await propfind('/big/', [
      first,
      middle,
      last,
      '/big/hello.txt',
      '/big/sub/',
      '/big/%C3%BCn%C3%AFc%C3%B6d%C3%A9',
    ]);
    bigCpu = cpuSeconds(worker) - cpuBefore;
    assert.equal(listing.status, 207);
    assert.match(listing.tail, /<\/D:multistatus>\s*$/, 'the whole multistatus');
    assert.equal(listing.responses, BIG_MEMBERS + 1, 'the collection and each member');
    assert.equal(listing.hrefs.size, BIG_MEMBERS + 1, 'none twice');
    for (const href of [first, middle, last]) {
      assert.match(listing.samples.get(href) ?? '', /<D:getcontentlength>0<\/D:getcontentlength>/, href);
      assert.match(listing.samples.get(href)!, /<D:resourcetype\/>/, href);
    }
    const hello = listing.samples.get('/big/hello.txt') ?? '';
    assert.match(hello, /<D:getcontentlength>5<\/D:getcontentlength>/);
    assert.match(hello, /<color xmlns="urn:x">red<\/color>/, 'its dead property');
    assert.match(
      listing.samples.get('/big/sub/') ?? '',
      /<D:resourcetype><D:collection\/><\/D:resourcetype>/,
    );
    assert.match(
      listing.samples.get('/big/%C3%BCn%C3%AFc%C3%B6d%C3%A9') ?? '',
      /<D:getcontentlength>2<\/D:getcontentlength>/,
    );
  });

  test(`costs the worker no more CPU per entry than ${SMALL_MEMBERS.toLocaleString('en')} members do`, async () => {
    assert.ok(bigCpu > 0, 'the listing above was measured');
    const worker = workerOf(users.bob);
    // Several times: one listing of the smaller directory is only a few 10 ms clock ticks.
    const cpuBefore = cpuSeconds(worker);
    for (let i = 0; i < SMALL_REPEATS; i++)
      assert.equal((await propfind('/small/', [])).responses, SMALL_MEMBERS + 1);
    const smallCpu = cpuSeconds(worker) - cpuBefore;
    const perEntry = (seconds: number, entries: number): number => (seconds / entries) * 1e6;
    const big = perEntry(bigCpu, BIG_MEMBERS);
    const reference = perEntry(smallCpu, SMALL_MEMBERS * SMALL_REPEATS);
    process.stdout.write(
      `# worker CPU per entry: ${big.toFixed(2)} µs (big), ${reference.toFixed(2)} µs (small)\n`,
    );
    // Generous (a loaded machine, 10 ms clock ticks): the JavaScript fallback cost ~4× as much.
    assert.ok(big < reference * 2 + 1, `${big.toFixed(2)} µs vs ${reference.toFixed(2)} µs per entry`);
  });
});
