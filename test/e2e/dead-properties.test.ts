// Dead properties another user wrote outside WebDAV (setfattr from a shell) cannot change the
// structure of a reply: bob lists alice's share and gets a well-formed multistatus with exactly
// one response per member, whatever her xattrs hold.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { childElements, isDavElement, parseXml, textContent } from '../../src/dav/xml';
import { Daemon, request, startDaemon } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

const FORGED_RESPONSE =
  '<x xmlns="urn:z">1</x></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>' +
  '<D:response><D:href>/forged/</D:href><D:propstat><D:prop><x xmlns="urn:z">2</x>';

/** Attribute name → value, as alice's tools might have written them on her file. */
const ATTRIBUTES: [string, string][] = [
  ['user.dav:{urn:z}x', FORGED_RESPONSE],
  ['user.dav:{urn:z}good', '<z:good xmlns:z="urn:z">fine &amp; well</z:good>'],
  // Well-formed, but not the element the name says.
  ['user.dav:{urn:z}y', '<other xmlns="urn:z"/>'],
  // A document with a declaration and a trailing comment: fine alone, not inside ours.
  ['user.dav:{urn:z}w', '<?xml version="1.0"?><w xmlns="urn:z">w</w><!-- x -->'],
  // Names that are not XML names would break the element built from them.
  ['user.dav:{urn:z}a/><D:response><D:href>/forged-name/</D:href></D:response><b', '<b xmlns="urn:z"/>'],
  ['user.dav:{urn:z}1st', '<q xmlns="urn:z"/>'],
  // A DAV: property is the server's to compute: stored, it could only forge one.
  ['user.dav:{DAV:}lockdiscovery', '<D:lockdiscovery xmlns:D="DAV:"><D:activelock/></D:lockdiscovery>'],
];

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  const { alice } = users;
  chmodSync(alice.home, 0o755);
  const folder = join(alice.home, 'shared');
  mkdirSync(folder, { mode: 0o755 });
  chownSync(folder, alice.uid, alice.gid);
  const file = join(folder, 'notes.txt');
  writeFileSync(file, 'notes\n');
  chownSync(file, alice.uid, alice.gid);
  for (const [name, value] of ATTRIBUTES) execFileSync('setfattr', ['-n', name, '-v', value, file]);
  daemon = await startDaemon({ layout: 'tilde' });
});
after(async () => {
  await daemon.stop();
  users.remove();
});

interface Listed {
  hrefs: string[];
  text: string;
}

/** Bob's PROPFIND of alice's share, parsed with the strict parser: throws if it is not well-formed. */
async function propfindAsBob(depth: string, body?: string): Promise<Listed> {
  const { alice, bob } = users;
  const reply = await request(daemon, `/~${alice.name}/shared/`, {
    method: 'PROPFIND',
    user: bob,
    headers: { Depth: depth, 'Content-Type': 'application/xml' },
    body,
  });
  assert.equal(reply.status, 207, reply.text);
  const root = parseXml(reply.body);
  assert.ok(isDavElement(root, 'multistatus'));
  const hrefs = childElements(root).map((response) => {
    assert.ok(isDavElement(response, 'response'));
    const href = childElements(response).filter((child) => isDavElement(child, 'href'));
    assert.equal(href.length, 1, 'one href per response');
    return textContent(href[0]);
  });
  return { hrefs, text: reply.text };
}

describe("alice's hostile xattrs in bob's PROPFIND of her share", () => {
  const expectedHrefs = (): string[] => [
    `/~${users.alice.name}/shared/`,
    `/~${users.alice.name}/shared/notes.txt`,
  ];

  test('allprop: well-formed, no forged response, only the valid property', async () => {
    const listed = await propfindAsBob('1');
    assert.deepEqual(listed.hrefs.sort(), expectedHrefs());
    assert.doesNotMatch(listed.text, /forged/);
    assert.match(listed.text, /<z:good xmlns:z="urn:z">fine &amp; well<\/z:good>/);
    assert.doesNotMatch(listed.text, /<other|<q |<D:activelock/);
    assert.doesNotMatch(listed.text, /<\?xml[^]*<\?xml/, 'one XML declaration');
  });

  test('propname: names that are not XML names are left out', async () => {
    const listed = await propfindAsBob(
      '1',
      '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
    );
    assert.deepEqual(listed.hrefs.sort(), expectedHrefs());
    assert.doesNotMatch(listed.text, /forged/);
    assert.match(listed.text, /<X:good xmlns:X="urn:z"\/>/);
    assert.doesNotMatch(listed.text, /1st/);
  });

  test('prop: a named property whose value is hostile reads as missing (404)', async () => {
    const listed = await propfindAsBob(
      '1',
      '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><x xmlns="urn:z"/><good xmlns="urn:z"/><w xmlns="urn:z"/></D:prop></D:propfind>',
    );
    assert.deepEqual(listed.hrefs.sort(), expectedHrefs());
    assert.doesNotMatch(listed.text, /forged/);
    assert.match(listed.text, /<z:good xmlns:z="urn:z">fine &amp; well<\/z:good>/);
    assert.match(listed.text, /<X:x xmlns:X="urn:z"\/>[^]*404 Not Found/);
  });
});
