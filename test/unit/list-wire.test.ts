// LocalStorage.listWire — the worker's listing as the addon writes it, straight into the channel's
// wire text — against list() passed through entryToWire: the same entries in the same order, for
// names JSON must escape or no DavPath can carry, dead properties, odd times and sizes, every
// property selection and depth; runs within their bounds; the same limit.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { listDirectoryAsWire, xattrSet, type WireItem } from '../../native/index';
import { isRemoteFilesystem, LocalStorage, mayListAtOnce } from '../../helper/local-storage';
import { entryToWire, type WireRun } from '../../common/protocol';
import { type Depth, type PropSelection } from '../../common/storage';

const roots: string[] = [];
after(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

/** Names as raw bytes (latin1 strings), so that invalid UTF-8 can be made. */
const NAMES = [
  'plain.txt',
  'quote"d',
  'back\\slash',
  'a\\..\\b', // a backslash piece that is "..": not addressable
  'tab\there',
  'new\nline',
  'del\x7f',
  "<&>'",
  Buffer.from('ünïcödé ✓', 'utf8').toString('latin1'),
  Buffer.from('😀.txt', 'utf8').toString('latin1'),
  Buffer.from('\u2028 line separator', 'utf8').toString('latin1'),
  '\xff', // not UTF-8
  '\xc0\xaf', // overlong "/"
  '\xed\xa0\x80', // a surrogate
  '\xf4\x90\x80\x80', // above U+10FFFF
  'x'.repeat(255),
];

function makeTree(): string {
  const root = fs.mkdtempSync('/tmp/privdav-list-wire-');
  roots.push(root);
  for (const name of NAMES) fs.writeFileSync(Buffer.from(`${root}/${name}`, 'latin1'), name);
  fs.writeFileSync(`${root}/props.txt`, 'with properties');
  xattrSet(`${root}/props.txt`, 'user.dav:{urn:x}p', Buffer.from('<p xmlns="urn:x">v</p>'));
  fs.writeFileSync(`${root}/other-xattr`, '');
  xattrSet(`${root}/other-xattr`, 'user.other', Buffer.from('not a property'));
  fs.mkdirSync(`${root}/sub`);
  fs.writeFileSync(`${root}/sub/inner`, 'inside');
  fs.symlinkSync('plain.txt', `${root}/link`);
  fs.symlinkSync('missing', `${root}/dangling`);
  fs.writeFileSync(`${root}/old`, '');
  fs.utimesSync(`${root}/old`, -1234567.891234, -1234567.891234);
  const sparse = fs.openSync(`${root}/sparse`, 'w');
  fs.ftruncateSync(sparse, 2 ** 40 + 12345);
  fs.closeSync(sparse);
  return root;
}

async function wireRuns(storage: LocalStorage, depth: Depth, props: PropSelection, limit = 1000) {
  const runs: WireRun[] = [];
  for await (const run of storage.listWire('/', depth, { props, limit }, { entries: 4, bytes: 2000 }))
    runs.push({ text: Buffer.from(run.text), count: run.count }); // a view, valid while iterating
  return runs;
}

/** The entries of runs, parsed as the web process parses a list reply. */
function parsed(runs: WireRun[]): unknown[] {
  const text = Buffer.concat(runs.map((run) => run.text)).toString('utf8');
  assert.ok(text === '' || text.endsWith(','), 'every entry is followed by a comma');
  return JSON.parse(`[${text.slice(0, -1)}]`) as unknown[];
}

async function expected(storage: LocalStorage, depth: Depth, props: PropSelection): Promise<unknown[]> {
  const entries: unknown[] = [];
  for await (const entry of storage.list('/', depth, { props, limit: 1000 }))
    entries.push(JSON.parse(entryToWire(entry)));
  return entries;
}

describe('LocalStorage.listWire', () => {
  const root = makeTree();
  const storage = new LocalStorage({ layout: { kind: 'home', root } });
  const selections: PropSelection[] = ['none', 'all', 'names', ['{urn:x}p', '{urn:x}absent'], []];

  for (const depth of [0, 1, 'infinity'] as Depth[]) {
    test(`Depth ${depth}: the same entries in the same order as list(), for every selection`, async () => {
      for (const props of selections) {
        const runs = await wireRuns(storage, depth, props);
        assert.deepEqual(parsed(runs), await expected(storage, depth, props), JSON.stringify(props));
      }
    });
  }

  test('kernels without listxattrat (listxattr of the whole path) list the same', async () => {
    // A child process, because the addon remembers the choice for the life of the process.
    const script = `
      const { LocalStorage } = require(${JSON.stringify(path.join(__dirname, '../../helper/local-storage'))});
      (async () => {
        const storage = new LocalStorage({ layout: { kind: 'home', root: ${JSON.stringify(root)} } });
        const texts = [];
        for await (const run of storage.listWire('/', 1, { props: 'all', limit: 1000 }, { entries: 4, bytes: 2000 }))
          texts.push(run.text.toString('utf8'));
        process.stdout.write('[' + texts.join('').slice(0, -1) + ']');
      })();`;
    const output = execFileSync(process.execPath, ['-e', script], {
      env: { ...process.env, PRIVDAV_LISTXATTR_BY_PATH: '1' },
    });
    const byPath = JSON.parse(output.toString('utf8')) as unknown[];
    assert.deepEqual(byPath, parsed(await wireRuns(storage, 1, 'all')));
    assert.ok(
      byPath.some((entry) => JSON.stringify(entry).includes('{urn:x}p')),
      'dead properties are found that way too',
    );
  });

  test('a bigger directory, listed on the threadpool rather than at once, gives the same', async () => {
    const big = fs.mkdtempSync('/tmp/privdav-list-wire-big-');
    roots.push(big);
    for (let i = 0; i < 600; i++) fs.writeFileSync(`${big}/member-${String(i).padStart(5, '0')}.txt`, `${i}`);
    xattrSet(`${big}/member-00007.txt`, 'user.dav:{urn:x}p', Buffer.from('<p xmlns="urn:x">seven</p>'));
    assert.ok(fs.statSync(big).size > 12_288, 'big enough for the threadpool');
    const local = new LocalStorage({ layout: { kind: 'home', root: big } });
    for (const props of selections) {
      const runs = await wireRuns(local, 1, props);
      assert.deepEqual(parsed(runs), await expected(local, 1, props), JSON.stringify(props));
    }
  });

  test('a first batch read at once, and batches of any size, give the items of one threadpool batch', async () => {
    const options = {
      xattrs: 'values' as const,
      batchMembers: 100,
      prefix: '"/',
      maxNameBytes: 255,
      props: true,
      maxRunEntries: 4,
      maxRunBytes: 2000,
    };
    const textOf = async (batches: AsyncIterable<Iterable<WireItem>>) => {
      const texts: string[] = [];
      for await (const batch of batches)
        for (const item of batch)
          texts.push(
            item.member === undefined
              ? item.text.toString('utf8')
              : `member ${item.member.name.toString('latin1')}`,
          );
      return texts;
    };
    // Runs end with their batch: compare the entries, not how they were cut into runs.
    const entriesOf = (texts: string[]) => texts.join('');
    const whole = await textOf(listDirectoryAsWire(root, options));
    for (const [batchMembers, firstBatchNow] of [
      [100, 100],
      [3, 5],
      [1, 0],
      [7, 1],
    ])
      assert.equal(
        entriesOf(await textOf(listDirectoryAsWire(root, { ...options, batchMembers, firstBatchNow }))),
        entriesOf(whole),
        `${batchMembers} ${firstBatchNow}`,
      );
    await assert.rejects(textOf(listDirectoryAsWire(`${root}/nowhere`, { ...options, firstBatchNow: 10 })), {
      code: 'ENOENT',
    });
  });

  test('small directories are listed at once only on local filesystems', () => {
    assert.equal(mayListAtOnce(root), true, 'ext4 or tmpfs here');
    assert.equal(mayListAtOnce(`${root}/nowhere`), false);
    for (const [name, type] of [
      ['NFS', 0x6969],
      ['FUSE', 0x65735546],
      ['CIFS', 0xff534d42],
      ['9p', 0x01021997],
    ] as const)
      assert.equal(isRemoteFilesystem(type), true, name);
    for (const [name, type] of [
      ['ext4', 0xef53],
      ['xfs', 0x58465342],
      ['btrfs', 0x9123683e],
      ['tmpfs', 0x01021994],
    ] as const)
      assert.equal(isRemoteFilesystem(type), false, name);
  });

  test('names JSON must escape come through, bytes that are not UTF-8 as escapes; names no DavPath can carry are left out', async () => {
    const paths = (parsed(await wireRuns(storage, 1, 'all')) as string[][]).map((entry) => entry[0]);
    for (const name of ['/quote"d', '/back\\slash', '/tab\there', '/new\nline', '/ünïcödé ✓', '/😀.txt'])
      assert.ok(paths.includes(name), name);
    for (const name of ['/\uDCFF', '/\uDCC0\uDCAF', '/\uDCED\uDCA0\uDC80', '/\uDCF4\uDC90\uDC80\uDC80'])
      assert.ok(paths.includes(name), JSON.stringify(name));
    assert.ok(!paths.includes('/a\\..\\b'));
    assert.equal(
      paths.filter((path) => path.includes('\ufffd')).length,
      0,
      'no lossy decoding slips through',
    );
    // 16 names + props.txt, other-xattr, sub, link, old, sparse + the collection, less 1 unaddressable.
    assert.equal(paths.length, NAMES.length + 6 + 1 - 1);
  });

  test('runs stay within their bounds and count their entries', async () => {
    const runs = await wireRuns(storage, 1, 'all');
    for (const run of runs) {
      assert.ok(run.count >= 1 && run.count <= 4, `count ${run.count}`);
      assert.ok(run.count === 1 || run.text.length <= 2000, `${run.text.length} bytes`);
      assert.equal(run.text.toString('utf8').match(/\],(?=\[|$)/g)?.length, run.count);
    }
    assert.ok(
      runs.some((run) => run.count > 1),
      'members are written in runs, not one by one',
    );
  });

  test('the limit fails the listing as list() does', async () => {
    const all = (await expected(storage, 1, 'none')).length;
    await assert.rejects(wireRuns(storage, 1, 'none', all - 1), { code: 'LIMIT' });
    assert.equal(parsed(await wireRuns(storage, 1, 'none', all)).length, all);
  });

  test('a missing path fails as list() does; a file is listed as itself', async () => {
    const list = async (path: string) => {
      const runs: WireRun[] = [];
      for await (const run of storage.listWire(
        path,
        1,
        { props: 'all', limit: 10 },
        { entries: 4, bytes: 100 },
      ))
        runs.push({ text: Buffer.from(run.text), count: run.count }); // a view, valid while iterating
      return parsed(runs);
    };
    await assert.rejects(list('/nowhere'), { code: 'ENOENT' });
    const [file] = (await list('/plain.txt')) as string[][];
    assert.equal(file?.[0], '/plain.txt');
  });
});
