// A differential fuzz of the worker's rendered PROPFIND allprop (native/src/listing_xml.c)
// against the JavaScript renderer, through the real daemon in the tilde layout: collections full
// of random names (every character an href or XML escape cares about, invalid UTF-8, characters
// XML 1.0 lacks, names that shares.hide patterns may or may not match, 255-byte names), random
// kinds (files, sparse files, directories, symlinks, fifos) and odd times; listed as their owner,
// as another user (the tilde layout's shared directories) and at a share's root (Finder probes).
// A Depth 1 PROPFIND without a body (rendered) and the same with <D:include> (JavaScript's) must
// give the same set of <D:response> elements, and the multistatus must parse.
// Seeded: a failure names the seed and the first differing responses.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Daemon, freePort, getPlain, metricValue, request, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';
import { parseXmlOrNull } from '../../src/dav/xml';

// PRIVDAV_FUZZ_SEED=N tries another seed.
const SEED = Number(process.env.PRIVDAV_FUZZ_SEED ?? 0x5eed_2026);
const MEMBERS = 700;

/** Byte strings as latin1, so that invalid UTF-8 can be made. */
const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const ALPHABET = [
  ...'&<>"\'%+;=:@~!$*() \t\x7f\\.abzAZ09-_,?#[]{}|^`',
  '\r',
  '\n',
  '\x01',
  utf8('é'),
  utf8('e\u0301'),
  utf8('\u0301'),
  utf8('\uFFFE'),
  utf8('\uFFFF'),
  utf8('\uFFFD'),
  utf8('\u2028'),
  utf8('\u212A'), // KELVIN SIGN: NFC makes it "K"
  utf8('\uFB2C'), // NFC makes it three characters
  utf8('日'),
  utf8('😀'),
  utf8('\u{10FFFF}'),
  utf8('\u{10FF80}'),
  '\xff',
  '\xc3', // a truncated sequence
  '\xed\xa0\x80', // a surrogate
  '\xf4\x90\x80\x80', // above U+10FFFF
  '\xc0\xaf', // overlong
  '\xe0\x80\xaf', // overlong
];
const EXTENSIONS = [
  '',
  '.txt',
  '.TxT',
  '.DOCX',
  '.docx',
  utf8('.ÄXT'),
  utf8('.\u212Axt'),
  '.tmp',
  '.Tmp',
  '.html',
  '.',
  '.JPEG',
  '.tar.gz',
  '.constructor',
  '.__proto__',
  '.svg',
  '.js',
];
// Short ASCII names the hide patterns below match or nearly match.
const HIDE_ALPHABET = ['a', 'b', 'c', 'x', 'y', 'z', 'K', 'k', '~', '.', '[', ']', '?', '*'];
// None may match a share's segment ("~pdalice" and six hex digits) or the collections' names.
const HIDE = ['*.tmp', '.DS_Store', 'a?b', '*~', 'x*y*z', '[ab]', '*?x?', 'é*', '\u212A*', '\uFB2C?'];
// A few seconds (fractions, before 1970, the 32-bit edges, far future) utimes takes on ext4.
const TIMES = [
  -2147483648, -2147483000.5, -1234567.891, -1.5, -0.25, 0, 0.999, 1, 951782400, 2147483647, 2147483648.75,
  4102444800, 13569465600, 16725225600,
];
const SIZES = [0, 1, 4096, 2 ** 40, 2 ** 40 + 3];

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let users: TestUsers;
let alice: TestUser;
let bob: TestUser;
/** Tilde layout with shares.hide patterns; home layout without (then the addon renders names
 * that are not ASCII too). */
let tilde: Daemon;
let home: Daemon;
const metricsPorts = new Map<Daemon, number>();

const INCLUDE =
  '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:displayname/></D:include></D:propfind>';

/** A random name of 1 to 255 bytes, never "." or "..", no "/" or NUL. */
function randomName(random: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const style = random();
  let name = '';
  if (style < 0.15) {
    // Short ASCII names for the hide patterns.
    const length = 1 + Math.floor(random() * 5);
    for (let i = 0; i < length; i++) name += pick(HIDE_ALPHABET);
  } else if (style < 0.22) {
    // Long: up to 255 bytes of a character that needs the most escaping, or none.
    const filler = pick(['&', 'a', utf8('é'), '%', '<', utf8('日'), "'"]);
    const extension = pick(EXTENSIONS);
    while (name.length + filler.length + extension.length <= 255) name += filler;
    name += extension;
  } else {
    const length = 1 + Math.floor(random() * 12);
    for (let i = 0; i < length; i++) name += pick(ALPHABET);
    name += pick(EXTENSIONS);
  }
  if (random() < 0.05) name = '.privdav-' + name;
  name = name.slice(0, 255);
  return name === '.' || name === '..' ? name + 'x' : name;
}

/** Fills `dir` (raw bytes as latin1) with random members owned by `owner`. */
function populate(dir: string, owner: TestUser, seed: number, count: number): void {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const own = (path: Buffer): void => lchownSync(path, owner.uid, owner.gid);
  const names = new Set<string>();
  const fifos: Buffer[] = [];
  while (names.size < count) names.add(randomName(random));
  // Exact names privdav treats specially, among the random ones.
  for (const special of [
    '.privdav-old-0123456789abcdef',
    '.privdav-new-fedcba9876543210',
    '.privdav-',
    '.DS_Store',
    'mach_kernel',
    '._.',
    'Kfoo',
    'hidden.tmp',
  ])
    names.add(special);
  for (const name of names) {
    const path = Buffer.from(`${dir}/${name}`, 'latin1');
    const kind = random();
    if (kind < 0.7) {
      writeFileSync(path, '');
      const size = pick(SIZES);
      if (size > 0) truncateSync(path, size);
    } else if (kind < 0.85) {
      mkdirSync(path);
    } else if (kind < 0.93) {
      const target = random() < 0.5 ? pick([...names]) : 'missing-target';
      symlinkSync(Buffer.from(target, 'latin1'), path);
      own(path);
      continue;
    } else {
      fifos.push(path);
      continue;
    }
    own(path);
    if (kind < 0.85) {
      const time = pick(TIMES);
      utimesSync(path, time, time);
    }
  }
  // Names that are not UTF-8 do not survive an argv as strings: mkfifo(3) by their bytes.
  const hex = fifos.map((path) => path.toString('hex'));
  execFileSync('python3', ['-c', MKFIFOS, String(owner.uid), String(owner.gid), ...hex]);
}

const MKFIFOS = `import os, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
for path in sys.argv[3:]:
    os.mkfifo(bytes.fromhex(path))
    os.lchown(bytes.fromhex(path), uid, gid)`;

before(async () => {
  users = createUsers();
  alice = users.alice;
  bob = users.bob;
  const start = async (layout: 'tilde' | 'home', hide: string[]): Promise<Daemon> => {
    const port = await freePort();
    const daemon = await startDaemon({
      layout,
      extra: { shares: [`hide = ${JSON.stringify(hide)}`], metrics: [`listen = ["127.0.0.1:${port}"]`] },
    });
    metricsPorts.set(daemon, port);
    return daemon;
  };
  tilde = await start('tilde', HIDE);
  home = await start('home', []);
  // Bob's home is readable by alice: his names appear in her listings of /~bob/.
  chmodSync(bob.home, 0o755);
  const mkdir = (path: string, owner: TestUser): string => {
    mkdirSync(Buffer.from(path, 'latin1'), { mode: 0o755 });
    chownSync(Buffer.from(path, 'latin1'), owner.uid, owner.gid);
    return path;
  };
  populate(mkdir(`${alice.home}/fuzz`, alice), alice, SEED, MEMBERS);
  // A parent whose own href needs escapes and percent-encoding: the template's first piece.
  populate(mkdir(`${alice.home}/${PARENT}`, alice), alice, SEED + 1, 150);
  populate(mkdir(`${bob.home}/shared`, bob), bob, SEED + 2, 300);
  // A share root: the Finder probes are reserved there.
  populate(alice.home, alice, SEED + 3, 100);
});

after(async () => {
  await tilde?.stop();
  await home?.stop();
  users?.remove();
});

const PARENT = `p&q <${utf8('é')}>'~!`;
const PARENT_HREF = "p%26q%20%3C%C3%A9%3E'~!";

/** listRendered calls so far (none yet: no series). */
async function renderedListings(daemon: Daemon): Promise<number> {
  const { text } = await getPlain(metricsPorts.get(daemon)!, '/metrics');
  return metricValue(text, 'privdav_channel_call_duration_seconds_count{op="listRendered"}', 0);
}

async function propfind(daemon: Daemon, href: string, body: string | null): Promise<string> {
  const answer = await request(daemon, href, {
    user: alice,
    method: 'PROPFIND',
    headers: { Depth: '1', ...(body === null ? {} : { 'Content-Type': 'application/xml' }) },
    ...(body === null ? {} : { body }),
  });
  assert.equal(answer.status, 207, answer.text.slice(0, 2000));
  return answer.text;
}

function responses(xml: string): string[] {
  assert.ok(parseXmlOrNull(xml) !== null, 'the multistatus is well-formed XML');
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'));
  assert.ok(xml.endsWith('</D:multistatus>'));
  return xml.match(/<D:response>.*?<\/D:response>/gs) ?? [];
}

const hrefOf = (response: string): string => /<D:href>(.*?)<\/D:href>/s.exec(response)![1]!;

function compare(href: string, fast: string[], slow: string[]): void {
  const slowSet = new Set(slow);
  const fastSet = new Set(fast);
  assert.equal(fastSet.size, fast.length, `${href}: no member twice (rendered)`);
  const onlyFast = fast.filter((response) => !slowSet.has(response));
  const onlySlow = slow.filter((response) => !fastSet.has(response));
  assert.deepEqual(
    { onlyFast: onlyFast.slice(0, 3), onlySlow: onlySlow.slice(0, 3), counts: [fast.length, slow.length] },
    { onlyFast: [], onlySlow: [], counts: [slow.length, slow.length] },
    `${href} (seed ${SEED})`,
  );
}

describe('PROPFIND allprop rendered by the worker: differential fuzz', () => {
  const cases = (): Array<[string, Daemon, string]> => [
    ['own collection, hide patterns', tilde, `/~${alice.name}/fuzz/`],
    ['a parent href with escapes, hide patterns', tilde, `/~${alice.name}/${PARENT_HREF}/`],
    ["another user's names, hide patterns", tilde, `/~${bob.name}/shared/`],
    ['a share root (Finder probes), hide patterns', tilde, `/~${alice.name}/`],
    ['own collection, no hide pattern', home, '/fuzz/'],
    ['a parent href with escapes, no hide pattern', home, `/${PARENT_HREF}/`],
    ['the root, no hide pattern (Finder probes)', home, '/'],
  ];
  for (let index = 0; index < 7; index++) {
    test(`case ${index}: rendered and JavaScript responses are the same set`, async () => {
      const [what, daemon, href] = cases()[index]!;
      const before = await renderedListings(daemon);
      const fast = responses(await propfind(daemon, href, null));
      assert.equal(await renderedListings(daemon), before + 1, 'the worker rendered the listing');
      const slow = responses(await propfind(daemon, href, INCLUDE));
      compare(`${what} ${href}`, fast, slow);
      assert.ok(fast.length > 50, `${href}: ${fast.length} responses`);
      const hrefs = fast.map(hrefOf);
      const reserved = ['.privdav-old-0123456789abcdef', '.privdav-new-fedcba9876543210'];
      if (daemon === tilde) reserved.push('hidden.tmp', 'Kfoo');
      if (href.endsWith(`~${alice.name}/`) || href === '/') reserved.push('mach_kernel', '._.');
      for (const name of reserved)
        assert.ok(!hrefs.some((h) => h.endsWith(`/${name}`)), `${name} is not listed`);
    });
  }
});

describe('PROPFIND allprop rendered by the worker: a long hide pattern', () => {
  // shares.hide takes patterns of up to 255 characters; in NFC (as the web process sends them)
  // U+FB2C is three characters of two bytes: 1530 bytes, beyond what a render template may carry
  // per pattern (common/storage-protocol.ts). The listing must still succeed, and hide.
  const LONG = '\uFB2C'.repeat(255);
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ extra: { shares: [`hide = ${JSON.stringify([LONG, '*.tmp'])}`] } });
    mkdirSync(`${alice.home}/long-pattern`, { mode: 0o755 });
    for (const name of ['shown.txt', 'hidden.tmp']) writeFileSync(`${alice.home}/long-pattern/${name}`, '');
    execFileSync('chown', ['-R', `${alice.uid}:${alice.gid}`, `${alice.home}/long-pattern`]);
  });
  after(async () => {
    await daemon?.stop();
  });

  test('a Depth 1 allprop lists the collection, hidden names left out', async () => {
    const listed = responses(await propfind(daemon, '/long-pattern/', null)).map(hrefOf);
    assert.deepEqual(listed.sort(), ['/long-pattern/', '/long-pattern/shown.txt']);
  });
});
