// Real clients from Debian (curl, rclone, cadaver, davfs2) against the real daemon as alice: what
// each one does is checked on disk, where the file must be alice's and hold exactly the bytes sent.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  openSync,
  writeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  RCLONE_REMOTE,
  cadaver,
  curl,
  davfsUnavailable,
  encodePath,
  mountDavfs,
  multistatusHrefs,
  rclone,
  rcloneEnvironment,
} from '../support/clients';
import { Daemon, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let alice: TestUser;
let daemon: Daemon;
let scratch: string;

before(async () => {
  users = createUsers();
  alice = users.alice;
  scratch = mkdtempSync(join(tmpdir(), 'privdav-clients-'));
  daemon = await startDaemon();
});
after(async () => {
  try {
    await daemon?.stop();
  } finally {
    users?.remove();
    rmSync(scratch, { recursive: true, force: true });
  }
});

/** Asserts the file at `relativePath` in alice's home is hers and holds exactly `content`. */
function assertAliceFile(relativePath: string, content: Buffer | string): void {
  const path = join(alice.home, relativePath);
  const stat = statSync(path);
  assert.ok(stat.isFile(), `${relativePath} is a file`);
  assert.equal(stat.uid, alice.uid, `${relativePath} belongs to alice`);
  assert.equal(stat.gid, alice.gid, `${relativePath} has alice's group`);
  assert.deepEqual(readFileSync(path), Buffer.from(content), `${relativePath} has the exact content`);
}

function url(path: string): string {
  return `${daemon.url}${encodePath(path)}`;
}

describe('curl', () => {
  const payload = randomBytes(200_000);

  test('PUT with -T creates a file owned by alice with the exact bytes, and GET returns them', () => {
    const local = join(scratch, 'payload.bin');
    writeFileSync(local, payload);
    assert.equal(curl(url('/curl-payload.bin'), alice, ['-T', local]).status, 201);
    assertAliceFile('curl-payload.bin', payload);
    const get = curl(url('/curl-payload.bin'), alice);
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, payload);
    assert.equal(curl(url('/curl-payload.bin'), alice, ['-T', local]).status, 204, 'replacing gives 204');
  });

  test('GET with Range returns exactly the requested bytes with 206 and Content-Range', () => {
    const middle = curl(url('/curl-payload.bin'), alice, ['-r', '1000-1999']);
    assert.equal(middle.status, 206);
    assert.equal(middle.headers['content-range'], `bytes 1000-1999/${payload.length}`);
    assert.deepEqual(middle.body, payload.subarray(1000, 2000));
    const tail = curl(url('/curl-payload.bin'), alice, ['-r', '-10']);
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, payload.subarray(payload.length - 10));
    const beyond = curl(url('/curl-payload.bin'), alice, ['-r', `${payload.length}-`]);
    assert.equal(beyond.status, 416);
  });

  test('MKCOL creates a directory owned by alice; a second MKCOL on it gives 405', () => {
    assert.equal(curl(url('/curl-dir'), alice, ['-X', 'MKCOL']).status, 201);
    const stat = statSync(join(alice.home, 'curl-dir'));
    assert.ok(stat.isDirectory());
    assert.equal(stat.uid, alice.uid);
    assert.equal(curl(url('/curl-dir'), alice, ['-X', 'MKCOL']).status, 405);
    assert.equal(curl(url('/no-such-parent/child'), alice, ['-X', 'MKCOL']).status, 409);
  });

  test('PROPFIND Depth 1 lists the collection and its members, not their members', () => {
    mkdirSync(join(alice.home, 'curl-dir', 'inner'));
    chownSync(join(alice.home, 'curl-dir', 'inner'), alice.uid, alice.gid);
    for (const name of ['one.txt', 'inner/deep.txt']) {
      const local = join(scratch, 'small.txt');
      writeFileSync(local, name);
      assert.equal(curl(url(`/curl-dir/${name}`), alice, ['-T', local]).status, 201);
    }
    const listing = curl(url('/curl-dir/'), alice, ['-X', 'PROPFIND', '-H', 'Depth: 1']);
    assert.equal(listing.status, 207);
    assert.deepEqual(multistatusHrefs(listing.text).sort(), [
      '/curl-dir/',
      '/curl-dir/inner/',
      '/curl-dir/one.txt',
    ]);
    assert.match(listing.text, /<(\w+:)?getcontentlength>7<\//, 'one.txt has its size');
  });

  test('MOVE renames on disk, COPY duplicates, DELETE removes', () => {
    const destination = (path: string): string[] => ['-H', `Destination: ${url(path)}`];
    assert.equal(
      curl(url('/curl-dir/one.txt'), alice, ['-X', 'MOVE', ...destination('/curl-dir/two.txt')]).status,
      201,
    );
    assert.ok(!existsSync(join(alice.home, 'curl-dir', 'one.txt')));
    assertAliceFile('curl-dir/two.txt', 'one.txt');
    assert.equal(curl(url('/curl-dir'), alice, ['-X', 'COPY', ...destination('/curl-copy')]).status, 201);
    assertAliceFile('curl-copy/two.txt', 'one.txt');
    assertAliceFile('curl-copy/inner/deep.txt', 'inner/deep.txt');
    assert.equal(
      curl(url('/curl-dir/two.txt'), alice, [
        '-X',
        'COPY',
        '-H',
        'Overwrite: F',
        ...destination('/curl-copy/two.txt'),
      ]).status,
      412,
      'Overwrite: F onto an existing file',
    );
    assert.equal(curl(url('/curl-copy'), alice, ['-X', 'DELETE']).status, 204);
    assert.ok(!existsSync(join(alice.home, 'curl-copy')));
    assert.equal(curl(url('/curl-copy'), alice, ['-X', 'DELETE']).status, 404);
  });

  test('a UTF-8 name with spaces, %, # and ? round-trips, and the listing href decodes to it', () => {
    const name = 'été 100% #1 ?x=y & ü.txt';
    const content = 'special name\n';
    const local = join(scratch, 'special.txt');
    writeFileSync(local, content);
    assert.equal(curl(url(`/curl-dir/${name}`), alice, ['-T', local]).status, 201);
    assertAliceFile(`curl-dir/${name}`, content);
    const get = curl(url(`/curl-dir/${name}`), alice);
    assert.equal(get.status, 200);
    assert.equal(get.text, content);
    const listing = curl(url('/curl-dir/'), alice, ['-X', 'PROPFIND', '-H', 'Depth: 1']);
    assert.ok(multistatusHrefs(listing.text).includes(`/curl-dir/${name}`), listing.text);
  });
});

describe('rclone', () => {
  let environment: NodeJS.ProcessEnv;
  let tree: string;
  const files = new Map<string, Buffer>([
    ['a.txt', Buffer.from('alpha\n')],
    ['empty.txt', Buffer.alloc(0)],
    ['sub/b.txt', Buffer.from('bravo\n')],
    ['sub/deeper/c è.txt', Buffer.from('charlie\n')],
    ['big.bin', randomBytes(5 * 1024 * 1024)],
  ]);

  before(() => {
    environment = rcloneEnvironment(daemon.url, alice);
    tree = join(scratch, 'rclone-tree');
    for (const [path, content] of files) {
      mkdirSync(join(tree, path, '..'), { recursive: true });
      writeFileSync(join(tree, path), content);
    }
  });

  test("rclone copy uploads a tree with a nested directory and a 5 MB file, all alice's", () => {
    const result = rclone(environment, ['copy', tree, `${RCLONE_REMOTE}:up`]);
    assert.equal(result.status, 0, result.stderr);
    for (const [path, content] of files) assertAliceFile(join('up', path), content);
    assert.equal(statSync(join(alice.home, 'up', 'sub', 'deeper')).uid, alice.uid);
  });

  test('rclone lsjson -R lists exactly the uploaded files and directories with their sizes', () => {
    const result = rclone(environment, ['lsjson', '-R', `${RCLONE_REMOTE}:up`]);
    assert.equal(result.status, 0, result.stderr);
    const listed = JSON.parse(result.stdout) as { Path: string; Size: number; IsDir: boolean }[];
    const seen = listed.map((entry) => `${entry.Path} ${entry.IsDir ? 'dir' : entry.Size}`).sort();
    const expected = [
      ...[...files].map(([path, content]) => `${path} ${content.length}`),
      'sub dir',
      'sub/deeper dir',
    ].sort();
    assert.deepEqual(seen, expected);
  });

  test('rclone check finds no differences, and does find one after a file changes on disk', () => {
    const clean = rclone(environment, ['check', tree, `${RCLONE_REMOTE}:up`]);
    assert.equal(clean.status, 0, clean.stderr);
    assert.match(clean.stderr, /0 differences found/);
    const changed = join(alice.home, 'up', 'a.txt');
    writeFileSync(changed, 'alpha, longer now\n');
    const dirty = rclone(environment, ['check', tree, `${RCLONE_REMOTE}:up`]);
    assert.notEqual(dirty.status, 0, 'a size difference is reported');
    writeFileSync(changed, files.get('a.txt')!);
  });

  test('rclone copy back down gives byte-identical files', () => {
    const down = join(scratch, 'rclone-down');
    const result = rclone(environment, ['copy', `${RCLONE_REMOTE}:up`, down]);
    assert.equal(result.status, 0, result.stderr);
    const listed = readdirSync(down, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => relative(down, join(entry.parentPath ?? entry.path, entry.name)))
      .sort();
    assert.deepEqual(listed, [...files.keys()].sort());
    for (const [path, content] of files) assert.deepEqual(readFileSync(join(down, path)), content, path);
  });

  test('rclone delete removes the files and keeps the directories; purge removes the rest', () => {
    const deleted = rclone(environment, ['delete', `${RCLONE_REMOTE}:up/sub`]);
    assert.equal(deleted.status, 0, deleted.stderr);
    assert.deepEqual(readdirSync(join(alice.home, 'up', 'sub'), { recursive: true }), ['deeper']);
    assert.ok(existsSync(join(alice.home, 'up', 'big.bin')), 'outside sub nothing was deleted');
    const purged = rclone(environment, ['purge', `${RCLONE_REMOTE}:up`]);
    assert.equal(purged.status, 0, purged.stderr);
    assert.ok(!existsSync(join(alice.home, 'up')));
  });
});

describe('cadaver', () => {
  let work: string;

  before(() => {
    work = join(scratch, 'cadaver');
    mkdirSync(work);
    writeFileSync(join(work, 'local.txt'), 'from cadaver\n');
  });

  /** Runs the commands and asserts each one reported success. */
  function session(commands: string[]): Map<string, string> {
    const steps = cadaver(`${daemon.url}/`, alice, work, commands);
    const outputs = new Map<string, string>();
    for (const command of commands) {
      const step = steps.find((candidate) => candidate.command === command);
      assert.ok(step, `cadaver ran "${command}": ${JSON.stringify(steps)}`);
      assert.doesNotMatch(step.output, /failed|error/i, `"${command}": ${step.output}`);
      outputs.set(command, step.output);
    }
    return outputs;
  }

  test("put, mkcol, move, get and ls work and leave alice's files on disk", () => {
    const outputs = session([
      'mkcol cad',
      'put local.txt cad/put.txt',
      'move cad/put.txt cad/moved.txt',
      'get cad/moved.txt fetched.txt',
      'ls cad',
    ]);
    assertAliceFile('cad/moved.txt', 'from cadaver\n');
    assert.ok(!existsSync(join(alice.home, 'cad', 'put.txt')));
    assert.equal(statSync(join(alice.home, 'cad')).uid, alice.uid);
    assert.equal(readFileSync(join(work, 'fetched.txt'), 'utf8'), 'from cadaver\n');
    assert.match(outputs.get('ls cad')!, /moved\.txt\s+13\s/);
  });

  test('propset stores a dead property in a user xattr of the file, and propget reads it back', () => {
    const outputs = session(['propset cad/moved.txt colour ultramarine', 'propget cad/moved.txt colour']);
    assert.match(outputs.get('propget cad/moved.txt colour')!, /Value of colour is: ultramarine/);
    const attributes = execFileSync('getfattr', ['-d', '-m', 'user.', join(alice.home, 'cad', 'moved.txt')], {
      encoding: 'utf8',
    });
    assert.match(attributes, /user\.[^\n]*colour[^\n]*ultramarine/);
  });

  test('lock and unlock in one session succeed, and the file is writable again afterwards', () => {
    session(['lock cad/moved.txt', 'unlock cad/moved.txt']);
    const local = join(scratch, 'after-unlock.txt');
    writeFileSync(local, 'after unlock\n');
    assert.equal(curl(url('/cad/moved.txt'), alice, ['-T', local]).status, 204);
    assertAliceFile('cad/moved.txt', 'after unlock\n');
  });

  test('a lock outlives the cadaver session: PUT without the token gets 423 until unlock with it', () => {
    const outputs = session(['lock cad/moved.txt', 'discover cad/moved.txt']);
    const token = /Lock token <([^>]+)>/.exec(outputs.get('discover cad/moved.txt')!)?.[1];
    assert.ok(token, `discover shows the token: ${outputs.get('discover cad/moved.txt')}`);
    const local = join(scratch, 'intruder.txt');
    writeFileSync(local, 'overwritten');
    assert.equal(curl(url('/cad/moved.txt'), alice, ['-T', local]).status, 423);
    assertAliceFile('cad/moved.txt', 'after unlock\n');
    // A new session does not know the token: cadaver asks for it on stdin.
    const [unlock] = cadaver(`${daemon.url}/`, alice, work, ['unlock cad/moved.txt', token]);
    assert.equal(unlock?.command, 'unlock cad/moved.txt');
    assert.match(unlock.output, /succeeded/);
    assert.equal(curl(url('/cad/moved.txt'), alice, ['-T', local]).status, 204);
    assertAliceFile('cad/moved.txt', 'overwritten');
  });
});

describe('davfs2', () => {
  const unavailable = davfsUnavailable();

  test(
    "a file written into the mount lands in alice's home as hers; reads and renames go through",
    { skip: unavailable ?? false },
    () => {
      writeFileSync(join(alice.home, 'on-disk.txt'), 'written on disk\n');
      chownSync(join(alice.home, 'on-disk.txt'), alice.uid, alice.gid);
      writeFileSync(join(alice.home, 'to-rename.txt'), 'rename me\n');
      chownSync(join(alice.home, 'to-rename.txt'), alice.uid, alice.gid);
      const written = randomBytes(300_000);
      const mount = mountDavfs(`${daemon.url}/`, alice, alice);
      try {
        const inMount = (name: string): string => join(mount.mountPoint, name);
        assert.equal(readFileSync(inMount('on-disk.txt'), 'utf8'), 'written on disk\n');
        // use_locks: davfs2 LOCKs a file it opens for writing, so another client is refused meanwhile.
        const file = openSync(inMount('through-davfs.bin'), 'w');
        try {
          writeSync(file, written);
          const intruder = join(scratch, 'davfs-intruder.txt');
          writeFileSync(intruder, 'intruder');
          assert.equal(curl(url('/through-davfs.bin'), alice, ['-T', intruder]).status, 423);
        } finally {
          closeSync(file);
        }
        renameSync(inMount('to-rename.txt'), inMount('renamed by davfs.txt'));
        assert.equal(readFileSync(inMount('renamed by davfs.txt'), 'utf8'), 'rename me\n');
      } finally {
        // davfs2 uploads what is still dirty before the unmount returns.
        mount.unmount();
      }
      assertAliceFile('through-davfs.bin', written);
      assertAliceFile('renamed by davfs.txt', 'rename me\n');
      assert.ok(!existsSync(join(alice.home, 'to-rename.txt')), 'the old name is gone');
      assert.deepEqual(
        readdirSync(alice.home).filter((name) => name.includes('privdav') && name.endsWith('.tmp')),
        [],
        'no temporary upload file is left',
      );
    },
  );
});
