// The addon's listings on a real directory (members, stat, dead-property xattrs, batches, errors),
// the cursor they are read through (one read at a time; the directory closed at the end, on an
// error, on close and when abandoned), and LocalStorage listings built from them: the same
// entries, ETags and properties as the per-member stat and xattr calls give.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { after, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import {
  DirectoryCursor,
  listDirectory,
  membersOfBatch,
  xattrSet as setAttributeSync,
  type ListDirectoryOptions,
  type ListedMember,
  type ListingBatch,
} from '../../native/index';
import { readDeadProps } from '../../helper/dead-props';
import { LocalStorage } from '../../helper/local-storage';
import { type Entry, type PropSelection } from '../../common/storage';

const roots: string[] = [];
function makeRoot(): string {
  const root = fs.mkdtempSync('/tmp/privdav-native-listdir-');
  roots.push(root);
  return root;
}
after(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

const LONG_NAME = `{urn:example}${'x'.repeat(300)}`;
const LONG_ATTR = `user.dav#${createHash('sha256').update(LONG_NAME, 'utf8').digest('hex')}`;

/** A directory with a file carrying dead properties (plain and hashed), a subdirectory, symlinks. */
function makeTree(): string {
  const root = makeRoot();
  fs.writeFileSync(`${root}/plain.txt`, 'hello');
  fs.writeFileSync(`${root}/props.txt`, 'with properties');
  setAttributeSync(`${root}/props.txt`, 'user.dav:{urn:x}p', Buffer.from('<p xmlns="urn:x">v</p>'));
  setAttributeSync(
    `${root}/props.txt`,
    LONG_ATTR,
    Buffer.from(`${LONG_NAME}\0<x xmlns="urn:example">long</x>`),
  );
  setAttributeSync(`${root}/props.txt`, 'user.other', Buffer.from('not a property'));
  fs.mkdirSync(`${root}/sub`);
  fs.symlinkSync('plain.txt', `${root}/link`);
  fs.symlinkSync('missing', `${root}/dangling`);
  return root;
}

function byName(members: ListedMember[]): Map<string, ListedMember> {
  return new Map(members.map((member) => [member.name.toString('latin1'), member]));
}

function attributes(member: ListedMember): Record<string, string | null> {
  return Object.fromEntries(
    member.xattrs.map(({ name, value }) => [name.toString(), value === null ? null : value.toString()]),
  );
}

async function rejectsWithCode(code: string, promise: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}`),
    (caught: NodeJS.ErrnoException) => caught,
  );
  assert.equal(error.code, code);
  return error;
}

/** The members listDirectory gives, copied out while iterating (each batch is freed after). */
async function listNow(path: string, options: ListDirectoryOptions): Promise<ListedMember[]> {
  const members: ListedMember[] = [];
  for await (const batch of listDirectory(path, options)) {
    for (const member of batch)
      members.push({
        name: Buffer.from(member.name),
        isSymlink: member.isSymlink,
        stat: member.stat,
        numbers: { ...member.numbers },
        xattrs: member.xattrs.map(({ name, value }) => ({
          name: Buffer.from(name),
          value: value === null ? null : Buffer.from(value),
        })),
      });
  }
  return members;
}

describe('listDirectory', () => {
  const root = makeTree();

  test('lists every member but . and .., each with the stat node:fs gives (symlinks followed)', async () => {
    const members = byName(await listNow(root, { xattrs: 'none', batchMembers: 100 }));
    assert.deepEqual([...members.keys()].sort(), ['link', 'plain.txt', 'props.txt', 'sub']);
    for (const [name, member] of members) {
      const expected = fs.statSync(`${root}/${name}`, { bigint: true });
      for (const field of [
        'dev',
        'ino',
        'mode',
        'uid',
        'gid',
        'size',
        'mtimeNs',
        'ctimeNs',
        'birthtimeNs',
      ] as const) {
        assert.equal(member.stat[field], expected[field], `${name}: ${field}`);
      }
      assert.equal(member.isSymlink, name === 'link', `${name}: isSymlink`);
      assert.deepEqual(member.xattrs, []);
    }
  });

  test("a dangling symlink cannot be stat'ed and is left out", async () => {
    const members = byName(await listNow(root, { xattrs: 'none', batchMembers: 100 }));
    assert.equal(members.has('dangling'), false);
  });

  test('names that are not UTF-8 come back as their raw bytes', async () => {
    const dir = makeRoot();
    fs.writeFileSync(Buffer.from(`${dir}/caf\xe9`, 'latin1'), '');
    const [member] = await listNow(dir, { xattrs: 'none', batchMembers: 10 });
    assert.deepEqual(member?.name, Buffer.from('caf\xe9', 'latin1'));
  });

  test("xattrs 'values' gives the user.dav attributes with their values, and no others", async () => {
    const members = byName(await listNow(root, { xattrs: 'values', batchMembers: 100 }));
    assert.deepEqual(attributes(members.get('props.txt')!), {
      'user.dav:{urn:x}p': '<p xmlns="urn:x">v</p>',
      [LONG_ATTR]: `${LONG_NAME}\0<x xmlns="urn:example">long</x>`,
    });
    assert.deepEqual(members.get('plain.txt')!.xattrs, []);
  });

  test("xattrs 'names' reads only the values of hashed attributes, which hold the property name", async () => {
    const members = byName(await listNow(root, { xattrs: 'names', batchMembers: 100 }));
    assert.deepEqual(attributes(members.get('props.txt')!), {
      'user.dav:{urn:x}p': null,
      [LONG_ATTR]: `${LONG_NAME}\0<x xmlns="urn:example">long</x>`,
    });
  });

  test('in batches of any size, with or without a first batch read at once: the same members in order', async () => {
    const names = async (options: ListDirectoryOptions) =>
      (await listNow(root, options)).map((member) => `${member.name.toString('latin1')} ${member.stat.ino}`);
    const whole = await names({ xattrs: 'values', batchMembers: 100 });
    assert.equal(whole.length, 4);
    for (const batchMembers of [1, 2, 3, 4, 5])
      for (const firstBatchNow of [0, 1, 3, 4])
        assert.deepEqual(await names({ xattrs: 'values', batchMembers, firstBatchNow }), whole);
    assert.deepEqual(await listNow(makeRoot(), { xattrs: 'none', batchMembers: 1 }), []);
  });

  test('a missing path or a file fails like node:fs, with code, syscall and path', async () => {
    const missing = await rejectsWithCode(
      'ENOENT',
      listNow(`${root}/nope`, { xattrs: 'none', batchMembers: 1 }),
    );
    assert.equal(missing.syscall, 'opendir');
    assert.equal(missing.path, `${root}/nope`);
    await rejectsWithCode('ENOTDIR', listNow(`${root}/plain.txt`, { xattrs: 'none', batchMembers: 1 }));
  });

  test('listDirectory frees each batch when the next is asked for', async () => {
    const options = { xattrs: 'values', batchMembers: 2 } as const;
    const eager = await listNow(root, options);
    const seen: Array<{ name: string; ino: bigint; xattrs: string[] }> = [];
    let firstName: Buffer | null = null;
    let firstNameInItsBatch = -1;
    for await (const batch of listDirectory(root, options)) {
      for (const member of batch) {
        if (seen.length === 1) firstNameInItsBatch = firstName!.length;
        firstName ??= member.name;
        seen.push({
          name: member.name.toString('latin1'),
          ino: member.stat.ino,
          xattrs: member.xattrs.map((x) => `${x.name.toString('latin1')}=${x.value?.toString('latin1')}`),
        });
      }
    }
    assert.deepEqual(
      seen,
      eager.map((member) => ({
        name: member.name.toString('latin1'),
        ino: member.stat.ino,
        xattrs: member.xattrs.map((x) => `${x.name.toString('latin1')}=${x.value?.toString('latin1')}`),
      })),
    );
    // Valid while its batch was in hand; its memory went when the next batch was asked for.
    assert.ok(firstNameInItsBatch > 0);
    assert.equal(firstName?.length, 0);
  });

  test('bad arguments are refused before reaching the threadpool', async () => {
    const drain = async (options: ListDirectoryOptions, path = root) => {
      for await (const batch of listDirectory(path, options)) assert.ok([...batch]);
    };
    await assert.rejects(drain({ xattrs: 'none', batchMembers: 1 }, `${root}\0/sub`), TypeError);
    await assert.rejects(drain({ xattrs: 'none', batchMembers: 1 }, ''), TypeError);
    for (const batchMembers of [0, -1, 1.5, NaN, 2 ** 32])
      await assert.rejects(drain({ xattrs: 'none', batchMembers }), TypeError, String(batchMembers));
    await assert.rejects(drain({ xattrs: 'none', batchMembers: 1, firstBatchNow: 0.5 }), TypeError);
  });
});

/** How many descriptors this process holds open on `dir` (a cursor's DIR stream). */
function openOn(dir: string): number {
  let count = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === dir) count++;
    } catch {
      // The descriptor readdirSync itself used, closed meanwhile.
    }
  }
  return count;
}

/** Waits (a bounded number of event-loop turns) until `check` holds. */
async function eventually(check: () => boolean, what: string, turns = 200): Promise<void> {
  for (let i = 0; i < turns && !check(); i++) await nextTurn();
  assert.ok(check(), what);
}

/** The names in a batch. */
function namesOf(batch: ListingBatch): string[] {
  return [...membersOfBatch(batch)].map((member) => member.name.toString('latin1'));
}

function summary(batch: ListingBatch): { count: number; end: boolean } {
  return { count: batch.count, end: batch.end };
}

describe('DirectoryCursor', () => {
  const dir = makeRoot();
  for (let i = 0; i < 10; i++) fs.writeFileSync(`${dir}/m${i}`, '');

  test('batches hold at most maxMembers; the last says end; together they are the directory', async () => {
    const cursor = new DirectoryCursor(dir, 'none');
    const counts: number[] = [];
    const names: string[] = [];
    for (;;) {
      const batch = await cursor.read(3);
      counts.push(batch.count);
      names.push(...namesOf(batch));
      if (batch.end) break;
    }
    assert.deepEqual(counts, [3, 3, 3, 1]);
    assert.deepEqual(names.sort(), fs.readdirSync(dir).sort());
  });

  test('a batch that fills exactly is not the last: the next is empty and ends', async () => {
    const exact = makeRoot();
    for (let i = 0; i < 3; i++) fs.writeFileSync(`${exact}/m${i}`, '');
    const cursor = new DirectoryCursor(exact, 'none');
    assert.deepEqual(summary(cursor.readNow(3)), { count: 3, end: false });
    assert.deepEqual(summary(await cursor.read(3)), { count: 0, end: true });
  });

  test('a batch also ends once it holds 4 MiB, and the next goes on where it stopped', async () => {
    // 1,400 members with 3,900 bytes of dead property each (what fits an ext4 xattr block): 5.5 MB.
    const heavy = makeRoot();
    const value = Buffer.alloc(3900, 'v');
    for (let i = 0; i < 1400; i++) {
      fs.writeFileSync(`${heavy}/h${i}`, '');
      setAttributeSync(`${heavy}/h${i}`, 'user.dav:{urn:x}big', value);
    }
    const cursor = new DirectoryCursor(heavy, 'values');
    const first = cursor.readNow(4096);
    assert.ok(first.count > 900 && first.count < 1100 && !first.end, `${first.count} members`);
    const names = namesOf(first);
    for (let batch = await cursor.read(4096); ; batch = await cursor.read(4096)) {
      names.push(...namesOf(batch));
      if (batch.end) break;
    }
    assert.deepEqual(names.sort(), fs.readdirSync(heavy).sort());
  });

  test('the directory is opened by the first batch and closed after the last; reading on is refused', async () => {
    const cursor = new DirectoryCursor(dir, 'none');
    assert.equal(openOn(dir), 0, 'not opened before the first batch');
    cursor.readNow(4);
    assert.equal(openOn(dir), 1);
    assert.equal((await cursor.read(100)).end, true);
    assert.equal(openOn(dir), 0, 'closed with the last batch');
    assert.throws(() => cursor.readNow(1), { code: 'ERR_LISTING_CLOSED' });
    await assert.rejects(cursor.read(1), { code: 'ERR_LISTING_CLOSED' });
    cursor.close(); // idempotent
  });

  test('a read while another is in flight is refused; the one in flight completes', async () => {
    const cursor = new DirectoryCursor(dir, 'none');
    const first = cursor.read(4);
    assert.throws(() => cursor.readNow(4), { code: 'ERR_LISTING_BUSY' });
    await assert.rejects(cursor.read(4), { code: 'ERR_LISTING_BUSY' });
    assert.deepEqual(summary(await first), { count: 4, end: false });
    assert.equal((await cursor.read(4)).count, 4, 'then reading goes on where it stopped');
    cursor.close();
    assert.equal(openOn(dir), 0);
  });

  test('close during a read: the batch is dropped with ECANCELED and the directory closed', async () => {
    const cursor = new DirectoryCursor(dir, 'none');
    cursor.readNow(1);
    const inFlight = cursor.read(4);
    cursor.close();
    await assert.rejects(inFlight, { code: 'ECANCELED' });
    assert.equal(openOn(dir), 0);
    assert.throws(() => cursor.readNow(1), { code: 'ERR_LISTING_CLOSED' });
  });

  test('an error closes the listing: opendir failing, and a listing its consumer gives up on', async () => {
    const missing = new DirectoryCursor(`${dir}/nowhere`, 'none');
    await assert.rejects(missing.read(1), { code: 'ENOENT', syscall: 'opendir' });
    assert.throws(() => missing.readNow(1), { code: 'ERR_LISTING_CLOSED' });
    // The consumer fails at the first member, while the next batch is being read.
    await assert.rejects(async () => {
      for await (const batch of listDirectory(dir, { xattrs: 'none', batchMembers: 2 })) {
        assert.equal(openOn(dir), 1);
        throw new Error(`enough after ${[...batch].length} members`);
      }
    }, /enough after/);
    await eventually(() => openOn(dir) === 0, 'closed once the batch in flight completed');
  });

  test('a cursor dropped before its end is closed by the garbage collector', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    (() => {
      const cursor = new DirectoryCursor(dir, 'none');
      cursor.readNow(1);
    })();
    assert.equal(openOn(dir), 1);
    await eventually(() => {
      gc();
      return openOn(dir) === 0;
    }, 'finalized and closed');
  });
});

describe('LocalStorage listings through the addon', () => {
  const root = makeTree();
  const storage = new LocalStorage({ layout: { kind: 'home', root } });

  async function listing(props: PropSelection): Promise<Entry[]> {
    const entries: Entry[] = [];
    for await (const entry of storage.list('/', 1, { props, limit: 1000 })) entries.push(entry);
    return entries;
  }

  test('each member has the same stat and ETag as a stat of that member', async () => {
    const members = (await listing('none')).slice(1);
    assert.deepEqual(members.map((entry) => entry.path).sort(), [
      '/link',
      '/plain.txt',
      '/props.txt',
      '/sub',
    ]);
    for (const entry of members) assert.deepEqual(entry.stat, await storage.stat(entry.path), entry.path);
  });

  test('times and sizes computed by the addon match node:fs to the microsecond, before 1970 too', async () => {
    const dir = makeRoot();
    const times = [-1234567.891234, 0.000001, 1.5, 1764237909.123456, 4102444800.999999];
    times.forEach((seconds, i) => {
      fs.writeFileSync(`${dir}/t${i}`, 'x'.repeat(i));
      fs.utimesSync(`${dir}/t${i}`, seconds, seconds);
    });
    const sparse = fs.openSync(`${dir}/sparse`, 'w');
    fs.ftruncateSync(sparse, 2 ** 40 + 12345);
    fs.closeSync(sparse);
    const local = new LocalStorage({ layout: { kind: 'home', root: dir }, durable: false });
    let members = 0;
    for await (const entry of local.list('/', 1, { props: 'none', limit: 100 })) {
      if (entry.path === '/') continue;
      members++;
      assert.deepEqual(entry.stat, await local.stat(entry.path), entry.path);
    }
    assert.equal(members, times.length + 1);
  });

  test('each member has the same dead properties as readDeadProps gives, for every selection', async () => {
    const selections: PropSelection[] = ['names', 'all', ['{urn:x}p'], [LONG_NAME, '{urn:x}absent'], []];
    for (const selection of selections) {
      for (const entry of (await listing(selection)).slice(1)) {
        const expected = readDeadProps(root + entry.path, selection);
        assert.deepEqual(entry.props, expected, `${entry.path} ${JSON.stringify(selection)}`);
      }
    }
    const props = (await listing('all')).find((entry) => entry.path === '/props.txt')!.props;
    assert.deepEqual(props, {
      '{urn:x}p': '<p xmlns="urn:x">v</p>',
      [LONG_NAME]: '<x xmlns="urn:example">long</x>',
    });
  });

  test('a damaged hashed attribute is not a property', async () => {
    const dir = makeRoot();
    fs.writeFileSync(`${dir}/f`, '');
    setAttributeSync(`${dir}/f`, `user.dav#${'0'.repeat(64)}`, Buffer.from('{urn:x}forged\0<forged/>'));
    const local = new LocalStorage({ layout: { kind: 'home', root: dir } });
    const entries: Entry[] = [];
    for await (const entry of local.list('/', 1, { props: 'all', limit: 10 })) entries.push(entry);
    assert.deepEqual(entries[1]?.props, {});
  });

  test('depth infinity counts only addressable names against its limit', async () => {
    // Two names no DavPath can carry: the addon sees 5 members, the listing has 1 + 3 entries.
    const dir = makeRoot();
    for (const name of ['a', 'b', 'c']) fs.writeFileSync(`${dir}/${name}`, '');
    fs.writeFileSync(`${dir}/..\\x`, ''); // ".." to Windows clients
    fs.writeFileSync(`${dir}/a\\..\\b`, '');
    const local = new LocalStorage({ layout: { kind: 'home', root: dir } });
    const entries: Entry[] = [];
    for await (const entry of local.list('/', 'infinity', { props: 'none', limit: 4 })) entries.push(entry);
    assert.deepEqual(entries.map((entry) => entry.path).sort(), ['/', '/a', '/b', '/c']);
  });
});
