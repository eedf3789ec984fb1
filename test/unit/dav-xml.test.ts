// The XML layer: namespace-aware parsing with no DTDs, bounded nesting, and serialisation that
// keeps every namespace declared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DavError } from '../../src/dav/errors';
import { clarkName, parseXml, serializeElement, escapeXml, MAX_XML_DEPTH } from '../../src/dav/xml';

function parses(text: string): ReturnType<typeof parseXml> {
  return parseXml(Buffer.from(text, 'utf8'));
}

function refusedWith400(text: string | Buffer): void {
  assert.throws(
    () => parseXml(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8')),
    (error: unknown) => error instanceof DavError && error.status === 400,
  );
}

test('elements carry their namespace URI whatever prefix the client chose', () => {
  const root = parses('<?xml version="1.0"?><a:propfind xmlns:a="DAV:"><prop xmlns="DAV:"/></a:propfind>');
  assert.equal(clarkName(root), '{DAV:}propfind');
  const prop = root.children.find((child) => typeof child !== 'string');
  assert.ok(prop !== undefined && typeof prop !== 'string');
  assert.equal(clarkName(prop), '{DAV:}prop');
});

test('any DOCTYPE is refused, so billion laughs never expands', () => {
  const laughs =
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
    Array.from(
      { length: 9 },
      (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`,
    ).join('') +
    ']><D:propfind xmlns:D="DAV:">&lol9;</D:propfind>';
  const started = process.hrtime.bigint();
  refusedWith400(laughs);
  assert.ok(process.hrtime.bigint() - started < 100_000_000n, 'refused within 100 ms');
  refusedWith400('<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>');
});

test('undefined entities are refused; the five predefined ones work', () => {
  refusedWith400('<a>&ext;</a>');
  const root = parses('<a>&lt;&gt;&amp;&quot;&apos;</a>');
  assert.equal(root.children[0], '<>&"\'');
});

test(`nesting deeper than ${MAX_XML_DEPTH} is refused, 100,000 levels quickly`, () => {
  parses('<a>'.repeat(MAX_XML_DEPTH) + '</a>'.repeat(MAX_XML_DEPTH));
  refusedWith400('<a>'.repeat(MAX_XML_DEPTH + 1) + '</a>'.repeat(MAX_XML_DEPTH + 1));
  const started = process.hrtime.bigint();
  refusedWith400('<a>'.repeat(100_000) + '</a>'.repeat(100_000));
  assert.ok(process.hrtime.bigint() - started < 500_000_000n);
});

test('malformed XML, bad UTF-8, unbound prefixes and empty prefix bindings are refused', () => {
  refusedWith400('<a><b></a>');
  refusedWith400(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]));
  refusedWith400('<x:a/>');
  refusedWith400('<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>');
  refusedWith400('');
});

test('serialisation declares each namespace it uses and round-trips', () => {
  const source =
    '<t:valnspace xmlns:t="http://example.com/t" xmlns:u="urn:unused">' +
    '<foo xmlns="http://bar" t:attr="1">x &amp; y<plain xmlns="">in</plain></foo><plain>z</plain></t:valnspace>';
  const serialised = serializeElement(parses(source));
  assert.equal(
    serialised,
    '<t:valnspace xmlns:t="http://example.com/t"><foo xmlns="http://bar" t:attr="1">x &amp; y' +
      '<plain xmlns="">in</plain></foo><plain>z</plain></t:valnspace>',
  );
  assert.equal(serializeElement(parses(serialised)), serialised);
});

test('escaping keeps output well-formed even for control characters in names', () => {
  assert.equal(escapeXml('a<b>&"c\r'), 'a&lt;b&gt;&amp;&quot;c&#13;');
  assert.equal(escapeXml('bell\u0007'), 'bell\uFFFD');
});
