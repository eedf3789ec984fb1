// The bijection between a name's bytes and its DavPath string (common/name-bytes.ts): valid UTF-8 as
// characters, every other byte as the lone surrogate U+DC80+byte, one string per name and back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeNameBytes,
  encodeNameBytes,
  escapedBytesAsPrivateUse,
  hasEscapedBytes,
  nameByteLength,
  privateUseAsEscapedBytes,
  readableName,
} from '../../common/name-bytes';

const bytes = (...values: number[]): Buffer => Buffer.from(values);

test('valid UTF-8 decodes to its characters, each other byte to U+DC80+byte', () => {
  assert.equal(decodeNameBytes(Buffer.from('café 😀')), 'café 😀');
  assert.equal(decodeNameBytes(bytes(0x63, 0xe9)), 'c\uDCE9');
  assert.equal(decodeNameBytes(bytes(0xc3, 0xa9, 0xe9)), 'é\uDCE9');
  assert.equal(decodeNameBytes(bytes(0xed, 0xa0, 0x80)), '\uDCED\uDCA0\uDC80', 'an encoded surrogate');
  assert.equal(decodeNameBytes(bytes(0xc0, 0xaf)), '\uDCC0\uDCAF', 'an overlong "/"');
  assert.equal(decodeNameBytes(bytes(0xf0, 0x9f, 0x98)), '\uDCF0\uDC9F\uDC98', 'a truncated sequence');
  assert.equal(decodeNameBytes(bytes(0xf4, 0x90, 0x80, 0x80)), '\uDCF4\uDC90\uDC80\uDC80', 'beyond U+10FFFF');
});

test('every byte string survives the round trip, and distinct bytes give distinct strings', () => {
  const seen = new Map<string, string>();
  const samples: Buffer[] = [];
  for (let first = 0x80; first <= 0xff; first++) {
    samples.push(bytes(first), bytes(0x61, first, 0x62));
    for (const second of [0x28, 0x80, 0x9f, 0xa0, 0xbf, 0xc3]) samples.push(bytes(first, second, 0x80, 0x80));
  }
  let seed = 12345; // a fixed pseudo-random sequence of byte strings, mostly not UTF-8
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 8;
  for (let n = 0; n < 5000; n++)
    samples.push(Buffer.from(Array.from({ length: 1 + (n % 8) }, () => next() % 256)));
  for (const sample of samples) {
    const text = decodeNameBytes(sample);
    assert.deepEqual(encodeNameBytes(text), sample, sample.toString('hex'));
    assert.equal(nameByteLength(text), sample.length);
    const other = seen.get(text);
    assert.ok(other === undefined || other === sample.toString('hex'), 'one string per byte string');
    seen.set(text, sample.toString('hex'));
  }
});

test('strings that no bytes decode to are refused: other lone surrogates, escapes spelling characters', () => {
  for (const text of [
    '\uD800',
    'a\uD800b',
    '\uDC00',
    '\uDC7F',
    '\uDD00',
    '\uDFFF',
    '\uDCC3\uDCA9',
    '\uDC61',
  ]) {
    assert.equal(encodeNameBytes(text), null, JSON.stringify(text));
    assert.equal(nameByteLength(text), -1);
  }
  assert.deepEqual(encodeNameBytes('\uD83D\uDE00'), Buffer.from('😀'), 'a pair is a character');
  assert.deepEqual(encodeNameBytes('\uD800\uDC80'), Buffer.from('\u{10080}'), 'so is a pair ending in DC80');
});

test('escapes are seen only where they stand alone', () => {
  assert.equal(hasEscapedBytes('plain'), false);
  assert.equal(hasEscapedBytes('\uD800\uDC80'), false);
  assert.equal(hasEscapedBytes('\uDCE9'), true);
  assert.equal(readableName('caf\uDCE9 \uD800\uDC80'), 'caf\uFFFD \uD800\uDC80');
});

test('the private-use form for text stores keeps escapes apart and reverses', () => {
  const text = '/home/a/caf\uDCE9/\uDCE8';
  const stored = escapedBytesAsPrivateUse(text);
  assert.equal(stored, '/home/a/caf\u{10FFE9}/\u{10FFE8}');
  assert.equal(Buffer.from(stored).toString(), stored, 'valid Unicode: stored as is');
  assert.equal(privateUseAsEscapedBytes(stored), text);
  assert.equal(escapedBytesAsPrivateUse('/plain/é'), '/plain/é');
});
