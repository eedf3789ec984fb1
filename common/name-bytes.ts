// Names on Linux are bytes, a DavPath is a string: the one bijection between them, used by the web
// process (URLs) and the worker (the filesystem). Python's "surrogateescape": valid UTF-8 decodes to
// its characters, each byte that is not part of valid UTF-8 is carried as the lone surrogate U+DC80+byte.

import { TextDecoder } from 'node:util';

/** The one strict UTF-8 decoder: throws on any byte sequence that is not valid UTF-8. */
export const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

const ANY_SURROGATE = /[\uD800-\uDFFF]/;
/** An escaped byte: a low surrogate U+DC80..U+DCFF that is not the second half of a pair. */
const ESCAPED_BYTES = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g;

/**
 * The string for the bytes of a name or path. Strict UTF-8 decoding never yields a surrogate, so an
 * escape cannot be confused with a character; and the UTF-8 form of a surrogate (ED A0..ED BF ..) is
 * itself invalid, so such bytes are escaped one by one.
 */
export function decodeNameBytes(bytes: Buffer): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // Not UTF-8 throughout: escape the bytes that are not, keep the runs that are.
  }
  let text = '';
  let run = 0;
  for (let at = 0; at < bytes.length;) {
    const length = utf8SequenceLength(bytes, at);
    if (length > 0) {
      at += length;
      continue;
    }
    text += bytes.toString('utf8', run, at) + String.fromCharCode(0xdc00 + bytes[at]!);
    run = ++at;
  }
  return text + bytes.toString('utf8', run);
}

/**
 * The bytes a string in the escaped form stands for, or null when it is not in that form: a
 * surrogate that is neither half of a pair nor an escaped byte, or escapes that would decode as
 * something else ("\uDCC3\uDCA9" would be the bytes of "é": the same name spelt twice). So every
 * name has exactly one string, and every accepted string exactly one name.
 */
export function encodeNameBytes(text: string): Buffer | null {
  if (!ANY_SURROGATE.test(text)) return Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let run = 0;
  for (let at = 0; at < text.length; at++) {
    const unit = text.charCodeAt(at);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit <= 0xdbff) {
      const next = text.charCodeAt(at + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return null;
      at++;
      continue;
    }
    if (unit < 0xdc80 || unit > 0xdcff) return null;
    parts.push(Buffer.from(text.slice(run, at), 'utf8'), Buffer.of(unit - 0xdc00));
    run = at + 1;
  }
  parts.push(Buffer.from(text.slice(run), 'utf8'));
  const bytes = Buffer.concat(parts);
  return decodeNameBytes(bytes) === text ? bytes : null;
}

/** True when `text` is in the escaped form: some name's bytes decode to exactly it. */
export function isEscapedForm(text: string): boolean {
  return !ANY_SURROGATE.test(text) || encodeNameBytes(text) !== null;
}

/** True when `text` carries escaped bytes (a name that is not UTF-8); cheap for the common case. */
export function hasEscapedBytes(text: string): boolean {
  if (!ANY_SURROGATE.test(text)) return false;
  ESCAPED_BYTES.lastIndex = 0;
  return ESCAPED_BYTES.test(text);
}

/** The number of bytes `text` names (each escape is one byte), or -1 when it is not in the escaped form. */
export function nameByteLength(text: string): number {
  if (!ANY_SURROGATE.test(text)) return Buffer.byteLength(text, 'utf8');
  return encodeNameBytes(text)?.length ?? -1;
}

/**
 * `text` for people to read: escaped bytes as U+FFFD. Lone surrogates are not characters (XML and
 * HTML cannot carry them); only hrefs carry a name's exact bytes.
 */
export function readableName(text: string): string {
  return hasEscapedBytes(text) ? text.replace(ESCAPED_BYTES, '\uFFFD') : text;
}

/**
 * `text` with each escaped byte b as the private-use character U+10FF00+b, for text stores that
 * cannot hold lone surrogates (SQLite and PostgreSQL would store U+FFFD, merging distinct names).
 * The identity for every string without escapes, so keys stored before stay valid; `/` structure
 * and prefixes are kept. privateUseAsEscapedBytes reverses it.
 */
export function escapedBytesAsPrivateUse(text: string): string {
  if (!hasEscapedBytes(text)) return text;
  return text.replace(ESCAPED_BYTES, (escape) =>
    String.fromCodePoint(0x10ff00 + escape.charCodeAt(0) - 0xdc00),
  );
}

const PRIVATE_USE_BYTES = /\uDBFF[\uDF80-\uDFFF]/g; // U+10FF80..U+10FFFF as UTF-16

export function privateUseAsEscapedBytes(text: string): string {
  if (!text.includes('\uDBFF')) return text;
  return text.replace(PRIVATE_USE_BYTES, (pair) =>
    String.fromCharCode(0xdc00 + (pair.charCodeAt(1) - 0xdf00)),
  );
}

/** The length of the valid UTF-8 sequence starting at `at` (RFC 3629: no overlongs, no surrogates), or 0. */
function utf8SequenceLength(bytes: Buffer, at: number): number {
  const first = bytes[at]!;
  if (first < 0x80) return 1;
  const continues = (offset: number, low = 0x80, high = 0xbf): boolean => {
    const byte = bytes[at + offset];
    return byte !== undefined && byte >= low && byte <= high;
  };
  if (first >= 0xc2 && first <= 0xdf) return continues(1) ? 2 : 0;
  if (first >= 0xe0 && first <= 0xef) {
    const low = first === 0xe0 ? 0xa0 : 0x80;
    const high = first === 0xed ? 0x9f : 0xbf;
    return continues(1, low, high) && continues(2) ? 3 : 0;
  }
  if (first >= 0xf0 && first <= 0xf4) {
    const low = first === 0xf0 ? 0x90 : 0x80;
    const high = first === 0xf4 ? 0x8f : 0xbf;
    return continues(1, low, high) && continues(2) && continues(3) ? 4 : 0;
  }
  return 0;
}
