// What Finder, Windows, rclone and proxied clients need beyond RFC 4918, through the real daemon
// with real clients: nginx terminating TLS (public_url), rclone's owncloud vendor (X-OC-Mtime),
// curl for partial updates and compression, Finder's probes and chunked uploads, shares.hide.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  statfsSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { xattrGet, xattrSet } from '../../native';
import {
  RCLONE_REMOTE,
  curl,
  encodePath,
  multistatusHrefs,
  rclone,
  rcloneEnvironment,
} from '../support/clients';
import { freePort, request, startDaemon, type Daemon } from '../support/daemon';
import { startTlsProxy, type TlsProxy } from '../support/tls-proxy';
import { createUsers, type TestUser, type TestUsers } from '../support/users';

const PUBLIC_NAME = 'dav.privdav-test.example';

let users: TestUsers;
let alice: TestUser;
let daemon: Daemon;
let proxy: TlsProxy;
let scratch: string;

before(async () => {
  users = createUsers();
  alice = users.alice;
  scratch = mkdtempSync(join(tmpdir(), 'privdav-compat-'));
  // public_url must name the proxy's port: nginx first (it connects to its backend lazily).
  const port = await freePort();
  proxy = await startTlsProxy(port, PUBLIC_NAME);
  daemon = await startDaemon({
    port,
    extra: {
      server: [`public_url = "https://${PUBLIC_NAME}:${proxy.port}"`],
      shares: ['hide = [".DS_Store", "*.tmp"]'],
    },
  });
});
after(async () => {
  try {
    await daemon?.stop();
    await proxy?.stop();
  } finally {
    users?.remove();
    rmSync(scratch, { recursive: true, force: true });
  }
});

function url(path: string): string {
  return `${daemon.url}${encodePath(path)}`;
}

function home(path: string): string {
  return join(alice.home, path);
}

/** A file in alice's home, hers, as another client would have left it. */
function aliceFile(path: string, content: string | Buffer): void {
  writeFileSync(home(path), content);
  chownSync(home(path), alice.uid, alice.gid);
}

describe('behind a TLS-terminating nginx (server.public_url)', () => {
  const publicUrl = (path: string): string => `https://${PUBLIC_NAME}:${proxy.port}${encodePath(path)}`;
  const viaProxy = (path: string, args: string[]): ReturnType<typeof curl> =>
    curl(publicUrl(path), alice, ['-k', '--resolve', `${PUBLIC_NAME}:${proxy.port}:127.0.0.1`, ...args]);

  test('MOVE and COPY with a Destination on the public https origin succeed', () => {
    aliceFile('proxied.txt', 'through nginx');
    const moved = viaProxy('/proxied.txt', [
      '-X',
      'MOVE',
      '-H',
      `Destination: ${publicUrl('/proxied-moved.txt')}`,
    ]);
    assert.equal(moved.status, 201, moved.text);
    assert.equal(readFileSync(home('proxied-moved.txt'), 'utf8'), 'through nginx');
    const copied = viaProxy('/proxied-moved.txt', [
      '-X',
      'COPY',
      '-H',
      `Destination: ${publicUrl('/proxied-copy.txt')}`,
    ]);
    assert.equal(copied.status, 201, copied.text);
    assert.equal(readFileSync(home('proxied-copy.txt'), 'utf8'), 'through nginx');
  });

  test('a Destination on any other origin still gets 502', () => {
    aliceFile('stays.txt', 'x');
    for (const destination of [
      `https://elsewhere.example:${proxy.port}/stays-moved.txt`,
      `http://${PUBLIC_NAME}:${proxy.port}/stays-moved.txt`,
      `https://${PUBLIC_NAME}:1/stays-moved.txt`,
    ]) {
      const res = viaProxy('/stays.txt', ['-X', 'MOVE', '-H', `Destination: ${destination}`]);
      assert.equal(res.status, 502, destination);
    }
    assert.equal(readFileSync(home('stays.txt'), 'utf8'), 'x');
  });

  test('the request origin itself still works directly', () => {
    aliceFile('direct.txt', 'd');
    const res = curl(url('/direct.txt'), alice, [
      '-X',
      'COPY',
      '-H',
      `Destination: ${url('/direct-copy.txt')}`,
    ]);
    assert.equal(res.status, 201);
  });
});

describe('rclone with vendor=owncloud (X-OC-Mtime)', () => {
  test('a sync keeps the source modification times, and a second sync copies nothing', () => {
    const source = join(scratch, 'rclone-source');
    mkdirSync(source);
    const times = new Map<string, number>();
    for (const [index, name] of ['one.txt', 'two.bin', 'three.txt'].entries()) {
      writeFileSync(join(source, name), randomBytes(1000 + index));
      const when = 1_500_000_000 + index * 86_400;
      utimesSync(join(source, name), when, when);
      times.set(name, when);
    }
    // rclone lsl prints local time.
    const environment = { ...rcloneEnvironment(daemon.url, alice, 'owncloud'), TZ: 'UTC' };
    const first = rclone(environment, ['sync', source, `${RCLONE_REMOTE}:synced`]);
    assert.equal(first.status, 0, first.stderr);
    for (const [name, when] of times) {
      assert.equal(Math.round(statSync(home(`synced/${name}`)).mtimeMs / 1000), when, `${name} on disk`);
    }
    const listed = rclone(environment, ['lsl', `${RCLONE_REMOTE}:synced`]);
    assert.equal(listed.status, 0, listed.stderr);
    for (const [name, when] of times) {
      const line = listed.stdout.split('\n').find((row) => row.endsWith(` ${name}`));
      assert.ok(line !== undefined, `${name} listed`);
      const shown = Date.parse(
        line
          .trim()
          .split(/\s+/)
          .slice(1, 3)
          .join('T')
          .replace(/\.\d+$/, '') + 'Z',
      );
      assert.equal(shown / 1000, when, `${name}: ${line}`);
    }
    const second = rclone(environment, ['sync', '-v', source, `${RCLONE_REMOTE}:synced`]);
    assert.equal(second.status, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /Copied|Updated modification time/, second.stderr);
  });

  test('PUT with X-OC-Mtime answers "X-OC-Mtime: accepted"; a malformed value is 400', () => {
    const local = join(scratch, 'mtime.txt');
    writeFileSync(local, 'mtime');
    const res = curl(url('/mtime.txt'), alice, ['-T', local, '-H', 'X-OC-Mtime: 1234567890']);
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-oc-mtime'], 'accepted');
    assert.equal(statSync(home('mtime.txt')).mtimeMs, 1_234_567_890_000);
    const bad = curl(url('/mtime.txt'), alice, ['-T', local, '-H', 'X-OC-Mtime: yesterday']);
    assert.equal(bad.status, 400);
    assert.equal(statSync(home('mtime.txt')).mtimeMs, 1_234_567_890_000);
  });
});

describe('partial updates with curl', () => {
  const PATCH_TYPE = 'Content-Type: application/x-sabredav-partialupdate';
  const patch = (path: string, range: string, body: string, extra: string[] = []): ReturnType<typeof curl> =>
    curl(url(path), alice, [
      '-X',
      'PATCH',
      '-H',
      PATCH_TYPE,
      '-H',
      `X-Update-Range: ${range}`,
      '--data-binary',
      body,
      ...extra,
    ]);

  test('OPTIONS advertises sabredav-partialupdate and PATCH', () => {
    aliceFile('options.txt', 'o');
    const res = curl(url('/options.txt'), alice, ['-X', 'OPTIONS']);
    assert.match(res.headers.dav ?? '', /sabredav-partialupdate/);
    assert.match(res.headers.allow ?? '', /PATCH/);
  });

  test('X-Update-Range bytes=a-b, bytes=a-, bytes=-n and append each change exactly their bytes', () => {
    aliceFile('patched.txt', '0123456789');
    assert.equal(patch('/patched.txt', 'bytes=2-4', 'abc').status, 204);
    assert.equal(readFileSync(home('patched.txt'), 'utf8'), '01abc56789');
    assert.equal(patch('/patched.txt', 'bytes=8-', 'XYZ').status, 204);
    assert.equal(readFileSync(home('patched.txt'), 'utf8'), '01abc567XYZ');
    assert.equal(patch('/patched.txt', 'bytes=-3', 'end').status, 204);
    assert.equal(readFileSync(home('patched.txt'), 'utf8'), '01abc567end');
    assert.equal(patch('/patched.txt', 'append', '+more').status, 204);
    assert.equal(readFileSync(home('patched.txt'), 'utf8'), '01abc567end+more');
  });

  test('ranges that do not fit are refused and change nothing', () => {
    aliceFile('refused.txt', 'short');
    assert.equal(patch('/refused.txt', 'bytes=1-5', 'ab').status, 416); // length mismatch
    assert.equal(patch('/refused.txt', 'bytes=9-', 'ab').status, 416); // past the end
    assert.equal(patch('/refused.txt', 'bytes=-9', 'ab').status, 416); // before the start
    assert.equal(patch('/refused.txt', 'lines=1', 'ab').status, 400);
    assert.equal(patch('/missing.txt', 'append', 'ab').status, 404);
    const wrongType = curl(url('/refused.txt'), alice, [
      '-X',
      'PATCH',
      '-H',
      'X-Update-Range: append',
      '--data-binary',
      'x',
    ]);
    assert.equal(wrongType.status, 415);
    assert.equal(readFileSync(home('refused.txt'), 'utf8'), 'short');
  });

  test('the file keeps its owner, mode and xattrs, and the ETag changes', () => {
    aliceFile('kept.txt', 'aaaa');
    chmodSync(home('kept.txt'), 0o640);
    xattrSet(home('kept.txt'), 'user.privdav.test', Buffer.from('kept'));
    const before = curl(url('/kept.txt'), alice, ['-I']).headers.etag;
    const res = patch('/kept.txt', 'bytes=0-1', 'bb');
    assert.equal(res.status, 204);
    assert.notEqual(res.headers.etag, before);
    const stat = statSync(home('kept.txt'));
    assert.equal(stat.uid, alice.uid);
    assert.equal(stat.mode & 0o7777, 0o640);
    assert.equal(xattrGet(home('kept.txt'), 'user.privdav.test').toString(), 'kept');
    assert.equal(readFileSync(home('kept.txt'), 'utf8'), 'bbaa');
  });

  test('If-Match and locks apply: a stale ETag is 412, a locked file without its token is 423', () => {
    aliceFile('guarded.txt', 'gggg');
    assert.equal(patch('/guarded.txt', 'append', 'x', ['-H', 'If-Match: "stale"']).status, 412);
    const lock = curl(url('/guarded.txt'), alice, [
      '-X',
      'LOCK',
      '-H',
      'Content-Type: application/xml',
      '--data-binary',
      '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
    ]);
    assert.equal(lock.status, 200);
    const token = lock.headers['lock-token']!;
    assert.equal(patch('/guarded.txt', 'append', 'x').status, 423);
    assert.equal(readFileSync(home('guarded.txt'), 'utf8'), 'gggg');
    assert.equal(patch('/guarded.txt', 'append', 'x', ['-H', `If: (${token})`]).status, 204);
    assert.equal(readFileSync(home('guarded.txt'), 'utf8'), 'ggggx');
  });

  test('PUT with Content-Range writes the range (Apache mod_dav style), and may extend the file', () => {
    aliceFile('ranged.bin', 'abcdef');
    const local = join(scratch, 'range-body');
    writeFileSync(local, 'XYZ');
    const res = curl(url('/ranged.bin'), alice, ['-T', local, '-H', 'Content-Range: bytes 4-6/*']);
    assert.equal(res.status, 204);
    assert.equal(readFileSync(home('ranged.bin'), 'utf8'), 'abcdXYZ');
  });
});

describe('compression of generated responses', () => {
  const PROPFIND_BODY = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>';

  before(() => {
    mkdirSync(home('many'));
    for (let i = 0; i < 1000; i++) writeFileSync(home(`many/entry-${String(i).padStart(4, '0')}.txt`), 'x');
    spawnSync('chown', ['-R', `${alice.uid}:${alice.gid}`, home('many')]);
  });

  test('a PROPFIND with Accept-Encoding: gzip comes back gzip-compressed, the same XML, with Vary', async () => {
    const headers = { Depth: '1', 'Content-Type': 'application/xml' };
    const plain = await request(daemon, '/many/', {
      method: 'PROPFIND',
      user: alice,
      headers,
      body: PROPFIND_BODY,
    });
    const zipped = await request(daemon, '/many/', {
      method: 'PROPFIND',
      user: alice,
      headers: { ...headers, 'Accept-Encoding': 'gzip, deflate' },
      body: PROPFIND_BODY,
    });
    assert.equal(plain.status, 207);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.headers.vary, 'Accept-Encoding');
    assert.equal(zipped.status, 207);
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.equal(zipped.headers.vary, 'Accept-Encoding');
    const unzipped = gunzipSync(zipped.body).toString('utf8');
    assert.equal(multistatusHrefs(unzipped).length, 1001);
    assert.deepEqual(multistatusHrefs(unzipped), multistatusHrefs(plain.text));
    assert.ok(zipped.body.length * 5 < plain.body.length, `${zipped.body.length} vs ${plain.body.length}`);
  });

  test('a client that refuses gzip (q=0) gets it plain', async () => {
    const res = await request(daemon, '/many/', {
      method: 'PROPFIND',
      user: alice,
      headers: { Depth: '0', 'Accept-Encoding': 'gzip;q=0, *;q=1' },
    });
    assert.equal(res.headers['content-encoding'], undefined);
  });

  test('the HTML listing is compressed; a file body is sent as stored', () => {
    const listing = curl(url('/many/'), alice, ['--compressed']);
    assert.equal(listing.status, 200);
    assert.equal(listing.headers['content-encoding'], 'gzip');
    assert.match(listing.text, /entry-0999\.txt/);
    const plainListing = curl(url('/many/'), alice);
    assert.equal(listing.headers.etag, plainListing.headers.etag!.replace(/"$/, '-gzip"'));
    const payload = randomBytes(50_000);
    aliceFile('stored.bin', payload);
    const file = curl(url('/stored.bin'), alice, ['-H', 'Accept-Encoding: gzip']);
    assert.equal(file.headers['content-encoding'], undefined);
    assert.deepEqual(file.body, payload);
  });

  test('a gzip listing revalidates with its own ETag (304), as the plain one does', async () => {
    for (const encoding of ['gzip', 'identity']) {
      const headers = { 'Accept-Encoding': encoding };
      const first = await request(daemon, '/many/', { user: alice, headers });
      assert.equal(first.status, 200);
      const again = await request(daemon, '/many/', {
        user: alice,
        headers: { ...headers, 'If-None-Match': first.headers.etag! },
      });
      assert.equal(again.status, 304, encoding);
      assert.equal(again.headers.etag, first.headers.etag, encoding);
    }
  });
});

describe('Finder details', () => {
  test('the mount probes are 404 even when the names exist on disk, and are not listed', async () => {
    mkdirSync(home('.Spotlight-V100'));
    aliceFile('mach_kernel', 'not a kernel');
    for (const probe of ['/.Spotlight-V100', '/._.', '/mach_kernel', '/Backups.backupdb']) {
      const res = await request(daemon, probe, { method: 'PROPFIND', user: alice, headers: { Depth: '0' } });
      assert.equal(res.status, 404, probe);
      assert.equal((await request(daemon, probe, { user: alice })).status, 404, probe);
    }
    const root = await request(daemon, '/', { method: 'PROPFIND', user: alice, headers: { Depth: '1' } });
    const hrefs = multistatusHrefs(root.text);
    assert.ok(!hrefs.includes('/mach_kernel') && !hrefs.includes('/.Spotlight-V100/'), hrefs.join(' '));
    const created = await request(daemon, '/mach_kernel', { method: 'PUT', user: alice, body: 'x' });
    assert.equal(created.status, 403);
    assert.equal(readFileSync(home('mach_kernel'), 'utf8'), 'not a kernel');
  });

  test('a chunked PUT announcing more than the free space gets 507 before any body is sent', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const socket = net.connect(daemon.port, '127.0.0.1');
      let response = '';
      socket.on('data', (chunk: Buffer) => {
        response += chunk.toString('latin1');
        const match = /^HTTP\/1\.1 (\d{3}) /.exec(response);
        if (match) {
          resolve(Number(match[1]));
          socket.destroy();
        }
      });
      socket.on('error', reject);
      const authorization = Buffer.from(`${alice.name}:${alice.password}`).toString('base64');
      // Headers only: the body would be a petabyte; the answer must not wait for it.
      socket.write(
        `PUT /huge.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${authorization}\r\n` +
          `Transfer-Encoding: chunked\r\nX-Expected-Entity-Length: ${10 ** 15}\r\n\r\n`,
      );
      setTimeout(() => reject(new Error(`no answer: ${response}`)), 20_000);
    });
    assert.equal(status, 507);
    assert.ok(!readdirSync(alice.home).includes('huge.bin'));
  });

  test('a chunked PUT whose X-Expected-Entity-Length fits is stored', () => {
    const local = join(scratch, 'finder.txt');
    writeFileSync(local, 'from finder');
    const res = curl(url('/finder.txt'), alice, [
      '-T',
      local,
      '-H',
      'Transfer-Encoding: chunked',
      '-H',
      'X-Expected-Entity-Length: 11',
    ]);
    assert.equal(res.status, 201);
    assert.equal(readFileSync(home('finder.txt'), 'utf8'), 'from finder');
  });
});

describe('shares.hide', () => {
  test('hidden names are left out of listings and are 404 to read', async () => {
    aliceFile('.DS_Store', 'finder litter');
    aliceFile('scratch.tmp', 'tmp');
    aliceFile('visible.txt', 'v');
    const root = await request(daemon, '/', { method: 'PROPFIND', user: alice, headers: { Depth: '1' } });
    const hrefs = multistatusHrefs(root.text);
    assert.ok(hrefs.includes('/visible.txt'));
    assert.ok(!hrefs.includes('/.DS_Store') && !hrefs.includes('/scratch.tmp'), hrefs.join(' '));
    assert.doesNotMatch(curl(url('/'), alice).text, /DS_Store|scratch\.tmp/);
    assert.equal(curl(url('/.DS_Store'), alice).status, 404);
  });

  test('creating a hidden name is refused with 403, by PUT, MKCOL, LOCK, COPY or MOVE', () => {
    const local = join(scratch, 'litter');
    writeFileSync(local, 'x');
    assert.equal(curl(url('/sub/.DS_Store'), alice, ['-T', local]).status, 403);
    assert.equal(curl(url('/new.tmp'), alice, ['-X', 'MKCOL']).status, 403);
    assert.equal(curl(url('/locked.tmp'), alice, ['-X', 'LOCK']).status, 403);
    aliceFile('source.txt', 's');
    assert.equal(
      curl(url('/source.txt'), alice, ['-X', 'MOVE', '-H', `Destination: ${url('/moved.tmp')}`]).status,
      403,
    );
    assert.equal(
      curl(url('/source.txt'), alice, ['-X', 'COPY', '-H', `Destination: ${url('/.DS_Store')}`]).status,
      403,
    );
    assert.equal(readFileSync(home('.DS_Store'), 'utf8'), 'finder litter');
    assert.ok(
      !readdirSync(alice.home).some(
        (name) => name === 'new.tmp' || name === 'moved.tmp' || name === 'locked.tmp',
      ),
    );
  });
});

describe('Unicode names: NFC and NFD are one name', () => {
  const nfc = (name: string): string => name.normalize('NFC');
  const nfd = (name: string): string => name.normalize('NFD');

  test('a file stored composed is found under its decomposed spelling (Finder), and the reverse', async () => {
    aliceFile(nfc('café.txt'), 'composed');
    aliceFile(nfd('naïve.txt'), 'decomposed');
    const asFinder = curl(url(`/${nfd('café.txt')}`), alice);
    assert.equal(asFinder.status, 200);
    assert.equal(asFinder.text, 'composed');
    assert.equal(curl(url(`/${nfc('naïve.txt')}`), alice).text, 'decomposed');
    const found = await request(daemon, encodePath(`/${nfd('café.txt')}`), {
      method: 'PROPFIND',
      user: alice,
      headers: { Depth: '0' },
    });
    assert.equal(found.status, 207);
  });

  test('an upload under the other spelling replaces the stored file instead of adding a look-alike', () => {
    aliceFile(nfc('résumé.txt'), 'old');
    const local = join(scratch, 'resume');
    writeFileSync(local, 'new from finder');
    const res = curl(url(`/${nfd('résumé.txt')}`), alice, ['-T', local]);
    assert.equal(res.status, 204);
    const spellings = readdirSync(alice.home).filter((name) => nfc(name) === nfc('résumé.txt'));
    assert.deepEqual(spellings, [nfc('résumé.txt')]);
    assert.equal(readFileSync(home(nfc('résumé.txt')), 'utf8'), 'new from finder');
  });

  test('a collection under the other spelling is entered, and MKCOL of a look-alike is 405', () => {
    mkdirSync(home(nfc('Übersicht')));
    chownSync(home(nfc('Übersicht')), alice.uid, alice.gid);
    const local = join(scratch, 'inside');
    writeFileSync(local, 'inside');
    assert.equal(curl(url(`/${nfd('Übersicht')}/${nfd('Ärger.txt')}`), alice, ['-T', local]).status, 201);
    assert.deepEqual(readdirSync(home(nfc('Übersicht'))), [nfd('Ärger.txt')]);
    assert.equal(curl(url(`/${nfd('Übersicht')}`), alice, ['-X', 'MKCOL']).status, 405);
    assert.ok(!readdirSync(alice.home).includes(nfd('Übersicht')));
  });

  test('when both spellings exist, the exact one wins, and a listing shows both as stored', async () => {
    mkdirSync(home('both'));
    chownSync(home('both'), alice.uid, alice.gid);
    aliceFile(`both/${nfc('é.txt')}`, 'nfc');
    aliceFile(`both/${nfd('é.txt')}`, 'nfd');
    assert.equal(curl(url(`/both/${nfc('é.txt')}`), alice).text, 'nfc');
    assert.equal(curl(url(`/both/${nfd('é.txt')}`), alice).text, 'nfd');
    const listing = await request(daemon, '/both/', {
      method: 'PROPFIND',
      user: alice,
      headers: { Depth: '1' },
    });
    const hrefs = multistatusHrefs(listing.text);
    assert.ok(
      hrefs.includes(`/both/${nfc('é.txt')}`) && hrefs.includes(`/both/${nfd('é.txt')}`),
      hrefs.join(' '),
    );
  });
});

describe('quota properties (RFC 4331)', () => {
  const QUOTA_BODY =
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>';

  test('without disk quotas (this kernel has none enabled) they report the filesystem, only when asked', async () => {
    const res = await request(daemon, '/', {
      method: 'PROPFIND',
      user: alice,
      headers: { Depth: '0' },
      body: QUOTA_BODY,
    });
    assert.equal(res.status, 207);
    const available = Number(/<D:quota-available-bytes>(\d+)</.exec(res.text)?.[1]);
    const used = Number(/<D:quota-used-bytes>(\d+)</.exec(res.text)?.[1]);
    const stats = statfsSync(alice.home);
    const expectedAvailable = stats.bavail * stats.bsize;
    // Other helpers write to the same disk meanwhile: allow a few hundred MB of drift.
    assert.ok(Math.abs(available - expectedAvailable) < 500e6, `${available} vs ${expectedAvailable}`);
    assert.ok(Math.abs(used - (stats.blocks - stats.bfree) * stats.bsize) < 500e6);
    const allprop = await request(daemon, '/', { method: 'PROPFIND', user: alice, headers: { Depth: '0' } });
    assert.doesNotMatch(allprop.text, /quota/);
  });
});
