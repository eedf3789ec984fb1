// The If: header grammar of RFC 4918 §10.4 and its evaluation, without a server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DavError } from '../../src/dav/errors';
import {
  evaluateIfHeader,
  parseIfHeader,
  submittedTokens,
  type IfResourceState,
} from '../../src/dav/if-header';

const TOKEN = 'opaquelocktoken:f81d4fae-7dec-11d0-a765-00a0c91e6bf6';

function refused(text: string): void {
  assert.throws(
    () => parseIfHeader(text),
    (error: unknown) => error instanceof DavError && error.status === 400,
    `expected 400 for ${JSON.stringify(text)}`,
  );
}

test('an untagged list with one state token parses', () => {
  assert.deepEqual(parseIfHeader(`(<${TOKEN}>)`), {
    tagged: false,
    lists: [{ resourceTag: null, conditions: [{ negated: false, kind: 'token', value: TOKEN }] }],
  });
});

test('several untagged lists, Not and entity tags parse in order', () => {
  const header = parseIfHeader(`(<${TOKEN}> ["abc"]) (Not <DAV:no-lock> [W/"weak"])`);
  assert.equal(header.tagged, false);
  assert.deepEqual(header.lists[0].conditions, [
    { negated: false, kind: 'token', value: TOKEN },
    { negated: false, kind: 'etag', value: '"abc"' },
  ]);
  assert.deepEqual(header.lists[1].conditions, [
    { negated: true, kind: 'token', value: 'DAV:no-lock' },
    { negated: false, kind: 'etag', value: 'W/"weak"' },
  ]);
});

test('tagged lists keep their resource tag, one tag may carry several lists', () => {
  const header = parseIfHeader(`<http://example.com/a> (<${TOKEN}>) (["x"]) </b> (Not ["y"])`);
  assert.equal(header.tagged, true);
  assert.deepEqual(
    header.lists.map((list) => list.resourceTag),
    ['http://example.com/a', 'http://example.com/a', '/b'],
  );
});

test('whitespace and line folding between productions are accepted', () => {
  const header = parseIfHeader(`  (\t<${TOKEN}>\r\n  [ "e" ] )  `);
  assert.equal(header.lists[0].conditions.length, 2);
});

test('malformed If headers are refused with 400', () => {
  refused('');
  refused('(');
  refused('()');
  refused(`<${TOKEN}>`); // a tag without a list
  refused(`(<${TOKEN}>) </a> (<${TOKEN}>)`); // untagged then tagged
  refused(`</a> (<${TOKEN}>) (<x:y>) garbage`);
  refused('(["unterminated)');
  refused('([abc])'); // unquoted entity tag
  refused('(<>)');
  refused('(Nope <x:y>)');
});

test('submitted tokens are the non-negated state tokens, once each', () => {
  const header = parseIfHeader(`</a> (<${TOKEN}>) (Not <urn:other>) </x> (<${TOKEN}> ["e"])`);
  assert.deepEqual(submittedTokens(header), [TOKEN]);
});

function state(etag: string | null, tokens: string[] = []): IfResourceState {
  return { etag, lockTokens: new Set(tokens) };
}

test('a list holds when every condition holds; the header when any list holds', () => {
  const locked = state('"e1"', [TOKEN]);
  const holds = (text: string, resource: IfResourceState = locked): boolean =>
    evaluateIfHeader(parseIfHeader(text), () => resource);
  assert.equal(holds(`(<${TOKEN}>)`), true);
  assert.equal(holds(`(<${TOKEN}> ["e1"])`), true);
  assert.equal(holds(`(<${TOKEN}> ["e2"])`), false);
  assert.equal(holds('(<DAV:no-lock>)'), false);
  assert.equal(holds('(Not <DAV:no-lock>)'), true);
  assert.equal(holds(`(<${TOKEN}x>) (Not <DAV:no-lock>)`), true);
  assert.equal(holds(`(<${TOKEN}x>)`), false);
  assert.equal(holds('(W/"e1")'.replace('W/"e1"', '[W/"e1"]')), true, 'If: compares entity tags weakly');
  assert.equal(holds('(["e1"])', state(null)), false, 'a missing resource has no entity tag');
  assert.equal(holds('(Not ["e1"])', state(null)), true);
});

test('a tagged list naming another server never holds', () => {
  const header = parseIfHeader(`<http://elsewhere/x> (Not <DAV:no-lock>)`);
  assert.equal(
    evaluateIfHeader(header, () => null),
    false,
  );
});
