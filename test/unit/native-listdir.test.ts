// The addon's listDirectory on a real directory (members, stat, dead-property xattrs, bounds,
// errors), and LocalStorage listings built from it: the same entries, ETags and properties as the
// per-member stat and xattr calls give.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { after, describe, test } from 'node:test';
import { xattrSet as setAttributeSync } from '../../native/index';
import { listDirectoryLazily, type ListDirectoryOptions, type ListedMember } from '../../native';
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

/** The members listDirectoryLazily gives, copied out while iterating (the listing is freed after). */
async function listNow(path: string, options: ListDirectoryOptions): Promise<ListedMember[]> {
  const members: ListedMember[] = [];
  for (const member of await listDirectoryLazily(path, options)) {
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
    const members = byName(await listNow(root, { xattrs: 'none', maxMembers: 100 }));
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
    const members = byName(await listNow(root, { xattrs: 'none', maxMembers: 100 }));
    assert.equal(members.has('dangling'), false);
  });

  test('names that are not UTF-8 come back as their raw bytes', async () => {
    const dir = makeRoot();
    fs.writeFileSync(Buffer.from(`${dir}/caf\xe9`, 'latin1'), '');
    const [member] = await listNow(dir, { xattrs: 'none', maxMembers: 10 });
    assert.deepEqual(member?.name, Buffer.from('caf\xe9', 'latin1'));
  });

  test("xattrs 'values' gives the user.dav attributes with their values, and no others", async () => {
    const members = byName(await listNow(root, { xattrs: 'values', maxMembers: 100 }));
    assert.deepEqual(attributes(members.get('props.txt')!), {
      'user.dav:{urn:x}p': '<p xmlns="urn:x">v</p>',
      [LONG_ATTR]: `${LONG_NAME}\0<x xmlns="urn:example">long</x>`,
    });
    assert.deepEqual(members.get('plain.txt')!.xattrs, []);
  });

  test("xattrs 'names' reads only the values of hashed attributes, which hold the property name", async () => {
    const members = byName(await listNow(root, { xattrs: 'names', maxMembers: 100 }));
    assert.deepEqual(attributes(members.get('props.txt')!), {
      'user.dav:{urn:x}p': null,
      [LONG_ATTR]: `${LONG_NAME}\0<x xmlns="urn:example">long</x>`,
    });
  });

  test('more members than maxMembers fails with E2BIG; exactly maxMembers succeeds', async () => {
    assert.equal((await listNow(root, { xattrs: 'none', maxMembers: 4 })).length, 4);
    await rejectsWithCode('E2BIG', listNow(root, { xattrs: 'none', maxMembers: 3 }));
    assert.deepEqual(await listNow(makeRoot(), { xattrs: 'none', maxMembers: 0 }), []);
  });

  test('a missing path or a file fails like node:fs, with code, syscall and path', async () => {
    const missing = await rejectsWithCode(
      'ENOENT',
      listNow(`${root}/nope`, { xattrs: 'none', maxMembers: 1 }),
    );
    assert.equal(missing.syscall, 'opendir');
    assert.equal(missing.path, `${root}/nope`);
    await rejectsWithCode('ENOTDIR', listNow(`${root}/plain.txt`, { xattrs: 'none', maxMembers: 1 }));
  });

  test('listDirectoryLazily gives the same members once, then frees the listing', async () => {
    const options = { xattrs: 'values', maxMembers: 100 } as const;
    const eager = await listNow(root, options);
    const lazy = await listDirectoryLazily(root, options);
    const seen: Array<{ name: string; ino: bigint; xattrs: string[] }> = [];
    let firstName: Buffer | null = null;
    for (const member of lazy) {
      firstName ??= member.name;
      seen.push({
        name: member.name.toString('latin1'),
        ino: member.stat.ino,
        xattrs: member.xattrs.map((x) => `${x.name.toString('latin1')}=${x.value?.toString('latin1')}`),
      });
    }
    assert.deepEqual(
      seen,
      eager.map((member) => ({
        name: member.name.toString('latin1'),
        ino: member.stat.ino,
        xattrs: member.xattrs.map((x) => `${x.name.toString('latin1')}=${x.value?.toString('latin1')}`),
      })),
    );
    // Its memory went with the end of the iteration; a second pass is refused, not garbage.
    assert.equal(firstName?.length, 0);
    assert.throws(() => [...lazy], /iterated once/);
  });

  test('bad arguments are refused before reaching the threadpool', async () => {
    await assert.rejects(listDirectoryLazily(`${root}\0/sub`, { xattrs: 'none', maxMembers: 1 }), TypeError);
    await assert.rejects(listDirectoryLazily(root, { xattrs: 'none', maxMembers: -1 }), TypeError);
    await assert.rejects(listDirectoryLazily(root, { xattrs: 'none', maxMembers: 1.5 }), TypeError);
    await assert.rejects(listDirectoryLazily('', { xattrs: 'none', maxMembers: 1 }), TypeError);
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
    fs.writeFileSync(Buffer.from(`${dir}/\xff`, 'latin1'), '');
    fs.writeFileSync(Buffer.from(`${dir}/\xfe`, 'latin1'), '');
    const local = new LocalStorage({ layout: { kind: 'home', root: dir } });
    const entries: Entry[] = [];
    for await (const entry of local.list('/', 'infinity', { props: 'none', limit: 4 })) entries.push(entry);
    assert.deepEqual(entries.map((entry) => entry.path).sort(), ['/', '/a', '/b', '/c']);
  });
});
