// LocalStorage.listWire with a render template (a listRendered request): which members the addon
// renders as <D:response> text (native/src/listing_xml.c) and which it leaves to JavaScript as
// entries — every member exactly once, either way — and that what it renders parses as XML with
// the values the entry would have. test/e2e/propfind-rendered.test.ts compares the text itself
// with the web process's renderer.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, describe, test } from 'node:test';
import { xattrSet } from '../../native/index';
import { LocalStorage } from '../../helper/local-storage';
import { type WireRun } from '../../common/protocol';
import { RENDER_SLOT, type RenderTemplate } from '../../common/storage';
import { allpropLiveOps } from '../../src/dav/props';
import { childElements, escapeXml, parseXml } from '../../src/dav/xml';
import { encodeHref } from '../../src/dav/paths';
import { HideList } from '../../src/dav/hide';

const roots: string[] = [];
after(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
/** Rendered by the addon. */
const RENDERED = ['plain.txt', 'UPPER.PDF', '<&>"\'', 'sp ace+;=@', 'del\x7f', '.dotfile', 'x'.repeat(255)];
/** Left to JavaScript as entries (each for its own reason). */
const LEFT = [
  'back\\slash',
  'tab\there',
  '\xff',
  utf8('\uFFFF'),
  utf8('ext.Äb'),
  'x.tmp', // matches a hide pattern
  '.privdav-new-0000000000000000', // a reserved name
  'with-props',
];

function makeTree(): string {
  const root = fs.mkdtempSync('/tmp/privdav-list-rendered-');
  roots.push(root);
  for (const name of [...RENDERED, ...LEFT, ...UNICODE])
    fs.writeFileSync(Buffer.from(`${root}/${name}`, 'latin1'), name);
  xattrSet(`${root}/with-props`, 'user.dav:{urn:x}p', Buffer.from('<p xmlns="urn:x">v</p>'));
  fs.mkdirSync(`${root}/sub`);
  execFileSync('mkfifo', [`${root}/fifo`]);
  return root;
}

/** An allprop response's program, without the status line (what the web process sends). */
const program = (isCollection: boolean): RenderTemplate['file'] => [
  '<D:response><D:href>/',
  RENDER_SLOT.href,
  `${isCollection ? '/' : ''}</D:href><D:propstat><D:prop>`,
  ...allpropLiveOps(isCollection),
  '</D:prop></D:propstat></D:response>',
];
const TEMPLATE: RenderTemplate = { file: program(false), directory: program(true), hide: ['*.tmp', 'é*'] };
/** Names that are not ASCII: rendered only when there is no hide pattern (JavaScript compares in NFC). */
const UNICODE = [
  utf8('ünïcödé ✓'),
  utf8('😀.txt'),
  utf8('e\u0301-nfd'),
  // Beyond U+FFFF and with characters a safe segment keeps: encodeHref's byte-by-byte encoding.
  utf8("😀;=&$@+,:!'.txt"),
  utf8('\u{10FF80}&x'),
];

async function runs(storage: LocalStorage, render: RenderTemplate | undefined): Promise<WireRun[]> {
  const all: WireRun[] = [];
  for await (const run of storage.listWire(
    '/',
    1,
    { props: 'all', limit: 1000, render },
    { entries: 4, bytes: 3000 },
  ))
    all.push({ text: Buffer.from(run.text), count: run.count, xml: run.xml }); // a view, valid while iterating
  return all;
}

describe('LocalStorage.listWire with a render template', () => {
  const root = makeTree();
  const storage = new LocalStorage({ layout: { kind: 'home', root } });

  test('the addon renders the plain members; the others, and the collection, come as entries', async () => {
    const listed = await runs(storage, TEMPLATE);
    const xml = listed.filter((run) => run.xml === true);
    const json = listed.filter((run) => run.xml !== true);
    assert.ok(
      xml.every((run) => run.text.length <= 3000 || run.count === 1),
      'runs keep their bounds',
    );
    const document = parseXml(
      Buffer.from(
        `<D:multistatus xmlns:D="DAV:">${Buffer.concat(xml.map((run) => run.text)).toString('utf8')}</D:multistatus>`,
      ),
    );
    const rendered = childElements(document).map((response) => {
      const [href] = childElements(response);
      return decodeURIComponent(
        href!.children.map((child) => (typeof child === 'string' ? child : '')).join(''),
      );
    });
    assert.equal(
      rendered.length,
      xml.reduce((sum, run) => sum + run.count, 0),
    );
    const entries = JSON.parse(
      `[${Buffer.concat(json.map((run) => run.text))
        .toString('utf8')
        .slice(0, -1)}]`,
    ) as [string][];
    const asEntries = entries.map((entry) => entry[0]);
    const text = (name: string): string => Buffer.from(name, 'latin1').toString('utf8');
    assert.deepEqual(rendered.sort(), [...RENDERED.map((name) => `/${text(name)}`), '/sub/'].sort());
    assert.equal(asEntries[0], '/', 'the collection itself first');
    for (const name of LEFT.filter((name) => name !== '\xff'))
      assert.ok(asEntries.includes(`/${text(name)}`), name);
    assert.ok(asEntries.includes('/\uDCFF'), 'bytes that are not UTF-8 as their escape');
    assert.ok(asEntries.includes('/fifo'), 'neither a file nor a directory');
    for (const name of UNICODE) assert.ok(asEntries.includes(`/${text(name)}`), text(name));
    assert.equal(asEntries.length, 1 + LEFT.length + 1 + UNICODE.length);
  });

  test('without hide patterns, names that are not ASCII are rendered too', async () => {
    const listed = await runs(storage, { ...TEMPLATE, hide: [] });
    const text = Buffer.concat(listed.filter((run) => run.xml === true).map((run) => run.text)).toString(
      'utf8',
    );
    for (const name of [...UNICODE, 'x.tmp']) {
      const href = escapeXml(encodeHref(`/${Buffer.from(name, 'latin1').toString('utf8')}`, false));
      assert.ok(text.includes(`<D:href>${href}</D:href>`), href);
    }
  });

  test('values: each rendered file shows its own size, ETag, type and times', async () => {
    const listed = await runs(storage, TEMPLATE);
    const text = Buffer.concat(listed.filter((run) => run.xml === true).map((run) => run.text)).toString(
      'utf8',
    );
    const plain = /<D:response><D:href>\/plain\.txt<\/D:href>.*?<\/D:response>/s.exec(text)![0];
    const stat = fs.statSync(`${root}/plain.txt`, { bigint: true });
    const etag = `"${stat.ino.toString(16)}-${stat.size.toString(16)}-${stat.mtimeNs.toString(16)}"`;
    assert.match(plain, /<D:getcontentlength>9<\/D:getcontentlength>/);
    assert.match(plain, /<D:getcontenttype>text\/plain; charset=utf-8<\/D:getcontenttype>/);
    assert.ok(plain.includes(`<D:getetag>${etag}</D:getetag>`), plain);
    const mtime = new Date(Math.floor(Number(stat.mtimeMs) / 1000) * 1000).toUTCString();
    assert.ok(plain.includes(`<D:getlastmodified>${mtime}</D:getlastmodified>`), plain);
    assert.match(text, /<D:href>\/UPPER\.PDF<\/D:href>.*?<D:getcontenttype>application\/pdf</s);
    assert.match(
      text,
      /<D:href>\/%3C%26%3E%22'<\/D:href>.*?<D:displayname>&lt;&amp;&gt;"'<\/D:displayname>/s,
    );
    assert.match(text, /<D:href>\/sp%20ace%2B%3B%3D%40<\/D:href>/);
    assert.match(text, /<D:href>\/sub\/<\/D:href>.*?<D:resourcetype><D:collection\/><\/D:resourcetype>/s);
  });

  test('without a template, and for other selections, nothing is rendered', async () => {
    assert.ok((await runs(storage, undefined)).every((run) => run.xml !== true));
    const names: WireRun[] = [];
    for await (const run of storage.listWire(
      '/',
      1,
      { props: 'names', limit: 1000, render: TEMPLATE },
      { entries: 4, bytes: 3000 },
    ))
      names.push(run);
    assert.ok(names.every((run) => run.xml !== true));
  });

  test('every name a hide pattern matches is left to JavaScript, also names with "*" and "?"', async () => {
    // Every name of up to 4 of these characters, against patterns whose wildcards meet the same
    // characters in names: the addon's glob must match at least what src/dav/hide.ts matches.
    const globRoot = fs.mkdtempSync('/tmp/privdav-list-rendered-glob-');
    roots.push(globRoot);
    const alphabet = ['a', 'b', '*', '?', '.'];
    let names = [''];
    const all: string[] = [];
    for (let length = 1; length <= 4; length++) {
      names = names.flatMap((name) => alphabet.map((c) => name + c));
      all.push(...names);
    }
    for (const name of all) if (name !== '.' && name !== '..') fs.writeFileSync(`${globRoot}/${name}`, '');
    const hide = ['*a', 'b*', '*?*b', '?', '*.*?', 'a?b*', '**b', '*a*a', 'a*?b', '?*?*?*?*?'];
    const hideList = new HideList(hide);
    const globStorage = new LocalStorage({ layout: { kind: 'home', root: globRoot } });
    const listed = await runs(globStorage, { ...TEMPLATE, hide });
    const text = Buffer.concat(listed.filter((run) => run.xml === true).map((run) => run.text)).toString(
      'utf8',
    );
    const rendered = [...text.matchAll(/<D:href>\/([^<]*)<\/D:href>/g)].map((match) =>
      decodeURIComponent(match[1]!),
    );
    const wrongly = rendered.filter((name) => hideList.hidesName(name));
    assert.deepEqual(wrongly, [], 'names a pattern hides, rendered by the addon');
    assert.ok(rendered.length > 0, 'some names are rendered');
  });

  test('the addon refuses a malformed template', async () => {
    const bad = [
      { ...TEMPLATE, file: [...TEMPLATE.file, 7] }, // no such slot
      { ...TEMPLATE, directory: [...TEMPLATE.directory, 'x'.repeat(200 * 1024)] }, // too much text
      { ...TEMPLATE, file: new Array(600).fill('x') }, // too many parts
      { ...TEMPLATE, hide: [42] },
    ] as unknown as RenderTemplate[];
    // The addon's TypeError, as the worker's storage reports it (its protocol check refuses these first).
    for (const template of bad)
      await assert.rejects(runs(storage, template), /ERR_INVALID_ARG_TYPE|wire\.xml must be/);
  });
});
