// Behaviour of helper/layout.ts, the one place a DavPath becomes a filesystem path: what it
// refuses (before any filesystem access) and where the home and tilde layouts map paths.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  childDavPath,
  isSameOrInside,
  isValidSegment,
  osPath,
  parentDavPath,
  resolvePath,
  shareRootOf,
  type LayoutConfig,
} from '../../helper/layout';
import { StorageError } from '../../common/storage';

const home: LayoutConfig = { kind: 'home', root: '/srv/alice/WebDAV' };
const homes: Record<string, string> = { alice: '/home/alice', bob: '/home/bob', 'b.o-b_2': '/home/bob2' };
const tilde: LayoutConfig = { kind: 'tilde', subdir: 'WebDAV', homeOf: (name) => homes[name] ?? null };
const tildeWholeHome: LayoutConfig = { kind: 'tilde', subdir: '', homeOf: (name) => homes[name] ?? null };

function refusedWith(code: string, run: () => unknown): void {
  assert.throws(run, (error: unknown) => error instanceof StorageError && error.code === code);
}

describe('resolvePath refuses paths that are not DavPaths with BAD_PATH', () => {
  const bad: Array<[string, unknown]> = [
    ['an empty string', ''],
    ['a relative path', 'a/b'],
    ['a non-string', 42],
    ['a ".." segment', '/a/../b'],
    ['a leading ".." segment', '/..'],
    ['a "." segment', '/a/./b'],
    ['an empty segment', '/a//b'],
    ['a trailing slash', '/a/'],
    ['a NUL byte', '/a\0b'],
    ['a NUL byte after a valid name', '/etc/passwd\0.txt'],
    ['".." between backslashes', '/a/..\\..\\etc'],
    ['a backslash-separated "."', '/a\\.\\b'],
    ['a lone high surrogate', '/a\uD800b'],
    ['a lone low surrogate that is no escaped byte', '/a\uDC41b'],
    ['escapes that spell a UTF-8 character ("é" twice over)', '/caf\uDCC3\uDCA9'],
    ['an escaped NUL', '/a\uDC00b'],
    ['a segment over 255 bytes', '/' + 'x'.repeat(256)],
    ['a segment of 128 two-byte characters', '/' + 'é'.repeat(128)],
    ['a path over 4096 bytes', '/a'.repeat(2049)],
  ];
  for (const [what, path] of bad) {
    test(`${what} is refused`, () => refusedWith('BAD_PATH', () => resolvePath(home, path as string)));
  }

  test('a path is refused before the tilde layout looks up the share', () => {
    let lookedUp = false;
    const layout: LayoutConfig = { kind: 'tilde', subdir: '', homeOf: () => ((lookedUp = true), '/home/x') };
    refusedWith('BAD_PATH', () => resolvePath(layout, '/~alice/../~root'));
    assert.equal(lookedUp, false);
  });
});

describe('home layout', () => {
  test('"/" is the share root itself', () => assert.equal(resolvePath(home, '/'), '/srv/alice/WebDAV'));
  test('members map below the root', () => {
    assert.equal(resolvePath(home, '/docs/a b.txt'), '/srv/alice/WebDAV/docs/a b.txt');
  });
  test('names that only look odd are kept as they are', () => {
    assert.equal(resolvePath(home, '/...'), '/srv/alice/WebDAV/...');
    assert.equal(resolvePath(home, '/.hidden'), '/srv/alice/WebDAV/.hidden');
    assert.equal(resolvePath(home, '/a\\b'), '/srv/alice/WebDAV/a\\b');
    assert.equal(resolvePath(home, '/%2e%2e'), '/srv/alice/WebDAV/%2e%2e');
    assert.equal(resolvePath(home, '/日本語'), '/srv/alice/WebDAV/日本語');
  });
  test('escaped bytes map to exactly those bytes; paths without escapes stay strings', () => {
    const fsPath = resolvePath(home, '/d\uDCE9r/caf\uDCFF.txt');
    assert.equal(fsPath, '/srv/alice/WebDAV/d\uDCE9r/caf\uDCFF.txt');
    assert.deepEqual(
      osPath(fsPath),
      Buffer.concat([
        Buffer.from('/srv/alice/WebDAV/d'),
        Buffer.of(0xe9),
        Buffer.from('r/caf'),
        Buffer.of(0xff),
        Buffer.from('.txt'),
      ]),
    );
    assert.equal(osPath(resolvePath(home, '/café/😀')), '/srv/alice/WebDAV/café/😀');
    assert.deepEqual(
      osPath(resolvePath(home, '/caf\uDCE9')),
      Buffer.from('/srv/alice/WebDAV/caf\xe9', 'latin1'),
    );
    assert.notDeepEqual(
      osPath(resolvePath(home, '/caf\uDCE9')),
      Buffer.from(resolvePath(home, '/caf\uFFFD')),
    );
  });
  test('a segment of 255 escaped bytes is accepted: each counts as one byte', () => {
    assert.ok(isValidSegment('\uDCE9'.repeat(255)));
    assert.ok(!isValidSegment('\uDCE9'.repeat(256)));
  });
  test('a segment of exactly 255 bytes is accepted', () => {
    assert.equal(resolvePath(home, '/' + 'x'.repeat(255)), '/srv/alice/WebDAV/' + 'x'.repeat(255));
  });
  test('a trailing slash on the configured root is ignored', () => {
    assert.equal(resolvePath({ kind: 'home', root: '/srv/alice/' }, '/a'), '/srv/alice/a');
  });
  test('a root of "/" does not double the slash', () => {
    assert.equal(resolvePath({ kind: 'home', root: '/' }, '/etc'), '/etc');
  });
  test('a relative or dotted root is refused rather than used', () => {
    refusedWith('NOT_A_SHARE', () => resolvePath({ kind: 'home', root: 'srv/alice' }, '/a'));
    refusedWith('NOT_A_SHARE', () => resolvePath({ kind: 'home', root: '/srv/../etc' }, '/a'));
  });
});

describe('tilde layout', () => {
  test('"/~name/..." maps into name\'s home plus the subdir', () => {
    assert.equal(resolvePath(tilde, '/~alice'), '/home/alice/WebDAV');
    assert.equal(resolvePath(tilde, '/~bob/notes/x.md'), '/home/bob/WebDAV/notes/x.md');
    assert.equal(resolvePath(tildeWholeHome, '/~alice/x'), '/home/alice/x');
    assert.equal(resolvePath(tildeWholeHome, '/~b.o-b_2/x'), '/home/bob2/x');
  });
  test('"/" itself is not a share', () => refusedWith('NOT_A_SHARE', () => resolvePath(tilde, '/')));
  test('an unknown user is not a share', () =>
    refusedWith('NOT_A_SHARE', () => resolvePath(tilde, '/~mallory/x')));
  test('a top-level name without "~" is not a share', () => {
    refusedWith('NOT_A_SHARE', () => resolvePath(tilde, '/alice/x'));
  });
  test('names that do not look like user names are never looked up', () => {
    const asked: string[] = [];
    const layout: LayoutConfig = {
      kind: 'tilde',
      subdir: '',
      homeOf: (name) => (asked.push(name), '/home/x'),
    };
    for (const share of [
      '~',
      '~~alice',
      '~-rf',
      '~a b',
      '~a:b',
      '~a+b',
      '~a$b',
      '~' + 'a'.repeat(65),
      '~\u00e9',
    ]) {
      refusedWith('NOT_A_SHARE', () => resolvePath(layout, '/' + share));
    }
    assert.deepEqual(asked, []);
  });
  test('a subdir with ".." in the configuration is refused', () => {
    refusedWith('NOT_A_SHARE', () => resolvePath({ ...tilde, subdir: '../bob' }, '/~alice'));
  });
  test('a home that is not an absolute path is refused', () => {
    const layout: LayoutConfig = { kind: 'tilde', subdir: '', homeOf: () => '' };
    refusedWith('NOT_A_SHARE', () => resolvePath(layout, '/~alice'));
  });
});

describe('DavPath helpers', () => {
  test('children and parents', () => {
    assert.equal(childDavPath('/', 'a'), '/a');
    assert.equal(childDavPath('/a', 'b'), '/a/b');
    assert.equal(parentDavPath('/a'), '/');
    assert.equal(parentDavPath('/a/b'), '/a');
  });
  test('isSameOrInside compares whole segments', () => {
    assert.equal(isSameOrInside('/a', '/a'), true);
    assert.equal(isSameOrInside('/a', '/a/b'), true);
    assert.equal(isSameOrInside('/a', '/ab'), false);
    assert.equal(isSameOrInside('/', '/x'), true);
  });
  test('share roots', () => {
    assert.equal(shareRootOf(home, '/a/b'), '/');
    assert.equal(shareRootOf(tilde, '/~alice/a/b'), '/~alice');
  });
  test('segments a listing may name', () => {
    assert.equal(isValidSegment('ok.txt'), true);
    assert.equal(isValidSegment('..'), false);
    assert.equal(isValidSegment('a\\..'), false);
    assert.equal(isValidSegment('x'.repeat(256)), false);
  });
});
