// Homes on a filesystem without user xattrs (some NFS and FUSE mounts): bindfs --xattr-none is a real
// such filesystem. Every method must degrade cleanly: listings, copies and moves work, dead
// properties are refused per property (not 500), Windows' Win32 properties still succeed, locks work.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { davRequest, startDavTestServer, takeLock, type DavTestServer } from '../support/dav-test-server';

const usable =
  process.getuid?.() !== 0
    ? 'needs root to mount'
    : spawnSync('bindfs', ['--version']).status !== 0
      ? 'bindfs is not installed (scripts/setup.sh installs it)'
      : false;

let scratch = '';
let mounted = false;
let server: DavTestServer;

before(async () => {
  if (usable !== false) return;
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-noxattr-'));
  fs.mkdirSync(`${scratch}/backing`);
  fs.mkdirSync(`${scratch}/share`);
  execFileSync('bindfs', ['--xattr-none', `${scratch}/backing`, `${scratch}/share`]);
  mounted = true;
  server = await startDavTestServer({ root: `${scratch}/share` });
});

after(async () => {
  await server?.close();
  if (mounted) execFileSync('umount', [`${scratch}/share`]);
  if (scratch !== '') fs.rmSync(scratch, { recursive: true, force: true });
});

const PROPPATCH = (props: string): string =>
  '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:" xmlns:x="urn:x">' +
  `<D:set><D:prop>${props}</D:prop></D:set></D:propertyupdate>`;

test('the share really has no user xattrs', { skip: usable }, () => {
  fs.writeFileSync(`${scratch}/share/probe`, '');
  const result = spawnSync('setfattr', ['-n', 'user.x', '-v', '1', `${scratch}/share/probe`], {
    encoding: 'utf8',
  });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /not supported/i);
  fs.rmSync(`${scratch}/share/probe`);
});

test(
  'PUT, PROPFIND Depth 1 (allprop), COPY, MOVE and DELETE work without xattrs',
  { skip: usable },
  async () => {
    assert.equal((await davRequest(server, 'MKCOL', '/dir')).status, 201);
    assert.equal((await davRequest(server, 'PUT', '/dir/a.txt', { body: 'a' })).status, 201);
    const listing = await davRequest(server, 'PROPFIND', '/dir/', { headers: { Depth: '1' } });
    assert.equal(listing.status, 207);
    assert.match(listing.body, /\/dir\/a\.txt/);
    assert.equal(
      (await davRequest(server, 'COPY', '/dir', { headers: { Destination: '/copy' } })).status,
      201,
    );
    assert.equal(
      (await davRequest(server, 'MOVE', '/copy/a.txt', { headers: { Destination: '/moved.txt' } })).status,
      201,
    );
    assert.equal(fs.readFileSync(`${scratch}/backing/moved.txt`, 'utf8'), 'a');
    const overwrite = await davRequest(server, 'MOVE', '/moved.txt', {
      headers: { Destination: '/dir/a.txt', Overwrite: 'T' },
    });
    assert.equal(overwrite.status, 204);
    assert.equal((await davRequest(server, 'DELETE', '/copy')).status, 204);
    assert.equal(server.problems.length, 0, server.problems.join('\n'));
  },
);

test(
  'a dead property is refused per property; Win32 properties still succeed',
  { skip: usable },
  async () => {
    assert.equal((await davRequest(server, 'PUT', '/props.txt', { body: 'p' })).status, 201);
    const dead = await davRequest(server, 'PROPPATCH', '/props.txt', {
      body: PROPPATCH('<x:color>red</x:color>'),
    });
    assert.equal(dead.status, 207);
    assert.match(dead.body, /<X:color xmlns:X="urn:x"\/><\/D:prop><D:status>HTTP\/1\.1 403 Forbidden/);
    const win32 = await davRequest(server, 'PROPPATCH', '/props.txt', {
      body: PROPPATCH('<Z:Win32LastModifiedTime>Wed, 01 Jan 2020 00:00:00 GMT</Z:Win32LastModifiedTime>'),
    });
    assert.equal(win32.status, 207);
    assert.match(win32.body, /HTTP\/1\.1 200/);
    assert.equal(fs.statSync(`${scratch}/backing/props.txt`).mtime.getUTCFullYear(), 2020);
  },
);

test('locks work: LOCK, a refused PUT, a PUT with the token, UNLOCK', { skip: usable }, async () => {
  assert.equal((await davRequest(server, 'PUT', '/locked.txt', { body: 'l' })).status, 201);
  const token = await takeLock(server, '/locked.txt');
  assert.equal((await davRequest(server, 'PUT', '/locked.txt', { body: 'no' })).status, 423);
  const put = await davRequest(server, 'PUT', '/locked.txt', {
    body: 'yes',
    headers: { If: `(<${token}>)` },
  });
  assert.equal(put.status, 204);
  const unlock = await davRequest(server, 'UNLOCK', '/locked.txt', {
    headers: { 'Lock-Token': `<${token}>` },
  });
  assert.equal(unlock.status, 204);
});
