// The small rules behind shares.hide, Finder's reserved probe names and gzip negotiation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as http from 'node:http';
import { acceptsGzip } from '../../src/http/compression';
import { HideList, isFinderProbe, isReservedPath } from '../../src/dav/hide';

function withAcceptEncoding(value: string | undefined): http.IncomingMessage {
  return { headers: value === undefined ? {} : { 'accept-encoding': value } } as http.IncomingMessage;
}

test('gzip is used when Accept-Encoding names it, or "*", with a q-value above 0', () => {
  for (const yes of ['gzip', 'deflate, gzip', 'GZIP;q=0.5', 'x-gzip', '*', 'br;q=1, *;q=0.1'])
    assert.equal(acceptsGzip(withAcceptEncoding(yes)), true, yes);
  for (const no of [undefined, '', 'identity', 'br', 'gzip;q=0', 'gzip;q=0, *', '*;q=0', 'gzip ; q=0.000'])
    assert.equal(acceptsGzip(withAcceptEncoding(no)), false, String(no));
});

test('hide patterns match whole names with * and ?, case-sensitively, in any segment', () => {
  const hide = new HideList(['.DS_Store', '._*', '*.t?p', 'a+b(c)']);
  for (const path of ['/.DS_Store', '/x/.DS_Store', '/._foo', '/dir.tmp/inside', '/a.tmp', '/a+b(c)'])
    assert.equal(hide.hidesPath(path), true, path);
  for (const path of ['/', '/.ds_store', '/x.DS_Store', '/a.tmpx', '/_foo', '/aab(c)', '/a+bc'])
    assert.equal(hide.hidesPath(path), false, path);
  assert.equal(new HideList([]).hidesPath('/anything'), false);
});

test("Finder's probe names are reserved only at a share's root", () => {
  for (const path of ['/.Spotlight-V100', '/._.', '/mach_kernel', '/Backups.backupdb', '/~alice/mach_kernel'])
    assert.equal(isFinderProbe(path), true, path);
  for (const path of ['/', '/dir/mach_kernel', '/~alice/dir/._.', '/mach_kernel.txt', '/~alice'])
    assert.equal(isFinderProbe(path), false, path);
});

test("the worker's replace temporaries are reserved in any segment, other .privdav- names are not", () => {
  for (const path of [
    '/.privdav-old-0123456789abcdef',
    '/a/.privdav-new-0123456789abcdef/x',
    '/.Spotlight-V100',
  ])
    assert.equal(isReservedPath(path), true, path);
  for (const path of ['/.privdav-old-0123', '/a/.privdav-new-0123456789ABCDEF', '/.privdav-x', '/a/b'])
    assert.equal(isReservedPath(path), false, path);
});

test('a hide pattern matches a name in either Unicode normalisation (the storage finds both)', () => {
  const composed = 'caf\u00e9*';
  const decomposed = 'cafe\u0301*';
  for (const pattern of [composed, decomposed]) {
    const hide = new HideList([pattern]);
    for (const path of ['/caf\u00e9.txt', '/cafe\u0301.txt', '/dir/cafe\u0301/inside'])
      assert.equal(hide.hidesPath(path), true, `${escape(pattern)} ${escape(path)}`);
    assert.equal(hide.hidesPath('/cafe.txt'), false);
  }
});

test('hide patterns match as their regular expression would, over code points', () => {
  // The reference: the glob as an anchored regular expression (what hide.ts once ran).
  const reference = (pattern: string, name: string): boolean => {
    let source = '';
    for (const character of pattern.normalize('NFC')) {
      if (character === '*') source += '.*';
      else if (character === '?') source += '.';
      else source += character.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
    }
    return new RegExp(`^${source}$`, 'su').test(name.normalize('NFC'));
  };
  const alphabet = ['a', 'b', '*', '?', '.', '\\', '[', '😀', '\uDCFF', 'é', 'e\u0301', '\n'];
  let state = 12345;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const word = (max: number): string => {
    let text = '';
    for (let i = random(max + 1); i > 0; i--) text += alphabet[random(alphabet.length)];
    return text;
  };
  for (let i = 0; i < 20000; i++) {
    const pattern = word(5);
    const name = word(6) || 'x';
    assert.equal(
      new HideList([pattern]).hidesName(name),
      reference(pattern, name),
      `${escape(pattern)} ${escape(name)}`,
    );
  }
});

test('a pattern of many stars against a long name takes no time (the web process is shared)', () => {
  const hide = new HideList(['*a*a*a*a*a*b', '*?*?*?*?*?*?*?*?*?*c']);
  const started = performance.now();
  for (const name of ['a'.repeat(255), '😀'.repeat(63), 'ba'.repeat(127)])
    assert.equal(hide.hidesName(name), false);
  assert.ok(performance.now() - started < 200, `${performance.now() - started} ms`);
});
