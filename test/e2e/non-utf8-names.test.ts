// Names that are not UTF-8 (made in a shell: `touch $'caf\xe9.txt'`) are listed with their raw bytes
// percent-encoded in the href and are reached through that href by every method, in both layouts;
// a Latin-1 name and its UTF-8 look-alike stay two files.

import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Daemon, request, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';
import { xattrList } from '../../native/index';

let users: TestUsers;
let alice: TestUser;
let home: Daemon;
let tilde: Daemon;

/** A path below alice's home as bytes: the name parts are given as latin1 strings (one char a byte). */
function onDisk(...names: string[]): Buffer {
  return Buffer.concat([Buffer.from(alice.home), ...names.map((name) => Buffer.from('/' + name, 'latin1'))]);
}

/** Makes a file of alice's as root, the way a shell would, with a name given as bytes. */
function makeFile(content: string, ...names: string[]): void {
  const path = onDisk(...names);
  writeFileSync(path, content);
  chownSync(path, alice.uid, alice.gid);
}

function makeDirectory(...names: string[]): void {
  const path = onDisk(...names);
  mkdirSync(path);
  chownSync(path, alice.uid, alice.gid);
}

/** Alice's member names in `names` (a directory below her home) as latin1 strings of their bytes. */
function membersOnDisk(...names: string[]): string[] {
  return readdirSync(onDisk(...names), { encoding: 'buffer' })
    .map((name) => name.toString('latin1'))
    .sort();
}

function hrefs(multistatus: string): string[] {
  return [...multistatus.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map((match) => match[1]!);
}

before(async () => {
  users = createUsers();
  alice = users.alice;
  makeFile('latin-1', 'caf\xe9.txt');
  makeFile('utf-8', 'caf\xc3\xa9.txt'); // "café.txt" as UTF-8: the same letters, other bytes
  makeFile('replacement', 'caf\xef\xbf\xbd.txt'); // a real U+FFFD, what a lossy decoding would reach
  makeDirectory('d\xe9r');
  makeFile('inner', 'd\xe9r', 'inner\xff.txt');
  [home, tilde] = await Promise.all([startDaemon(), startDaemon({ layout: 'tilde' })]);
});
after(async () => {
  await Promise.all([home.stop(), tilde.stop()]);
  users.remove();
});

for (const layout of ['home', 'tilde'] as const) {
  describe(`${layout} layout`, () => {
    const daemon = (): Daemon => (layout === 'home' ? home : tilde);
    const share = (): string => (layout === 'home' ? '' : `/~${alice.name}`);
    const send = (path: string, options: Parameters<typeof request>[2] = {}) =>
      request(daemon(), share() + path, { user: alice, ...options });

    test('PROPFIND Depth 1 lists a Latin-1 name with its bytes percent-encoded, shown with U+FFFD', async () => {
      const reply = await send('/', { method: 'PROPFIND', headers: { Depth: '1' } });
      assert.equal(reply.status, 207);
      const listed = hrefs(reply.text);
      for (const href of ['/caf%E9.txt', '/caf%C3%A9.txt', '/caf%EF%BF%BD.txt', '/d%E9r/'])
        assert.ok(listed.includes(share() + href), `${href} listed: ${listed.join(' ')}`);
      assert.match(reply.text, /<D:displayname>caf\uFFFD\.txt<\/D:displayname>/);
      assert.match(reply.text, /<D:displayname>café\.txt<\/D:displayname>/);
      assert.doesNotThrow(
        () => new TextDecoder('utf-8', { fatal: true }).decode(reply.body),
        'the XML is UTF-8',
      );
    });

    test('PROPFIND Depth infinity and the HTML listing show the escaped hrefs', async () => {
      const deep = await send('/', { method: 'PROPFIND', headers: { Depth: 'infinity' } });
      assert.equal(deep.status, 207);
      assert.ok(hrefs(deep.text).includes(share() + '/d%E9r/inner%FF.txt'), deep.text);
      const inside = await send('/d%E9r/', { method: 'PROPFIND', headers: { Depth: '1' } });
      assert.deepEqual(hrefs(inside.text).sort(), [share() + '/d%E9r/', share() + '/d%E9r/inner%FF.txt']);
      const html = await send('/');
      assert.equal(html.status, 200);
      assert.match(html.text, new RegExp(`href="${share()}/caf%E9\\.txt">caf\uFFFD\\.txt<`));
      assert.match(html.text, new RegExp(`href="${share()}/d%E9r/">d\uFFFDr/<`));
    });

    test('a UTF-8 name and a Latin-1 name that differ only in encoding stay distinct', async () => {
      assert.equal((await send('/caf%E9.txt')).text, 'latin-1');
      assert.equal((await send('/caf%C3%A9.txt')).text, 'utf-8');
      assert.equal((await send('/caf%EF%BF%BD.txt')).text, 'replacement');
      assert.equal((await send('/d%E9r/inner%FF.txt')).text, 'inner');
      // Another Latin-1 name that a lossy decoding would also turn into "caf\uFFFD.txt".
      assert.equal((await send('/caf%E8.txt')).status, 404);
    });

    test('PUT over the href replaces exactly that file; PROPPATCH sets a property on it', async () => {
      const name = `put-${layout}-\xe9`;
      makeFile('old', name);
      const put = await send(`/put-${layout}-%E9`, { method: 'PUT', body: 'new' });
      assert.equal(put.status, 204);
      assert.equal(readFileSync(onDisk(name), 'utf8'), 'new');
      assert.ok(!existsSync(onDisk(`put-${layout}-\xef\xbf\xbd`)), 'no U+FFFD look-alike created');
      const patch = await send(`/put-${layout}-%E9`, {
        method: 'PROPPATCH',
        headers: { 'Content-Type': 'application/xml' },
        body:
          '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>' +
          '<Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>',
      });
      assert.equal(patch.status, 207);
      assert.match(patch.text, /200 OK/);
      const found = await send(`/put-${layout}-%E9`, {
        method: 'PROPFIND',
        headers: { Depth: '0', 'Content-Type': 'application/xml' },
        body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><colour xmlns="urn:z"/></D:prop></D:propfind>',
      });
      assert.equal(found.status, 207);
      assert.deepEqual(hrefs(found.text), [share() + `/put-${layout}-%E9`]);
      assert.match(found.text, />blue</);
      assert.ok(
        xattrList(onDisk(name)).some((attr) => attr.startsWith('user.dav')),
        'stored as an xattr',
      );
      const created = await send(`/new-${layout}-%FE`, { method: 'PUT', body: 'fresh' });
      assert.equal(created.status, 201);
      assert.equal(readFileSync(onDisk(`new-${layout}-\xfe`), 'utf8'), 'fresh');
    });

    test('COPY and MOVE take such names as source and destination; DELETE removes them', async () => {
      const dir = `tree-${layout}-\xe9`;
      makeDirectory(dir);
      makeFile('member', dir, 'm\xe9mber');
      const copy = await send(`/tree-${layout}-%E9/`, {
        method: 'COPY',
        headers: { Destination: `${share()}/copy-${layout}-%FF/` },
      });
      assert.equal(copy.status, 201);
      assert.deepEqual(membersOnDisk(`copy-${layout}-\xff`), ['m\xe9mber']);
      assert.equal(readFileSync(onDisk(`copy-${layout}-\xff`, 'm\xe9mber'), 'utf8'), 'member');
      // The Destination as an absolute URL, and raw bytes in a file MOVE.
      const move = await send(`/copy-${layout}-%FF/m%E9mber`, {
        method: 'MOVE',
        headers: { Destination: `${daemon().url}${share()}/moved-${layout}-%E8` },
      });
      assert.equal(move.status, 201);
      assert.deepEqual(membersOnDisk(`copy-${layout}-\xff`), []);
      assert.equal(readFileSync(onDisk(`moved-${layout}-\xe8`), 'utf8'), 'member');
      const onto = await send(`/moved-${layout}-%E8`, {
        method: 'MOVE',
        headers: { Destination: `${share()}/tree-${layout}-%E9/m%E9mber`, Overwrite: 'T' },
      });
      assert.equal(onto.status, 204);
      assert.ok(!existsSync(onDisk(`moved-${layout}-\xe8`)));
      for (const path of [`/tree-${layout}-%E9/`, `/copy-${layout}-%FF/`]) {
        assert.equal((await send(path, { method: 'DELETE' })).status, 204);
      }
      assert.ok(!existsSync(onDisk(dir)) && !existsSync(onDisk(`copy-${layout}-\xff`)));
    });

    test('LOCK holds exactly the named file, and its lockroot is the escaped href', async () => {
      makeFile('locked', `lock-${layout}-\xe9`);
      makeFile('free', `lock-${layout}-\xe8`);
      const lock = await send(`/lock-${layout}-%E9`, {
        method: 'LOCK',
        headers: { 'Content-Type': 'application/xml', Timeout: 'Second-60' },
        body:
          '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>' +
          '<D:locktype><D:write/></D:locktype></D:lockinfo>',
      });
      assert.equal(lock.status, 200);
      const token = String(lock.headers['lock-token']);
      assert.match(lock.text, new RegExp(`<D:lockroot><D:href>${share()}/lock-${layout}-%E9</D:href>`));
      assert.equal((await send(`/lock-${layout}-%E9`, { method: 'PUT', body: 'x' })).status, 423);
      // Another Latin-1 name (the same U+FFFD to a lossy store) is not locked.
      assert.equal((await send(`/lock-${layout}-%E8`, { method: 'PUT', body: 'y' })).status, 204);
      const found = await send(`/lock-${layout}-%E9`, {
        method: 'PROPFIND',
        headers: { Depth: '0', 'Content-Type': 'application/xml' },
        body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>',
      });
      assert.ok(found.text.includes(token.slice(1, -1)), 'lockdiscovery shows the lock');
      const withToken = await send(`/lock-${layout}-%E9`, {
        method: 'PUT',
        headers: { If: `(${token})` },
        body: 'z',
      });
      assert.equal(withToken.status, 204);
      assert.equal(readFileSync(onDisk(`lock-${layout}-\xe9`), 'utf8'), 'z');
      const unlock = await send(`/lock-${layout}-%E9`, {
        method: 'UNLOCK',
        headers: { 'Lock-Token': token },
      });
      assert.equal(unlock.status, 204);
      assert.equal((await send(`/lock-${layout}-%E9`, { method: 'PUT', body: 'w' })).status, 204);
    });

    test('quota properties of a collection whose name is not UTF-8', async () => {
      const reply = await send('/d%E9r/', {
        method: 'PROPFIND',
        headers: { Depth: '0', 'Content-Type': 'application/xml' },
        body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/></D:prop></D:propfind>',
      });
      assert.equal(reply.status, 207);
      assert.match(reply.text, /<D:quota-available-bytes>\d+<\/D:quota-available-bytes>/);
    });

    test('NUL and "/" cannot be smuggled in as bytes', async () => {
      assert.equal((await send('/a%00b')).status, 400);
      assert.equal((await send('/d%E9r%2Finner%FF.txt')).status, 400);
    });
  });
}
