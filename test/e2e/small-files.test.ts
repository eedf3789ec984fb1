// Small files through the real daemon. A PUT of at most 64 KiB is stored in one worker call
// (putSmall) and must answer exactly as the descriptor path does — statuses, ETag, lock and
// precondition verdicts, mode, time — and replace atomically when the worker dies mid-call. GETs
// on both sides of the 64 KiB line between one positional read and sendfile, also of a file that
// changes size while it is read, must give the bytes and headers that agree.

import assert from 'node:assert/strict';
import {
  chownSync,
  chmodSync,
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readProcStatus } from '../../common/proc-status';
import { INLINE_PUT_BYTES } from '../../src/dav/methods/put';
import { Daemon, request, sleep, startDaemon, type RequestOptions, type Response } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let alice: TestUser;
let daemon: Daemon;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

before(async () => {
  users = createUsers();
  alice = users.alice;
  daemon = await startDaemon();
});

after(async () => {
  agent.destroy();
  await daemon.stop();
  users.remove();
});

function asAlice(path: string, options: RequestOptions = {}): Promise<Response> {
  return request(daemon, encodeURI(path), { user: alice, agent, ...options });
}

/** A file in alice's home, owned by her, with `bytes` of content that differ from byte to byte. */
function aliceFile(name: string, bytes: number, seed = 7): Buffer {
  const content = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) content[i] = (i * 31 + seed) & 0xff;
  const path = join(alice.home, name);
  const fd = openSync(path, 'w');
  writeSync(fd, content);
  closeSync(fd);
  chownSync(path, alice.uid, alice.gid);
  return content;
}

/** The size an ETag names ("inode-size-mtime", hex): it must agree with the body sent with it. */
function etagSize(etag: string | undefined): number {
  return parseInt(String(etag).replace(/"/g, '').split('-')[1] ?? 'x', 16);
}

/** src/dav/methods/get.ts SMALL_BODY: bodies up to it are read at once, larger ones sent with sendfile. */
const SMALL_BODY = 64 * 1024;

const LOCKINFO =
  '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>' +
  '<D:locktype><D:write/></D:locktype></D:lockinfo>';

describe('GET of small files', () => {
  const sizes = [0, 1, SMALL_BODY - 1, SMALL_BODY, SMALL_BODY + 1];

  test(`files of ${sizes.join(', ')} bytes come back byte for byte, with the validators HEAD gives`, async () => {
    for (const size of sizes) {
      const content = aliceFile(`edge-${size}.bin`, size);
      const get = await asAlice(`/edge-${size}.bin`);
      assert.equal(get.status, 200, `${size} bytes`);
      assert.equal(Number(get.headers['content-length']), size);
      assert.ok(get.body.equals(content), `${size} bytes: the body is the file`);
      const head = await asAlice(`/edge-${size}.bin`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      assert.equal(Number(head.headers['content-length']), size);
      assert.equal(get.headers.etag, head.headers.etag, `${size} bytes: one ETag`);
      assert.equal(get.headers['last-modified'], head.headers['last-modified']);
      assert.equal(etagSize(get.headers.etag), size);
    }
  });

  test('a conditional GET whose ETag or date still holds gets 304 without a body', async () => {
    aliceFile('cond.txt', 100);
    const first = await asAlice('/cond.txt');
    const etag = String(first.headers.etag);
    const byTag = await asAlice('/cond.txt', { headers: { 'If-None-Match': etag } });
    assert.equal(byTag.status, 304);
    assert.equal(byTag.body.length, 0);
    assert.equal(byTag.headers.etag, etag);
    const byDate = await asAlice('/cond.txt', {
      headers: { 'If-Modified-Since': String(first.headers['last-modified']) },
    });
    assert.equal(byDate.status, 304);
    const changed = aliceFile('cond.txt', 101);
    const after = await asAlice('/cond.txt', { headers: { 'If-None-Match': etag } });
    assert.equal(after.status, 200, 'a changed file is sent again');
    assert.ok(after.body.equals(changed));
    assert.notEqual(after.headers.etag, etag);
  });

  test('a Range of a small file gets 206 and exactly those bytes; an If-Range that fails, the whole file', async () => {
    const content = aliceFile('range.bin', 1000);
    const part = await asAlice('/range.bin', { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], 'bytes 10-19/1000');
    assert.ok(part.body.equals(content.subarray(10, 20)));
    const tail = await asAlice('/range.bin', { headers: { Range: 'bytes=-5' } });
    assert.ok(tail.body.equals(content.subarray(995)));
    assert.equal((await asAlice('/range.bin', { headers: { Range: 'bytes=5000-' } })).status, 416);
    const stale = await asAlice('/range.bin', { headers: { Range: 'bytes=0-0', 'If-Range': '"0-0-0"' } });
    assert.equal(stale.status, 200);
    assert.ok(stale.body.equals(content));
  });

  test('a file rewritten in place while it is read: every answer is 200 with the length its headers say', async () => {
    // The file often shrinks between the worker's fstat and the web process's read: the answer must
    // then say how many bytes it carries, or the client waits for the rest and reads the next
    // answer as part of this one.
    const path = join(alice.home, 'moving.bin');
    aliceFile('moving.bin', 10);
    const small = Buffer.alloc(SMALL_BODY / 2, 'a');
    const large = Buffer.alloc(SMALL_BODY, 'b');
    let writing = true;
    let rewrites = 0;
    const writer = (async () => {
      while (writing) {
        const fd = openSync(path, 'w'); // O_TRUNC: the same inode shrinks, then grows again
        writeSync(fd, rewrites % 2 === 0 ? small : large);
        closeSync(fd);
        rewrites++;
        if (rewrites % 4 === 0) await sleep(0);
      }
    })();
    let stale = 0;
    try {
      for (let round = 0; round < 60; round++) {
        const answers = await Promise.all(Array.from({ length: 4 }, () => asAlice('/moving.bin')));
        for (const answer of answers) {
          assert.equal(answer.status, 200, answer.text.slice(0, 200));
          const length = answer.body.length;
          assert.equal(Number(answer.headers['content-length']), length);
          // Read after the file shrank: shorter than the stat (and ETag) the worker saw.
          if (etagSize(answer.headers.etag) !== length) stale++;
        }
      }
    } finally {
      writing = false;
      await writer;
    }
    process.stdout.write(
      `# ${rewrites} rewrites during 240 GETs; ${stale} bodies shorter than their ETag says\n`,
    );
    assert.ok(rewrites > 60, `the file was rewritten ${rewrites} times`);
  });
});

describe('PUT of small files', () => {
  test('PUT creates (201) and replaces (204) at 0, 1 and the bound, and GET gives the bytes and the ETag', async () => {
    for (const size of [0, 1, INLINE_PUT_BYTES, INLINE_PUT_BYTES + 1]) {
      const first = Buffer.alloc(size, 'x');
      const second = Buffer.alloc(size, 'y');
      const created = await asAlice(`/put-${size}.bin`, { method: 'PUT', body: first });
      assert.equal(created.status, 201, `${size} bytes`);
      const replaced = await asAlice(`/put-${size}.bin`, { method: 'PUT', body: second });
      assert.equal(replaced.status, 204, `${size} bytes`);
      const file = join(alice.home, `put-${size}.bin`);
      assert.ok(readFileSync(file).equals(second));
      assert.equal(statSync(file).uid, alice.uid, 'the file is alice’s');
      const get = await asAlice(`/put-${size}.bin`);
      assert.equal(get.headers.etag, replaced.headers.etag, 'the ETag PUT answered is the file’s');
    }
  });

  test('a replaced file keeps its mode; a Unicode name is stored as sent', async () => {
    aliceFile('private.txt', 3);
    chmodSync(join(alice.home, 'private.txt'), 0o600);
    assert.equal((await asAlice('/private.txt', { method: 'PUT', body: 'new' })).status, 204);
    assert.equal(statSync(join(alice.home, 'private.txt')).mode & 0o777, 0o600);
    const name = 'Überlänge – 日本語.txt';
    assert.equal((await asAlice(`/${name}`, { method: 'PUT', body: 'unicode' })).status, 201);
    assert.equal(readFileSync(join(alice.home, name), 'utf8'), 'unicode');
    assert.equal((await asAlice(`/${name}`)).text, 'unicode');
  });

  test('If-Match and If-None-Match are judged on the existing file: 412 changes nothing', async () => {
    assert.equal((await asAlice('/guarded.txt', { method: 'PUT', body: 'one' })).status, 201);
    const etag = String((await asAlice('/guarded.txt')).headers.etag);
    const wrongTag = await asAlice('/guarded.txt', {
      method: 'PUT',
      body: 'two',
      headers: { 'If-Match': '"not-the-etag"' },
    });
    assert.equal(wrongTag.status, 412);
    const createOnly = await asAlice('/guarded.txt', {
      method: 'PUT',
      body: 'two',
      headers: { 'If-None-Match': '*' },
    });
    assert.equal(createOnly.status, 412);
    assert.equal(readFileSync(join(alice.home, 'guarded.txt'), 'utf8'), 'one');
    const rightTag = await asAlice('/guarded.txt', {
      method: 'PUT',
      body: 'three',
      headers: { 'If-Match': etag },
    });
    assert.equal(rightTag.status, 204);
    const missing = await asAlice('/absent.txt', { method: 'PUT', body: 'x', headers: { 'If-Match': '*' } });
    assert.equal(missing.status, 412, 'If-Match on a missing file');
    assert.equal(readFileSync(join(alice.home, 'guarded.txt'), 'utf8'), 'three');
  });

  test('a missing parent gives 409, a collection 405; X-OC-Mtime sets the time', async () => {
    assert.equal((await asAlice('/no/such/dir/f.txt', { method: 'PUT', body: 'x' })).status, 409);
    assert.equal((await asAlice('/coll', { method: 'MKCOL' })).status, 201);
    assert.equal((await asAlice('/coll', { method: 'PUT', body: 'x' })).status, 405);
    const dated = await asAlice('/dated.txt', {
      method: 'PUT',
      body: 'x',
      headers: { 'X-OC-Mtime': '1500000000.5' },
    });
    assert.equal(dated.status, 201);
    assert.equal(dated.headers['x-oc-mtime'], 'accepted');
    assert.equal(statSync(join(alice.home, 'dated.txt')).mtimeMs, 1_500_000_000_500);
    assert.equal(
      (await asAlice('/dated.txt')).headers.etag,
      dated.headers.etag,
      'the ETag includes the time',
    );
  });

  test('locks: a locked file needs its token; a depth-0 lock on the parent guards new members only', async () => {
    aliceFile('locked.txt', 3);
    const lock = await asAlice('/locked.txt', {
      method: 'LOCK',
      body: LOCKINFO,
      headers: { 'Content-Type': 'application/xml' },
    });
    assert.equal(lock.status, 200);
    const token = String(lock.headers['lock-token']);
    assert.equal((await asAlice('/locked.txt', { method: 'PUT', body: 'no' })).status, 423);
    const withToken = await asAlice('/locked.txt', {
      method: 'PUT',
      body: 'yes',
      headers: { If: `(${token})` },
    });
    assert.equal(withToken.status, 204);
    assert.equal(readFileSync(join(alice.home, 'locked.txt'), 'utf8'), 'yes');

    assert.equal((await asAlice('/guarded-dir', { method: 'MKCOL' })).status, 201);
    assert.equal((await asAlice('/guarded-dir/old.txt', { method: 'PUT', body: 'old' })).status, 201);
    const dirLock = await asAlice('/guarded-dir', {
      method: 'LOCK',
      body: LOCKINFO,
      headers: { 'Content-Type': 'application/xml', Depth: '0' },
    });
    assert.equal(dirLock.status, 200);
    assert.equal((await asAlice('/guarded-dir/new.txt', { method: 'PUT', body: 'new' })).status, 423);
    assert.equal(readdirSync(join(alice.home, 'guarded-dir')).join(), 'old.txt', 'nothing was created');
    const replace = await asAlice('/guarded-dir/old.txt', { method: 'PUT', body: 'replaced' });
    assert.equal(replace.status, 204, 'replacing a member leaves the membership alone');
    assert.equal(readFileSync(join(alice.home, 'guarded-dir', 'old.txt'), 'utf8'), 'replaced');
  });

  test("kill -9 of alice's worker during small PUTs: the file is always one whole version", async () => {
    const path = join(alice.home, 'crash.bin');
    const versions = [Buffer.alloc(INLINE_PUT_BYTES, 'A'), Buffer.alloc(INLINE_PUT_BYTES, 'B')];
    assert.equal((await asAlice('/crash.bin', { method: 'PUT', body: versions[0]! })).status, 201);
    let kills = 0;
    let failed = 0;
    for (let round = 0; round < 12; round++) {
      const puts = Array.from({ length: 4 }, (_, i) =>
        asAlice('/crash.bin', { method: 'PUT', body: versions[(round + i) % 2]!, agent: false }).then(
          (response) => response.status,
          () => 0,
        ),
      );
      await sleep(round % 4);
      for (const pid of daemon.processes().workers) {
        if (readProcStatus(pid).uids[0] !== alice.uid) continue;
        process.kill(pid, 'SIGKILL');
        kills++;
      }
      for (const status of await Promise.all(puts)) {
        assert.ok(status === 204 || status === 0 || (status >= 500 && status <= 503), `status ${status}`);
        if (status !== 204) failed++;
      }
      const content = readFileSync(path);
      assert.ok(
        content.equals(versions[0]!) || content.equals(versions[1]!),
        `round ${round}: ${content.length} bytes, not one whole version`,
      );
    }
    process.stdout.write(
      `# ${kills} worker kills, ${failed} of 48 small PUTs failed, the file always whole\n`,
    );
    assert.ok(kills >= 6, 'the worker was killed');
    const listing = await asAlice('/', { method: 'PROPFIND', headers: { Depth: '1' } });
    assert.equal(listing.status, 207);
    assert.doesNotMatch(listing.text, /privdav-/, 'no temporary name is listed');
    assert.equal(
      (await asAlice('/crash.bin', { method: 'PUT', body: 'after' })).status,
      204,
      'a new worker serves alice',
    );
  });
});
