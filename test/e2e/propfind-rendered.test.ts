// A Depth 1 PROPFIND allprop without locks has most members rendered by the worker's addon
// (native/src/listing_xml.c) and passed on by the web process as they are. Through the real
// daemon, over names that need every escape or none, names and times the addon leaves to
// JavaScript, hidden and reserved names, dead properties, a fifo, a symlink and a directory of
// several batches: the multistatus must hold exactly the responses the JavaScript renderer makes
// for the same members (asked for with <D:include>, which adds nothing to allprop here but takes
// that path), gzip or not; a lock in the collection takes the JavaScript path.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, lchownSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { childElements, parseXml } from '../../src/dav/xml';
import { Daemon, freePort, getPlain, metricValue, request, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let alice: TestUser;
let daemon: Daemon;
let metricsPort: number;

/** Names as raw bytes (latin1 strings), so that invalid UTF-8 can be made. */
const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const NAMES = [
  'plain.txt',
  'Upper.TXT',
  'MiXeD.DocX',
  'a&b.pdf',
  '<tag>.html',
  'quote"d',
  "apos'",
  'sp ace',
  'plus+semi;eq=',
  'at@colon:~!$*()',
  'pct%41',
  utf8('é-nfc'),
  utf8('e\u0301-nfd'),
  utf8('日本語.md'),
  utf8('😀'),
  utf8('weird.ÄXT'), // an extension that is not ASCII: JavaScript's
  utf8('\uFFFE-not-xml'), // a character XML 1.0 lacks: JavaScript's
  utf8('line\u2028sep'),
  'trail.',
  'noext',
  '.dotfile',
  'del\x7f',
  'x'.repeat(255),
  'back\\slash', // JavaScript's
  'tab\there', // JavaScript's
  '\xff\xfe', // not UTF-8: JavaScript's
  'hidden.tmp', // shares.hide
  '.DS_Store', // shares.hide
  '.privdav-old-0123456789abcdef', // reserved: never listed
  '.privdav-lookalike', // JavaScript's, and listed
];

before(async () => {
  users = createUsers();
  alice = users.alice;
  metricsPort = await freePort();
  daemon = await startDaemon({
    extra: {
      shares: ['hide = ["*.tmp", ".DS_Store"]'],
      metrics: [`listen = ["127.0.0.1:${metricsPort}"]`],
    },
  });
  const own = (path: string): void => lchownSync(path, alice.uid, alice.gid);
  const dir = (path: string): string => {
    mkdirSync(path);
    own(path);
    return path;
  };
  const file = (path: string, content = 'x'): void => {
    writeFileSync(Buffer.from(path, 'latin1'), content);
    chownSync(Buffer.from(path, 'latin1'), alice.uid, alice.gid);
  };
  const mixed = dir(join(alice.home, 'mixed'));
  for (const name of NAMES) file(join(mixed, name), name);
  dir(join(mixed, 'sub'));
  dir(join(mixed, 'sub dir&<'));
  symlinkSync('plain.txt', join(mixed, 'link'));
  own(join(mixed, 'link'));
  symlinkSync('missing', join(mixed, 'dangling'));
  own(join(mixed, 'dangling'));
  execFileSync('mkfifo', [join(mixed, 'fifo')]);
  own(join(mixed, 'fifo'));
  for (const [name, seconds] of [
    ['before-1970', -1234567.891],
    ['year-1901', -2147483000],
    ['year-2400', 13569465600],
  ] as const) {
    file(join(mixed, name));
    utimesSync(join(mixed, name), seconds, seconds);
  }
  // Several batches (the addon's end at 96 KiB, the channel's at 64 KiB), with members that carry
  // dead properties (JavaScript's) among them.
  const many = dir(join(alice.home, 'many'));
  for (let i = 0; i < 700; i++) file(join(many, `member ${i} & more.txt`), String(i));
  // Several MiB of rendered responses: more than the loopback socket holds for a client that
  // stops reading, so the web process holds written but unsent chunks of the worker's messages.
  const huge = dir(join(alice.home, 'huge'));
  for (let i = 0; i < 6000; i++) file(join(huge, `a member with a longer name, number ${i}.txt`), String(i));
  await asAlice('/mixed/plain.txt', proppatch('in mixed'));
  for (let i = 0; i < 700; i += 37) await asAlice(`/many/member ${i} & more.txt`, proppatch(`value ${i}`));
});

after(async () => {
  await daemon.stop();
  users.remove();
});

function asAlice(path: string, options: Parameters<typeof request>[2] = {}): ReturnType<typeof request> {
  return request(daemon, encodeURI(path), { user: alice, ...options });
}

function proppatch(value: string): Parameters<typeof request>[2] {
  return {
    method: 'PROPPATCH',
    headers: { 'Content-Type': 'application/xml' },
    body: `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:note>${value}</Z:note></D:prop></D:set></D:propertyupdate>`,
  };
}

const INCLUDE =
  '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:displayname/></D:include></D:propfind>';

async function propfind(path: string, body: string | null, headers: Record<string, string> = {}) {
  const answer = await asAlice(path, {
    method: 'PROPFIND',
    headers: { Depth: '1', ...(body === null ? {} : { 'Content-Type': 'application/xml' }), ...headers },
    ...(body === null ? {} : { body }),
  });
  assert.equal(answer.status, 207, answer.text);
  return answer;
}

/** The <D:response> elements of a multistatus, in order. */
function responses(xml: string): string[] {
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'));
  assert.ok(xml.endsWith('</D:multistatus>'));
  return xml.match(/<D:response>.*?<\/D:response>/gs) ?? [];
}

const RENDERED_LISTINGS = 'privdav_channel_call_duration_seconds_count{op="listRendered"}';

/** listRendered calls so far (none yet: no series). */
async function renderedListings(port = metricsPort): Promise<number> {
  return metricValue((await getPlain(port, '/metrics')).text, RENDERED_LISTINGS, 0);
}

/** A PROPFIND whose client reads nothing for `pauseMs` after the status line, then everything. */
function slowPropfind(path: string, pauseMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: daemon.port,
        method: 'PROPFIND',
        path: encodeURI(path),
        headers: {
          Depth: '1',
          Authorization: `Basic ${Buffer.from(`${alice.name}:${alice.password}`).toString('base64')}`,
        },
      },
      (res) => {
        assert.equal(res.statusCode, 207);
        const chunks: Buffer[] = [];
        res.pause();
        setTimeout(() => res.resume(), pauseMs);
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('PROPFIND allprop rendered by the worker', () => {
  test('a client that stops reading gets the same bytes as one that does not', async () => {
    // The web process writes the worker's rendered messages out as they came and frees each once
    // written: freed before the socket took it, a message would go out as zeros or garbage.
    const before = await renderedListings();
    const fast = (await propfind('/huge/', null)).text;
    const slow = await slowPropfind('/huge/', 1500);
    assert.equal(await renderedListings(), before + 2, 'the worker rendered both listings');
    assert.ok(fast.length > 4 * 1024 * 1024, `a listing of ${fast.length} bytes`);
    assert.equal(responses(slow).length, 6001);
    assert.deepEqual(responses(slow).sort(), responses(fast).sort());
  });

  for (const collection of ['/mixed/', '/many/']) {
    test(`${collection}: the same responses as the JavaScript renderer's, every member once`, async () => {
      const before = await renderedListings();
      const fast = responses((await propfind(collection, null)).text);
      assert.equal(await renderedListings(), before + 1, 'the worker rendered this listing');
      const slow = responses((await propfind(collection, INCLUDE)).text);
      assert.equal(await renderedListings(), before + 1, '<D:include> takes the JavaScript path');
      // The order of responses carries no meaning (members the worker leaves to JavaScript come
      // first in each batch); their text must match exactly.
      assert.deepEqual([...fast].sort(), [...slow].sort());
      assert.equal(new Set(fast).size, fast.length, 'no member twice');
      if (collection === '/mixed/') {
        const hrefs = fast.map((response) => /<D:href>(.*?)<\/D:href>/s.exec(response)![1]!);
        for (const hidden of ['hidden.tmp', '.DS_Store', '.privdav-old-0123456789abcdef'])
          assert.ok(!hrefs.includes(`/mixed/${hidden}`), `${hidden} is not listed`);
        for (const shown of [
          'a&amp;b.pdf',
          '%3Ctag%3E.html',
          'quote%22d',
          '.privdav-lookalike',
          'sub/',
          'fifo',
        ])
          assert.ok(hrefs.includes(`/mixed/${shown}`), `${shown} is listed: ${hrefs.join(' ')}`);
        // Every NAMES entry but the three hidden; the two directories, the link (not the dangling
        // one: nothing to stat), the fifo, the three dated files and the collection itself.
        assert.equal(fast.length, NAMES.length - 3 + 8);
        assert.match(fast.join(''), /<D:displayname>&lt;tag&gt;\.html<\/D:displayname>/);
        assert.match(
          fast.join(''),
          /<Z:note xmlns:Z="urn:z">in mixed<\/Z:note>|<note xmlns="urn:z">in mixed<\/note>/,
        );
      } else {
        assert.equal(fast.length, 701);
      }
    });
  }

  // What clients ask for (CLIENTS.md): rclone, davfs2, Finder's quota probe, and edge cases. The
  // JavaScript renderer's answer comes from Depth: infinity, which the worker never renders: over
  // these collections (no subdirectory has members) it lists the same resources.
  const PROPS: Record<string, string> = {
    rclone:
      '<D:displayname/><D:getlastmodified/><D:getcontentlength/><D:resourcetype/><D:getcontenttype/>' +
      '<oc:checksums xmlns:oc="http://owncloud.org/ns"/><oc:permissions xmlns:oc="http://owncloud.org/ns"/>',
    davfs2:
      '<D:getetag/><D:getcontentlength/><D:creationdate/><D:getlastmodified/><D:resourcetype/>' +
      '<E:executable xmlns:E="http://apache.org/dav/props/"/>',
    'every live property':
      '<D:creationdate/><D:displayname/><D:getcontentlength/><D:getcontenttype/><D:getetag/>' +
      '<D:getlastmodified/><D:resourcetype/><D:lockdiscovery/><D:supportedlock/>' +
      '<D:quota-available-bytes/><D:quota-used-bytes/>',
    'a length alone (none for collections)': '<D:getcontentlength/>',
    'a dead property alone': '<Z:note xmlns:Z="urn:z"/>',
  };
  for (const [client, props] of Object.entries(PROPS)) {
    test(`prop (${client}): the same responses from the worker as from the JavaScript renderer`, async () => {
      const body = `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>${props}</D:prop></D:propfind>`;
      for (const collection of ['/mixed/', '/many/']) {
        const before = await renderedListings();
        const fast = responses((await propfind(collection, body)).text);
        assert.equal(await renderedListings(), before + 1, 'the worker rendered this listing');
        const slow = responses((await propfind(collection, body, { Depth: 'infinity' })).text);
        assert.equal(await renderedListings(), before + 1, 'Depth: infinity is not rendered by the worker');
        assert.deepEqual([...fast].sort(), [...slow].sort(), collection);
        assert.equal(fast.length, collection === '/mixed/' ? NAMES.length - 3 + 8 : 701);
      }
    });
  }

  test('a prop list of 150 unknown properties is rendered by the web process (4 KiB of text a member at most from the worker)', async () => {
    // Each member would repeat the same ~6 KB 404 block: through the channel to the shared web
    // process for every member, where the web process copies one encoded block instead.
    const names = Array.from({ length: 150 }, (_, i) => `<Z:unknown-${i} xmlns:Z="urn:z"/>`).join('');
    const body = `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>${names}</D:prop></D:propfind>`;
    const before = await renderedListings();
    const listed = responses((await propfind('/many/', body)).text);
    assert.equal(await renderedListings(), before, 'not rendered by the worker');
    assert.equal(listed.length, 701);
    assert.ok(listed.every((response) => response.includes('unknown-149')));
  });

  test('allprop: the same from the worker as from Depth: infinity', async () => {
    const fast = responses((await propfind('/mixed/', null)).text);
    const slow = responses((await propfind('/mixed/', null, { Depth: 'infinity' })).text);
    assert.deepEqual([...fast].sort(), [...slow].sort());
  });

  test('gzip: the same body, compressed', async () => {
    const plain = await propfind('/mixed/', null);
    const zipped = await propfind('/mixed/', null, { 'Accept-Encoding': 'gzip' });
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.deepEqual(
      [...responses(gunzipSync(zipped.body).toString('utf8'))].sort(),
      [...responses(plain.text)].sort(),
    );
  });

  test('a lock in the collection: the JavaScript path, which shows it', async () => {
    const lock = await asAlice('/many/member 1 & more.txt', {
      method: 'LOCK',
      headers: { 'Content-Type': 'application/xml', Timeout: 'Second-60' },
      body: '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
    });
    assert.equal(lock.status, 200, lock.text);
    const before = await renderedListings();
    const listed = responses((await propfind('/many/', null)).text);
    assert.equal(await renderedListings(), before, 'not rendered by the worker');
    const locked = listed.filter((response) => response.includes('<D:activelock>'));
    assert.equal(locked.length, 1);
    assert.match(locked[0]!, /member%201%20%26%20more\.txt/);
    const token = String(lock.headers['lock-token']);
    assert.equal(
      (await asAlice('/many/member 1 & more.txt', { method: 'UNLOCK', headers: { 'Lock-Token': token } }))
        .status,
      204,
    );
    await propfind('/many/', null);
    assert.equal(await renderedListings(), before + 1, 'rendered again once the lock is gone');
  });
});

describe("names bob chose, in the listing alice's worker renders (invariant 9)", () => {
  let tilde: Daemon;
  let tildeMetrics: number;
  // Each tries to open elements or markup of its own (a name cannot hold "/", so no closing tag):
  // they must stay text.
  const FORGERIES = [
    '<D:response><D:href>forged',
    '<D:href>also-forged<D:status>HTTP 1.1 200 OK',
    '"><D:x y="',
    ']]>&amp;<!--',
    '<?xml version="1.0"?>',
    '&#60;D:response&#62;',
  ];
  before(async () => {
    tildeMetrics = await freePort();
    tilde = await startDaemon({
      layout: 'tilde',
      extra: { metrics: [`listen = ["127.0.0.1:${tildeMetrics}"]`] },
    });
    const bob = users.bob;
    execFileSync('chmod', ['0755', bob.home]);
    const shared = join(bob.home, 'shared');
    mkdirSync(shared);
    chownSync(shared, bob.uid, bob.gid);
    for (const name of FORGERIES) {
      writeFileSync(join(shared, name), 'x');
      chownSync(join(shared, name), bob.uid, bob.gid);
    }
  });
  after(async () => {
    await tilde.stop();
  });

  test('each is one member whose href and displayname carry exactly its name; nothing is forged', async () => {
    const path = `/~${users.bob.name}/shared/`;
    const answer = await request(tilde, path, { method: 'PROPFIND', headers: { Depth: '1' }, user: alice });
    assert.equal(answer.status, 207, answer.text);
    const document = parseXml(answer.body);
    const members = childElements(document).map((response) => {
      const [href, ...propstats] = childElements(response);
      const text = (node: { children: unknown[] }): string =>
        node.children.filter((c) => typeof c === 'string').join('');
      const prop = childElements(propstats[0]!)[0]!;
      const displayname = childElements(prop).find((element) => element.local === 'displayname');
      return { href: decodeURIComponent(text(href!)), displayname: displayname && text(displayname) };
    });
    assert.equal(members.length, FORGERIES.length + 1, JSON.stringify(members));
    assert.deepEqual(
      members
        .slice(1)
        .map((member) => member.href)
        .sort(),
      FORGERIES.map((name) => `${path}${name}`).sort(),
    );
    for (const member of members.slice(1)) assert.equal(`${path}${member.displayname}`, member.href);
    assert.equal(await renderedListings(tildeMetrics), 1);
  });
});
