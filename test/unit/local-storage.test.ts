// Behaviour of LocalStorage on the real filesystem (a temporary directory on the root disk, plus a
// tmpfs for cross-device moves and a ramfs for a filesystem without O_TMPFILE or user xattrs).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { LocalStorage } from '../../helper/local-storage';
import {
  StorageError,
  type DeadProps,
  type Entry,
  type PropSelection,
  type Storage,
} from '../../common/storage';

const PROP = '{urn:example}color';
const PROP_XML = '<color xmlns="urn:example">blue</color>';
const isRoot = process.getuid?.() === 0;

interface Share {
  root: string;
  storage: LocalStorage;
}

const shares: string[] = [];
function makeShare(): Share {
  const root = fs.mkdtempSync('/tmp/privdav-local-storage-');
  shares.push(root);
  return { root, storage: new LocalStorage({ layout: { kind: 'home', root } }) };
}
after(() => {
  for (const root of shares) fs.rmSync(root, { recursive: true, force: true });
});

async function put(storage: Storage, path: string, content: string): Promise<void> {
  const upload = await storage.openWrite(path);
  fs.writeSync(upload.fd, content);
  await upload.commit();
}

async function collect(entries: AsyncIterable<Entry>): Promise<Entry[]> {
  const all: Entry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

/** A resource's dead properties, as a Depth 0 listing gives them. */
async function deadProps(storage: Storage, path: string, selection: PropSelection): Promise<DeadProps> {
  const [entry] = await collect(storage.list(path, 0, { props: selection, limit: 1 }));
  return entry?.props ?? {};
}

async function rejectsWith(code: string, promise: Promise<unknown>): Promise<StorageError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail(`expected ${code}`),
    (error: unknown) => (caught = error),
  );
  assert.ok(caught instanceof StorageError, `expected a StorageError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

function mount(type: string, dir: string, options: string[] = []): boolean {
  if (!isRoot) return false;
  return spawnSync('mount', ['-t', type, ...options, type, dir]).status === 0;
}

describe('stat', () => {
  const { root, storage } = makeShare();

  test('describes a file with a strong ETag from inode, size and mtime in ns', async () => {
    fs.writeFileSync(`${root}/a.txt`, 'hello');
    const stat = await storage.stat('/a.txt');
    const raw = fs.statSync(`${root}/a.txt`, { bigint: true });
    assert.ok(stat);
    assert.equal(stat.kind, 'file');
    assert.equal(stat.size, 5);
    assert.equal(stat.etag, `"${raw.ino.toString(16)}-5-${raw.mtimeNs.toString(16)}"`);
    assert.equal(Math.floor(stat.mtimeMs), Number(raw.mtimeMs));
    assert.ok(stat.birthtimeMs > 0);
  });

  test('gives null for a missing resource and for one below a file', async () => {
    fs.writeFileSync(`${root}/file`, '');
    assert.equal(await storage.stat('/missing'), null);
    assert.equal(await storage.stat('/file/below'), null);
  });

  test('changes the ETag when the content changes', async () => {
    await put(storage, '/e.txt', 'one');
    const first = await storage.stat('/e.txt');
    await put(storage, '/e.txt', 'two');
    const second = await storage.stat('/e.txt');
    assert.notEqual(first?.etag, second?.etag);
  });

  test("follows the user's own symlinks", async () => {
    fs.mkdirSync(`${root}/real`);
    fs.symlinkSync('real', `${root}/link`);
    assert.equal((await storage.stat('/link'))?.kind, 'directory');
  });
});

describe('realPath', () => {
  const { root, storage } = makeShare();
  const real = fs.realpathSync(root);

  test('resolves symlinks, so one file reached by two URLs has one key', async () => {
    fs.mkdirSync(`${root}/dir`);
    fs.writeFileSync(`${root}/dir/f`, '');
    fs.symlinkSync('dir', `${root}/alias`);
    assert.equal(await storage.realPath('/alias/f'), `${real}/dir/f`);
    assert.equal(await storage.realPath('/dir/f'), `${real}/dir/f`);
  });

  test('names a resource that does not exist yet by its resolved parent', async () => {
    assert.equal(await storage.realPath('/alias/new'), `${real}/dir/new`);
    assert.equal(await storage.realPath('/nowhere/new'), `${real}/nowhere/new`);
  });
});

describe('list', () => {
  const { root, storage } = makeShare();
  before(async () => {
    fs.mkdirSync(`${root}/dir/sub`, { recursive: true });
    fs.writeFileSync(`${root}/dir/a.txt`, 'a');
    fs.writeFileSync(`${root}/dir/sub/b.txt`, 'bb');
    await storage.patchProps('/dir/a.txt', [
      { op: 'set', name: PROP, value: PROP_XML },
      { op: 'set', name: '{urn:example}size', value: '<size xmlns="urn:example">L</size>' },
    ]);
  });

  test('depth 0 gives the resource alone', async () => {
    const entries = await collect(storage.list('/dir', 0, { props: 'none', limit: 10 }));
    assert.deepEqual(
      entries.map((entry) => entry.path),
      ['/dir'],
    );
    assert.equal(entries[0]!.props, undefined);
  });

  test('depth 1 gives the collection and its members with their dead properties', async () => {
    const entries = await collect(storage.list('/dir', 1, { props: 'all', limit: 10 }));
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    assert.deepEqual([...byPath.keys()].sort(), ['/dir', '/dir/a.txt', '/dir/sub']);
    assert.equal(byPath.get('/dir/a.txt')?.props?.[PROP], PROP_XML);
    assert.equal(byPath.get('/dir/sub')?.stat.kind, 'directory');
    assert.deepEqual(byPath.get('/dir')?.props, {});
  });

  test('property names come without values, and a named selection gives only those asked for', async () => {
    const [names] = await collect(storage.list('/dir/a.txt', 0, { props: 'names', limit: 10 }));
    assert.deepEqual(names!.props, { [PROP]: '', '{urn:example}size': '' });
    const [chosen] = await collect(
      storage.list('/dir/a.txt', 0, { props: [PROP, '{urn:x}absent'], limit: 10 }),
    );
    assert.deepEqual(chosen!.props, { [PROP]: PROP_XML });
  });

  test('depth infinity walks the whole tree', async () => {
    const entries = await collect(storage.list('/', 'infinity', { props: 'none', limit: 100 }));
    assert.deepEqual(entries.map((entry) => entry.path).sort(), [
      '/',
      '/dir',
      '/dir/a.txt',
      '/dir/sub',
      '/dir/sub/b.txt',
    ]);
  });

  test('depth infinity refuses with LIMIT past the limit', async () => {
    await rejectsWith('LIMIT', collect(storage.list('/', 'infinity', { props: 'none', limit: 3 })));
  });

  test('depth infinity lists a symlink loop once and does not enter it', async () => {
    fs.mkdirSync(`${root}/loop`);
    fs.symlinkSync('..', `${root}/loop/up`);
    const entries = await collect(storage.list('/loop', 'infinity', { props: 'none', limit: 100 }));
    assert.deepEqual(
      entries.map((entry) => entry.path),
      ['/loop', '/loop/up'],
    );
  });

  test('leaves out names no DavPath can address and dangling symlinks; a Latin-1 name is listed escaped', async () => {
    fs.mkdirSync(`${root}/odd`);
    fs.writeFileSync(Buffer.from(`${root}/odd/latin1-\xe9`, 'latin1'), '');
    fs.writeFileSync(`${root}/odd/..\\x`, '');
    fs.symlinkSync('/nonexistent', `${root}/odd/dangling`);
    fs.writeFileSync(`${root}/odd/fine`, '');
    const entries = await collect(storage.list('/odd', 1, { props: 'none', limit: 100 }));
    const paths = entries.map((entry) => entry.path);
    assert.deepEqual([paths[0], ...paths.slice(1).sort()], ['/odd', '/odd/fine', '/odd/latin1-\uDCE9']);
  });

  test('a missing collection gives ENOENT', async () => {
    await rejectsWith('ENOENT', collect(storage.list('/nope', 1, { props: 'none', limit: 10 })));
  });

  test('depth 1 over 1,000 files is complete and fast', async () => {
    fs.mkdirSync(`${root}/many`);
    for (let i = 0; i < 1000; i++) fs.writeFileSync(`${root}/many/file-${i}`, String(i));
    const started = performance.now();
    const entries = await collect(storage.list('/many', 1, { props: 'all', limit: 5000 }));
    const elapsed = performance.now() - started;
    assert.equal(entries.length, 1001);
    assert.equal(new Set(entries.map((entry) => entry.path)).size, 1001);
    assert.equal(entries.find((entry) => entry.path === '/many/file-999')?.stat.size, 3);
    assert.ok(elapsed < 2000, `took ${elapsed.toFixed(0)} ms`);
  });
});

describe('openRead', () => {
  const { root, storage } = makeShare();

  test('gives a descriptor on the content and its stat', async () => {
    fs.writeFileSync(`${root}/r.txt`, 'content');
    const opened = await storage.openRead('/r.txt');
    try {
      assert.equal(fs.readFileSync(opened.fd, 'utf8'), 'content');
      assert.equal(opened.stat.size, 7);
    } finally {
      fs.closeSync(opened.fd);
    }
  });

  test('refuses a collection with EISDIR', async () => {
    fs.mkdirSync(`${root}/d`);
    await rejectsWith('EISDIR', storage.openRead('/d'));
  });

  test('refuses a FIFO without blocking on it', async () => {
    execFileSync('mkfifo', [`${root}/fifo`]);
    await rejectsWith('EPERM', storage.openRead('/fifo'));
  });

  test('a missing file gives ENOENT', async () => {
    await rejectsWith('ENOENT', storage.openRead('/missing'));
  });
});

describe('openWrite: PUT replaces atomically', () => {
  const { root, storage } = makeShare();

  test('creates a new file with mode 0666 less the umask', async () => {
    const upload = await storage.openWrite('/new.txt');
    assert.equal(upload.existing, null);
    fs.writeSync(upload.fd, 'fresh');
    const stat = await upload.commit();
    assert.equal(stat.size, 5);
    assert.equal(fs.readFileSync(`${root}/new.txt`, 'utf8'), 'fresh');
    const umask = process.umask();
    assert.equal(fs.statSync(`${root}/new.txt`).mode & 0o777, 0o666 & ~umask);
  });

  test('a commit told another size than the file holds fails with EIO and replaces nothing', async () => {
    fs.mkdirSync(`${root}/size-check`);
    fs.writeFileSync(`${root}/size-check/keep.txt`, 'precious');
    const short = await storage.openWrite('/size-check/keep.txt');
    fs.writeSync(short.fd, 'only part');
    await rejectsWith('EIO', short.commit(10));
    assert.equal(fs.readFileSync(`${root}/size-check/keep.txt`, 'utf8'), 'precious');
    assert.deepEqual(fs.readdirSync(`${root}/size-check`), ['keep.txt']);
    const exact = await storage.openWrite('/size-check/keep.txt');
    fs.writeSync(exact.fd, 'all of it');
    assert.equal((await exact.commit(9)).size, 9);
    assert.equal(fs.readFileSync(`${root}/size-check/keep.txt`, 'utf8'), 'all of it');
  });

  test('the old content stays visible until commit', async () => {
    fs.writeFileSync(`${root}/live.txt`, 'old');
    const upload = await storage.openWrite('/live.txt');
    assert.equal(upload.existing?.size, 3);
    fs.writeSync(upload.fd, 'new content');
    assert.equal(fs.readFileSync(`${root}/live.txt`, 'utf8'), 'old');
    await upload.commit();
    assert.equal(fs.readFileSync(`${root}/live.txt`, 'utf8'), 'new content');
  });

  test('an aborted upload keeps the old content and leaves no temporary file', async () => {
    fs.mkdirSync(`${root}/abort`);
    fs.writeFileSync(`${root}/abort/keep.txt`, 'precious');
    const upload = await storage.openWrite('/abort/keep.txt');
    fs.writeSync(upload.fd, 'half an upl');
    await upload.abort();
    assert.equal(fs.readFileSync(`${root}/abort/keep.txt`, 'utf8'), 'precious');
    assert.deepEqual(fs.readdirSync(`${root}/abort`), ['keep.txt']);
    assert.throws(() => fs.fstatSync(upload.fd)); // our descriptor is closed
  });

  test('a process killed in the middle of an upload leaves the old content and no temporary file', () => {
    fs.mkdirSync(`${root}/killed`);
    fs.writeFileSync(`${root}/killed/doc`, 'old');
    const script = `
      const fs = require('node:fs');
      const { LocalStorage } = require(${JSON.stringify(require.resolve('../../helper/local-storage'))});
      const storage = new LocalStorage({ layout: { kind: 'home', root: ${JSON.stringify(root)} } });
      storage.openWrite('/killed/doc').then((upload) => {
        fs.writeSync(upload.fd, 'half');
        process.kill(process.pid, 'SIGKILL');
      });
    `;
    const child = spawnSync(process.execPath, ['-e', script]);
    assert.equal(child.signal, 'SIGKILL');
    assert.deepEqual(fs.readdirSync(`${root}/killed`), ['doc']);
    assert.equal(fs.readFileSync(`${root}/killed/doc`, 'utf8'), 'old');
  });

  test('a committed upload leaves nothing but the target', async () => {
    fs.mkdirSync(`${root}/clean`);
    await put(storage, '/clean/a', 'x');
    await put(storage, '/clean/a', 'y');
    assert.deepEqual(fs.readdirSync(`${root}/clean`), ['a']);
  });

  test('a 0600 file overwritten stays 0600', async () => {
    fs.writeFileSync(`${root}/secret`, 'old', { mode: 0o600 });
    fs.chmodSync(`${root}/secret`, 0o600);
    await put(storage, '/secret', 'new');
    assert.equal(fs.statSync(`${root}/secret`).mode & 0o7777, 0o600);
  });

  test('dead properties survive a replacing PUT', async () => {
    await put(storage, '/props.txt', 'v1');
    await storage.patchProps('/props.txt', [{ op: 'set', name: PROP, value: PROP_XML }]);
    const before = await storage.stat('/props.txt');
    await put(storage, '/props.txt', 'v2 longer');
    assert.deepEqual(await deadProps(storage, '/props.txt', 'all'), { [PROP]: PROP_XML });
    assert.notEqual((await storage.stat('/props.txt'))?.etag, before?.etag);
  });

  test('writing through a symlink replaces the file it points to and keeps the link', async () => {
    fs.writeFileSync(`${root}/target.txt`, 'old');
    fs.symlinkSync('target.txt', `${root}/via-link`);
    await put(storage, '/via-link', 'new');
    assert.equal(fs.lstatSync(`${root}/via-link`).isSymbolicLink(), true);
    assert.equal(fs.readFileSync(`${root}/target.txt`, 'utf8'), 'new');
  });

  test('a file below a symlinked folder is replaced in the folder the link points to, by both paths', async () => {
    fs.mkdirSync(`${root}/real-dir`);
    fs.writeFileSync(`${root}/real-dir/inside.txt`, 'old');
    fs.symlinkSync('real-dir', `${root}/dir-link`);
    await put(storage, '/dir-link/inside.txt', 'new by the link');
    assert.equal(fs.readFileSync(`${root}/real-dir/inside.txt`, 'utf8'), 'new by the link');
    assert.equal(fs.lstatSync(`${root}/dir-link`).isSymbolicLink(), true);
    await storage.putSmall('/dir-link/inside.txt', Buffer.from('small'), {});
    assert.equal(fs.readFileSync(`${root}/real-dir/inside.txt`, 'utf8'), 'small');
    assert.deepEqual(fs.readdirSync(`${root}/real-dir`), ['inside.txt']);
  });

  test('a streamed upload replaces the file it was opened on, even if its folder link is re-pointed meanwhile', async () => {
    for (const folder of ['pinned-a', 'pinned-b']) {
      fs.mkdirSync(`${root}/${folder}`);
      fs.writeFileSync(`${root}/${folder}/doc.txt`, `${folder} before`);
    }
    fs.symlinkSync('pinned-a', `${root}/pinned-link`);
    const upload = await storage.openWrite('/pinned-link/doc.txt');
    fs.writeSync(upload.fd, 'written');
    fs.unlinkSync(`${root}/pinned-link`);
    fs.symlinkSync('pinned-b', `${root}/pinned-link`);
    await upload.commit();
    assert.equal(fs.readFileSync(`${root}/pinned-a/doc.txt`, 'utf8'), 'written');
    assert.equal(fs.readFileSync(`${root}/pinned-b/doc.txt`, 'utf8'), 'pinned-b before');
  });

  test('an upload takes nothing from a file that a link put in its place during the transfer points to', async () => {
    fs.writeFileSync(`${root}/someone-elses.txt`, 'private');
    await storage.patchProps('/someone-elses.txt', [{ op: 'set', name: PROP, value: PROP_XML }]);
    fs.chmodSync(`${root}/someone-elses.txt`, 0o600);
    await put(storage, '/swapped.txt', 'v1');
    const upload = await storage.openWrite('/swapped.txt');
    fs.writeSync(upload.fd, 'v2');
    fs.unlinkSync(`${root}/swapped.txt`);
    fs.symlinkSync('someone-elses.txt', `${root}/swapped.txt`);
    await upload.commit();
    const replaced = fs.lstatSync(`${root}/swapped.txt`);
    assert.equal(replaced.isFile(), true);
    assert.equal(replaced.mode & 0o777, 0o666 & ~process.umask());
    assert.equal(fs.readFileSync(`${root}/swapped.txt`, 'utf8'), 'v2');
    assert.deepEqual(await deadProps(storage, '/swapped.txt', 'all'), {});
    assert.equal(fs.readFileSync(`${root}/someone-elses.txt`, 'utf8'), 'private');
  });

  test('a PUT onto a dangling symlink replaces the link itself, streamed or in one call', async () => {
    fs.symlinkSync('nowhere-1', `${root}/dangling-1`);
    fs.symlinkSync('nowhere-2', `${root}/dangling-2`);
    await put(storage, '/dangling-1', 'streamed');
    assert.equal((await storage.putSmall('/dangling-2', Buffer.from('in one call'), {})).created, true);
    for (const [name, content] of [
      ['dangling-1', 'streamed'],
      ['dangling-2', 'in one call'],
    ]) {
      assert.equal(fs.lstatSync(`${root}/${name}`).isFile(), true);
      assert.equal(fs.readFileSync(`${root}/${name}`, 'utf8'), content);
    }
    assert.equal(fs.existsSync(`${root}/nowhere-1`), false);
  });

  test('a small PUT below a symlinked folder keeps the replaced file mode and dead properties', async () => {
    fs.mkdirSync(`${root}/kept-dir`);
    fs.symlinkSync('kept-dir', `${root}/kept-link`);
    await put(storage, '/kept-dir/kept.txt', 'v1');
    fs.chmodSync(`${root}/kept-dir/kept.txt`, 0o600);
    await storage.patchProps('/kept-dir/kept.txt', [{ op: 'set', name: PROP, value: PROP_XML }]);
    assert.equal((await storage.putSmall('/kept-link/kept.txt', Buffer.from('v2'), {})).created, false);
    assert.equal(fs.statSync(`${root}/kept-dir/kept.txt`).mode & 0o777, 0o600);
    assert.deepEqual(await deadProps(storage, '/kept-dir/kept.txt', 'all'), { [PROP]: PROP_XML });
  });

  test('a collection cannot be replaced by a file (EISDIR)', async () => {
    fs.mkdirSync(`${root}/coll`);
    await rejectsWith('EISDIR', storage.openWrite('/coll'));
  });

  test('a missing parent gives ENOENT, a file as parent ENOTDIR', async () => {
    await rejectsWith('ENOENT', storage.openWrite('/no/such/dir/f'));
    fs.writeFileSync(`${root}/plain`, '');
    await rejectsWith('ENOTDIR', storage.openWrite('/plain/f'));
  });

  test('commit returns the stat of what was written through the descriptor', async () => {
    const upload = await storage.openWrite('/sized');
    fs.writeSync(upload.fd, Buffer.alloc(4096, 1));
    fs.writeSync(upload.fd, Buffer.alloc(10, 2), 0, 10, 10000);
    const stat = await upload.commit();
    assert.equal(stat.size, 10010);
    assert.equal(stat.etag, (await storage.stat('/sized'))?.etag);
  });

  test('an upload is finished once: commit after abort is refused, abort after commit does nothing', async () => {
    const aborted = await storage.openWrite('/once');
    await aborted.abort();
    await rejectsWith('INTERNAL', aborted.commit());
    const committed = await storage.openWrite('/once');
    await committed.commit();
    await committed.abort();
    assert.equal(fs.existsSync(`${root}/once`), true);
  });

  test('a durable=false storage writes the same way', async () => {
    const quick = new LocalStorage({ layout: { kind: 'home', root }, durable: false });
    await put(quick, '/quick', 'data');
    assert.equal(fs.readFileSync(`${root}/quick`, 'utf8'), 'data');
  });
});

describe('mkcol', () => {
  const { root, storage } = makeShare();

  test('creates a collection', async () => {
    await storage.mkcol('/c');
    assert.equal(fs.statSync(`${root}/c`).isDirectory(), true);
  });
  test('an existing name gives EEXIST', async () => {
    await rejectsWith('EEXIST', storage.mkcol('/c'));
    await rejectsWith('EEXIST', storage.mkcol('/'));
  });
  test('a missing parent gives ENOENT', async () => {
    await rejectsWith('ENOENT', storage.mkcol('/x/y'));
  });
});

describe('remove', () => {
  const { root, storage } = makeShare();

  test('removes a file', async () => {
    fs.writeFileSync(`${root}/f`, '');
    assert.deepEqual(await storage.remove('/f'), []);
    assert.equal(fs.existsSync(`${root}/f`), false);
  });

  test('removes a whole tree, names that are not UTF-8 included', async () => {
    fs.mkdirSync(`${root}/t/a/b`, { recursive: true });
    fs.writeFileSync(`${root}/t/a/b/c`, '');
    fs.writeFileSync(Buffer.from(`${root}/t/a/\xff\xfe`, 'latin1'), '');
    fs.symlinkSync('/etc', `${root}/t/etc-link`);
    assert.deepEqual(await storage.remove('/t'), []);
    assert.equal(fs.existsSync(`${root}/t`), false);
    assert.equal(fs.existsSync('/etc/passwd'), true); // the link went, not what it pointed to
  });

  test('a symlink to a collection is removed as a link', async () => {
    fs.mkdirSync(`${root}/kept`);
    fs.writeFileSync(`${root}/kept/x`, '');
    fs.symlinkSync('kept', `${root}/kept-link`);
    assert.deepEqual(await storage.remove('/kept-link'), []);
    assert.equal(fs.existsSync(`${root}/kept/x`), true);
  });

  test('a missing resource gives ENOENT', async () => {
    await rejectsWith('ENOENT', storage.remove('/missing'));
  });

  test('the share root cannot be removed', async () => {
    await rejectsWith('EPERM', storage.remove('/'));
  });

  test(
    'reports only the deepest member it could not delete and goes on with the others',
    { skip: isRoot ? false : 'needs root to drop to nobody in a child process' },
    () => {
      const dir = fs.mkdtempSync('/tmp/privdav-remove-');
      shares.push(dir);
      fs.chownSync(dir, 65534, 65534);
      // As root, permissions do not apply: the child drops to nobody before touching anything.
      const script = `
        process.setgid(65534); process.setuid(65534);
        const fs = require('node:fs');
        const { LocalStorage } = require(${JSON.stringify(require.resolve('../../helper/local-storage'))});
        const dir = ${JSON.stringify(dir)};
        fs.mkdirSync(dir + '/tree/locked', { recursive: true });
        fs.mkdirSync(dir + '/tree/sub');
        fs.writeFileSync(dir + '/tree/locked/file', '');
        fs.writeFileSync(dir + '/tree/free.txt', '');
        fs.writeFileSync(dir + '/tree/sub/x', '');
        fs.chmodSync(dir + '/tree/locked', 0o555);
        const storage = new LocalStorage({ layout: { kind: 'home', root: dir } });
        (async () => {
          const errors = await storage.remove('/tree');
          const left = fs.readdirSync(dir + '/tree');
          fs.chmodSync(dir + '/tree/locked', 0o755);
          // O_TMPFILE naming must work for a process that changed identity (it is not dumpable).
          // So must copying dead properties onto it through /proc/self/fd when it replaces a file.
          const put = async (content) => {
            const upload = await storage.openWrite('/as-nobody.txt');
            fs.writeSync(upload.fd, content);
            return upload.commit();
          };
          await put('first');
          await storage.patchProps('/as-nobody.txt', [{ op: 'set', name: '{urn:x}p', value: '<p xmlns="urn:x"/>' }]);
          await put('second');
          const stat = fs.statSync(dir + '/as-nobody.txt');
          let props;
          for await (const entry of storage.list('/as-nobody.txt', 0, { props: 'all', limit: 1 })) props = entry.props;
          const entries = fs.readdirSync(dir).sort();
          // A collection the user cannot read: listed without members in a deep listing, EACCES alone.
          fs.mkdirSync(dir + '/walk/closed/hidden', { recursive: true });
          fs.chmodSync(dir + '/walk/closed', 0o000);
          const walked = [];
          for await (const entry of storage.list('/walk', 'infinity', { props: 'all', limit: 100 })) walked.push(entry.path);
          let closed = 'listed';
          try {
            for await (const entry of storage.list('/walk/closed', 1, { props: 'none', limit: 100 })) void entry;
          } catch (error) {
            closed = error.code;
          }
          fs.chmodSync(dir + '/walk/closed', 0o755);
          process.stdout.write(JSON.stringify({ errors, left, uid: stat.uid, props, entries, walked, closed }));
        })().catch((error) => { console.error(error); process.exit(1); });
      `;
      const output = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      const result = JSON.parse(output) as {
        errors: unknown;
        left: string[];
        uid: number;
        props: unknown;
        entries: string[];
        walked: string[];
        closed: string;
      };
      assert.deepEqual(result.errors, [{ path: '/tree/locked/file', code: 'EACCES' }]);
      assert.deepEqual(result.left, ['locked']);
      assert.equal(result.uid, 65534);
      assert.deepEqual(result.props, { '{urn:x}p': '<p xmlns="urn:x"/>' });
      assert.deepEqual(result.entries, ['as-nobody.txt', 'tree']);
      assert.deepEqual(result.walked, ['/walk', '/walk/closed']);
      assert.equal(result.closed, 'EACCES');
    },
  );
});

describe('copy', () => {
  const { root, storage } = makeShare();
  before(async () => {
    fs.mkdirSync(`${root}/src/inner`, { recursive: true });
    fs.writeFileSync(`${root}/src/file.txt`, 'file', { mode: 0o640 });
    fs.chmodSync(`${root}/src/file.txt`, 0o640);
    fs.writeFileSync(`${root}/src/inner/deep.txt`, 'deep');
    fs.symlinkSync('file.txt', `${root}/src/link`);
    await storage.patchProps('/src/file.txt', [{ op: 'set', name: PROP, value: PROP_XML }]);
    await storage.patchProps('/src', [{ op: 'set', name: PROP, value: PROP_XML }]);
  });

  test('a file arrives with its content, mode and dead properties (201)', async () => {
    const result = await storage.copy('/src/file.txt', '/copy.txt', { depth: 'infinity', overwrite: false });
    assert.deepEqual(result, { created: true, errors: [] });
    assert.equal(fs.readFileSync(`${root}/copy.txt`, 'utf8'), 'file');
    assert.equal(fs.statSync(`${root}/copy.txt`).mode & 0o777, 0o640);
    assert.deepEqual(await deadProps(storage, '/copy.txt', 'all'), { [PROP]: PROP_XML });
  });

  test('an existing destination is refused without overwrite (EEXIST) and replaced with it (204)', async () => {
    await rejectsWith('EEXIST', storage.copy('/src/file.txt', '/copy.txt', { depth: 0, overwrite: false }));
    fs.writeFileSync(`${root}/copy.txt`, 'changed');
    const result = await storage.copy('/src/file.txt', '/copy.txt', { depth: 0, overwrite: true });
    assert.deepEqual(result, { created: false, errors: [] });
    assert.equal(fs.readFileSync(`${root}/copy.txt`, 'utf8'), 'file');
  });

  test('depth 0 copies a collection without its members but with its properties', async () => {
    await storage.copy('/src', '/shallow', { depth: 0, overwrite: false });
    assert.deepEqual(fs.readdirSync(`${root}/shallow`), []);
    assert.deepEqual(await deadProps(storage, '/shallow', 'all'), { [PROP]: PROP_XML });
  });

  test('depth infinity copies the tree; symlinks inside stay symlinks', async () => {
    await storage.copy('/src', '/deep', { depth: 'infinity', overwrite: false });
    assert.equal(fs.readFileSync(`${root}/deep/inner/deep.txt`, 'utf8'), 'deep');
    assert.equal(fs.readlinkSync(`${root}/deep/link`), 'file.txt');
    assert.deepEqual(await deadProps(storage, '/deep/file.txt', 'all'), { [PROP]: PROP_XML });
  });

  test('overwriting a collection removes its old members first', async () => {
    fs.mkdirSync(`${root}/replace`);
    fs.writeFileSync(`${root}/replace/stale`, '');
    const result = await storage.copy('/src', '/replace', { depth: 'infinity', overwrite: true });
    assert.equal(result.created, false);
    assert.deepEqual(fs.readdirSync(`${root}/replace`).sort(), ['file.txt', 'inner', 'link']);
  });

  test('a read-only collection is copied with its members and then made read-only', async () => {
    fs.mkdirSync(`${root}/ro`);
    fs.writeFileSync(`${root}/ro/x`, 'x');
    fs.chmodSync(`${root}/ro`, 0o555);
    await storage.copy('/ro', '/ro-copy', { depth: 'infinity', overwrite: false });
    assert.equal(fs.statSync(`${root}/ro-copy`).mode & 0o777, 0o555);
    assert.equal(fs.readFileSync(`${root}/ro-copy/x`, 'utf8'), 'x');
    fs.chmodSync(`${root}/ro`, 0o755);
    fs.chmodSync(`${root}/ro-copy`, 0o755);
  });

  test('copying a collection into itself is refused (BAD_PATH), also through a symlink', async () => {
    await rejectsWith(
      'BAD_PATH',
      storage.copy('/src', '/src/inner/again', { depth: 'infinity', overwrite: false }),
    );
    await rejectsWith('BAD_PATH', storage.copy('/src', '/src', { depth: 'infinity', overwrite: true }));
    fs.symlinkSync('src/inner', `${root}/inner-link`);
    await rejectsWith(
      'BAD_PATH',
      storage.copy('/src', '/inner-link/x', { depth: 'infinity', overwrite: false }),
    );
  });

  test('copying onto a collection that contains the source is refused and destroys nothing', async () => {
    await rejectsWith('BAD_PATH', storage.copy('/src/file.txt', '/src', { depth: 0, overwrite: true }));
    await rejectsWith('BAD_PATH', storage.copy('/src/inner', '/', { depth: 'infinity', overwrite: true }));
    assert.equal(fs.readFileSync(`${root}/src/inner/deep.txt`, 'utf8'), 'deep');
  });

  test('a missing destination parent gives ENOENT, a missing source ENOENT', async () => {
    await rejectsWith('ENOENT', storage.copy('/src/file.txt', '/no/dest', { depth: 0, overwrite: false }));
    await rejectsWith('ENOENT', storage.copy('/none', '/dest', { depth: 0, overwrite: false }));
  });
});

describe('move', () => {
  const { root, storage } = makeShare();

  test('renames a file with its dead properties (201)', async () => {
    await put(storage, '/m.txt', 'm');
    await storage.patchProps('/m.txt', [{ op: 'set', name: PROP, value: PROP_XML }]);
    assert.deepEqual(await storage.move('/m.txt', '/n.txt', { overwrite: false }), {
      created: true,
      errors: [],
    });
    assert.equal(fs.existsSync(`${root}/m.txt`), false);
    assert.deepEqual(await deadProps(storage, '/n.txt', 'all'), { [PROP]: PROP_XML });
  });

  test('an existing destination: EEXIST without overwrite, replaced with it (204)', async () => {
    await put(storage, '/p.txt', 'p');
    await rejectsWith('EEXIST', storage.move('/p.txt', '/n.txt', { overwrite: false }));
    assert.deepEqual(await storage.move('/p.txt', '/n.txt', { overwrite: true }), {
      created: false,
      errors: [],
    });
    assert.equal(fs.readFileSync(`${root}/n.txt`, 'utf8'), 'p');
  });

  test('a collection replaces an existing non-empty collection', async () => {
    fs.mkdirSync(`${root}/from`);
    fs.writeFileSync(`${root}/from/new`, '');
    fs.mkdirSync(`${root}/onto`);
    fs.writeFileSync(`${root}/onto/old`, '');
    assert.deepEqual(await storage.move('/from', '/onto', { overwrite: true }), {
      created: false,
      errors: [],
    });
    assert.deepEqual(fs.readdirSync(`${root}/onto`), ['new']);
  });

  test('a replace leaves no temporary behind and removes what a killed worker left in the directory', async () => {
    fs.mkdirSync(`${root}/swept/.privdav-old-0123456789abcdef/deep`, { recursive: true });
    fs.writeFileSync(`${root}/swept/.privdav-old-0123456789abcdef/deep/f`, '');
    fs.mkdirSync(`${root}/swept/.privdav-new-fedcba9876543210`);
    fs.writeFileSync(`${root}/swept/.privdav-users-own`, '');
    fs.mkdirSync(`${root}/swept/a`);
    fs.mkdirSync(`${root}/swept/b`);
    fs.writeFileSync(`${root}/swept/b/old`, '');
    assert.deepEqual(await storage.move('/swept/a', '/swept/b', { overwrite: true }), {
      created: false,
      errors: [],
    });
    assert.deepEqual(fs.readdirSync(`${root}/swept`).sort(), ['.privdav-users-own', 'b']);
    await storage.copy('/swept/b', '/swept/c', { depth: 'infinity', overwrite: false });
    assert.deepEqual(fs.readdirSync(`${root}/swept`).sort(), ['.privdav-users-own', 'b', 'c']);
  });

  test('moving a collection into itself is refused (BAD_PATH)', async () => {
    fs.mkdirSync(`${root}/self`);
    await rejectsWith('BAD_PATH', storage.move('/self', '/self/child', { overwrite: false }));
    await rejectsWith('BAD_PATH', storage.move('/self', '/self', { overwrite: true }));
  });

  test('moving onto a collection that contains the source is refused, also through a symlink', async () => {
    fs.mkdirSync(`${root}/outer/inner`, { recursive: true });
    fs.writeFileSync(`${root}/outer/inner/f`, 'kept');
    fs.symlinkSync('outer', `${root}/outer-link`);
    await rejectsWith('BAD_PATH', storage.move('/outer/inner', '/outer', { overwrite: true }));
    await rejectsWith('BAD_PATH', storage.move('/outer-link/inner/f', '/outer', { overwrite: true }));
    assert.equal(fs.readFileSync(`${root}/outer/inner/f`, 'utf8'), 'kept');
  });

  test('moving a file onto another hard link of itself still removes the source', async () => {
    fs.writeFileSync(`${root}/hard-a`, 'same');
    fs.linkSync(`${root}/hard-a`, `${root}/hard-b`);
    assert.deepEqual(await storage.move('/hard-a', '/hard-b', { overwrite: true }), {
      created: false,
      errors: [],
    });
    assert.equal(fs.existsSync(`${root}/hard-a`), false);
    assert.equal(fs.readFileSync(`${root}/hard-b`, 'utf8'), 'same');
  });

  test('the share root cannot be moved or replaced', async () => {
    await rejectsWith('EPERM', storage.move('/', '/x', { overwrite: false }));
    await rejectsWith('EPERM', storage.move('/n.txt', '/', { overwrite: true }));
  });

  test(
    'across filesystems the tree is copied with modes and properties, then the source removed',
    { skip: isRoot ? false : 'needs root to mount a tmpfs' },
    async (t) => {
      fs.mkdirSync(`${root}/other-fs`);
      if (!mount('tmpfs', `${root}/other-fs`, ['-o', 'size=8m'])) return t.skip('mount -t tmpfs failed here');
      try {
        fs.mkdirSync(`${root}/tree/sub`, { recursive: true });
        fs.writeFileSync(`${root}/tree/sub/f`, 'data', { mode: 0o600 });
        fs.chmodSync(`${root}/tree/sub/f`, 0o600);
        await storage.patchProps('/tree/sub/f', [{ op: 'set', name: PROP, value: PROP_XML }]);
        const result = await storage.move('/tree', '/other-fs/tree', { overwrite: false });
        assert.deepEqual(result, { created: true, errors: [] });
        assert.equal(fs.existsSync(`${root}/tree`), false);
        assert.equal(fs.readFileSync(`${root}/other-fs/tree/sub/f`, 'utf8'), 'data');
        assert.equal(fs.statSync(`${root}/other-fs/tree/sub/f`).mode & 0o777, 0o600);
        assert.deepEqual(await deadProps(storage, '/other-fs/tree/sub/f', 'all'), { [PROP]: PROP_XML });
        // And a single file back again, over an existing file.
        fs.writeFileSync(`${root}/back.txt`, 'old');
        const back = await storage.move('/other-fs/tree/sub/f', '/back.txt', { overwrite: true });
        assert.deepEqual(back, { created: false, errors: [] });
        assert.equal(fs.readFileSync(`${root}/back.txt`, 'utf8'), 'data');
        assert.equal(fs.existsSync(`${root}/other-fs/tree/sub/f`), false);
      } finally {
        execFileSync('umount', [`${root}/other-fs`]);
      }
    },
  );
});

describe('dead properties', () => {
  const { root, storage } = makeShare();
  before(() => fs.writeFileSync(`${root}/p`, ''));

  test('are stored in user.dav: xattrs of the file itself', async () => {
    await storage.patchProps('/p', [{ op: 'set', name: PROP, value: PROP_XML }]);
    const dump = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '^user\\.', `${root}/p`], {
      encoding: 'utf8',
    });
    assert.match(dump, /user\.dav:\{urn:example\}color=/);
  });

  test('operations apply in order: set then remove leaves nothing', async () => {
    await storage.patchProps('/p', [
      { op: 'set', name: '{urn:x}tmp', value: '<tmp xmlns="urn:x"/>' },
      { op: 'remove', name: '{urn:x}tmp' },
      { op: 'remove', name: '{urn:x}never-set' },
    ]);
    assert.deepEqual(await deadProps(storage, '/p', 'all'), { [PROP]: PROP_XML });
  });

  test('a failing operation undoes the ones before it and names the property', async () => {
    const tooBig = '<big xmlns="urn:x">' + 'x'.repeat(70_000) + '</big>';
    const error = await rejectsWith(
      'E2BIG',
      storage.patchProps('/p', [
        { op: 'set', name: PROP, value: '<color xmlns="urn:example">red</color>' },
        { op: 'set', name: '{urn:x}new', value: '<new xmlns="urn:x"/>' },
        { op: 'remove', name: PROP },
        { op: 'set', name: '{urn:x}big', value: tooBig },
      ]),
    );
    assert.equal(error.property, '{urn:x}big');
    assert.deepEqual(await deadProps(storage, '/p', 'all'), { [PROP]: PROP_XML });
  });

  test('a property name too long for an xattr name is stored under a hash and read back', async () => {
    const name = `{urn:${'n'.repeat(300)}}long`;
    const value = `<long xmlns="urn:${'n'.repeat(300)}">v</long>`;
    await storage.patchProps('/p', [{ op: 'set', name, value }]);
    assert.equal((await deadProps(storage, '/p', 'all'))[name], value);
    assert.equal((await deadProps(storage, '/p', [name]))[name], value);
    assert.equal((await deadProps(storage, '/p', 'names'))[name], '');
    await storage.patchProps('/p', [{ op: 'remove', name }]);
    assert.equal((await deadProps(storage, '/p', 'all'))[name], undefined);
  });

  test('a malformed property name is refused (PROTOCOL) and changes nothing', async () => {
    const error = await rejectsWith(
      'PROTOCOL',
      storage.patchProps('/p', [
        { op: 'set', name: '{urn:x}fine', value: '<fine xmlns="urn:x"/>' },
        { op: 'set', name: 'no-namespace', value: '<x/>' },
      ]),
    );
    assert.equal(error.property, 'no-namespace');
    assert.deepEqual(Object.keys(await deadProps(storage, '/p', 'all')), [PROP]);
  });

  test("other applications' user xattrs are not dead properties", async () => {
    execFileSync('setfattr', ['-n', 'user.mime_type', '-v', 'text/plain', `${root}/p`]);
    assert.deepEqual(Object.keys(await deadProps(storage, '/p', 'all')), [PROP]);
  });

  test('a missing resource gives ENOENT', async () => {
    await rejectsWith('ENOENT', deadProps(storage, '/missing', 'all'));
    await rejectsWith('ENOENT', storage.patchProps('/missing', [{ op: 'remove', name: PROP }]));
  });
});

describe('a filesystem without user xattrs (ramfs)', { skip: isRoot ? false : 'needs root to mount' }, () => {
  const { root, storage } = makeShare();
  let mounted = false;
  before(() => {
    fs.mkdirSync(`${root}/ram`);
    mounted = mount('ramfs', `${root}/ram`);
    if (mounted) fs.writeFileSync(`${root}/ram/f`, 'content');
  });
  after(() => {
    if (mounted) execFileSync('umount', [`${root}/ram`]);
  });

  test('there are no dead properties, and setting one gives ENOTSUP naming it', async (t) => {
    if (!mounted) return t.skip('mount -t ramfs failed here');
    assert.deepEqual(await deadProps(storage, '/ram/f', 'all'), {});
    const error = await rejectsWith(
      'ENOTSUP',
      storage.patchProps('/ram/f', [{ op: 'set', name: PROP, value: PROP_XML }]),
    );
    assert.equal(error.property, PROP);
    const [entry] = await collect(storage.list('/ram/f', 0, { props: 'all', limit: 1 }));
    assert.deepEqual(entry!.props, {});
  });

  test('a PUT replacing a file there still works', async (t) => {
    if (!mounted) return t.skip('mount -t ramfs failed here');
    await put(storage, '/ram/f', 'new');
    assert.equal(fs.readFileSync(`${root}/ram/f`, 'utf8'), 'new');
  });

  test('a copy from a disk with properties onto it keeps the content', async (t) => {
    if (!mounted) return t.skip('mount -t ramfs failed here');
    await put(storage, '/with-props', 'p');
    await storage.patchProps('/with-props', [{ op: 'set', name: PROP, value: PROP_XML }]);
    await storage.copy('/with-props', '/ram/copied', { depth: 0, overwrite: false });
    assert.equal(fs.readFileSync(`${root}/ram/copied`, 'utf8'), 'p');
  });
});

// bindfs (Debian package bindfs) with --xattr-none is a FUSE filesystem without O_TMPFILE, like
// NFS or sshfs homes: uploads take the named-temporary-file path there.
const hasBindfs = spawnSync('bindfs', ['--version']).status === 0;
describe(
  'a filesystem without O_TMPFILE (bindfs)',
  {
    skip: !isRoot
      ? 'needs root to mount'
      : !hasBindfs
        ? 'bindfs is not installed (apt-get install bindfs)'
        : false,
  },
  () => {
    const { root, storage } = makeShare();
    let mounted = false;
    before(() => {
      fs.mkdirSync(`${root}/backing`);
      fs.mkdirSync(`${root}/fuse`);
      mounted = spawnSync('bindfs', ['--xattr-none', `${root}/backing`, `${root}/fuse`]).status === 0;
    });
    after(() => {
      if (mounted) execFileSync('umount', [`${root}/fuse`]);
    });

    test('an upload uses a hidden temporary name beside the target, removed on abort', async (t) => {
      if (!mounted) return t.skip('bindfs failed to mount here');
      await put(storage, '/fuse/f', 'one');
      const upload = await storage.openWrite('/fuse/f');
      assert.match(fs.readdirSync(`${root}/fuse`).join(' '), /^\.f\.privdav-[0-9a-f]{16}\.tmp f$/);
      fs.writeSync(upload.fd, 'two');
      await upload.abort();
      assert.deepEqual(fs.readdirSync(`${root}/fuse`), ['f']);
      assert.equal(fs.readFileSync(`${root}/fuse/f`, 'utf8'), 'one');
    });

    test('a committed upload replaces the target and leaves no temporary name', async (t) => {
      if (!mounted) return t.skip('bindfs failed to mount here');
      fs.chmodSync(`${root}/fuse/f`, 0o600);
      await put(storage, '/fuse/f', 'three');
      assert.deepEqual(fs.readdirSync(`${root}/fuse`), ['f']);
      assert.equal(fs.readFileSync(`${root}/fuse/f`, 'utf8'), 'three');
      assert.equal(fs.statSync(`${root}/fuse/f`).mode & 0o777, 0o600);
    });

    test('a very long name still gets a temporary name that fits', async (t) => {
      if (!mounted) return t.skip('bindfs failed to mount here');
      const name = 'n'.repeat(250);
      await put(storage, `/fuse/${name}`, 'long');
      assert.equal(fs.readFileSync(`${root}/fuse/${name}`, 'utf8'), 'long');
    });
  },
);

describe('setTimes and space', () => {
  const { root, storage } = makeShare();

  test('setTimes sets the modification time and keeps the access time it was not given', async () => {
    fs.writeFileSync(`${root}/t`, '');
    fs.utimesSync(`${root}/t`, 1_000_000, 1_000_000);
    await storage.setTimes('/t', { mtimeMs: 1_600_000_000_500 });
    const stats = fs.statSync(`${root}/t`);
    assert.equal(stats.mtimeMs, 1_600_000_000_500);
    assert.equal(stats.atimeMs, 1_000_000_000);
  });

  test('space reports the filesystem of the share', async () => {
    const space = await storage.space('/');
    assert.ok(space.availableBytes > 0);
    assert.ok(space.usedBytes > 0);
  });
});

describe('hostile paths', () => {
  // The root does not exist: any filesystem access would fail with ENOENT, not BAD_PATH.
  const storage = new LocalStorage({ layout: { kind: 'home', root: '/nonexistent-privdav-root' } });
  const bad = ['/../etc/passwd', '/a/../../etc', '/a\0b', '/a//b', 'relative', '/./a'];
  const calls: Array<[string, (path: string) => Promise<unknown>]> = [
    ['stat', (path) => storage.stat(path)],
    ['realPath', (path) => storage.realPath(path)],
    ['list', (path) => collect(storage.list(path, 1, { props: 'all', limit: 10 }))],
    ['openRead', (path) => storage.openRead(path)],
    ['openWrite', (path) => storage.openWrite(path)],
    ['mkcol', (path) => storage.mkcol(path)],
    ['remove', (path) => storage.remove(path)],
    ['copy from', (path) => storage.copy(path, '/x', { depth: 0, overwrite: true })],
    ['copy to', (path) => storage.copy('/x', path, { depth: 0, overwrite: true })],
    ['move from', (path) => storage.move(path, '/x', { overwrite: true })],
    ['move to', (path) => storage.move('/x', path, { overwrite: true })],
    ['patchProps', (path) => storage.patchProps(path, [])],
    ['setTimes', (path) => storage.setTimes(path, {})],
    ['space', (path) => storage.space(path)],
  ];
  for (const [name, run] of calls) {
    test(`${name} refuses "..", NUL and empty segments with BAD_PATH before touching the filesystem`, async () => {
      for (const path of bad) await rejectsWith('BAD_PATH', run(path));
    });
  }

  test('tilde layout: "/" and unknown users are NOT_A_SHARE; a share maps to home plus subdir', async () => {
    const { root } = makeShare();
    fs.mkdirSync(`${root}/alice/WebDAV`, { recursive: true });
    fs.writeFileSync(`${root}/alice/WebDAV/hello`, 'hi');
    const tilde = new LocalStorage({
      layout: {
        kind: 'tilde',
        subdir: 'WebDAV',
        homeOf: (name) => (name === 'alice' ? `${root}/alice` : null),
      },
    });
    assert.equal((await tilde.stat('/~alice/hello'))?.size, 2);
    await rejectsWith('NOT_A_SHARE', tilde.stat('/'));
    await rejectsWith('NOT_A_SHARE', tilde.stat('/~bob/hello'));
    await rejectsWith('NOT_A_SHARE', collect(tilde.list('/', 1, { props: 'none', limit: 10 })));
    await rejectsWith('EPERM', tilde.remove('/~alice'));
  });

  test('errors do not carry the absolute paths of the share', async () => {
    const { root, storage: local } = makeShare();
    const attempts = [
      () => local.openRead('/missing'),
      () => local.mkcol('/a/b'),
      () => local.remove('/gone'),
    ];
    for (const attempt of attempts) {
      const error = await rejectsWith('ENOENT', attempt());
      assert.equal(error.message.includes(root), false, error.message);
    }
  });
});
