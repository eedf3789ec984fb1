// Request targets, Destination headers and hrefs: the one URL ↔ DavPath chokepoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DavError } from '../../src/dav/errors';
import { encodeHref, parseDestination, parseRequestPath, readablePath } from '../../src/dav/paths';

function status(fn: () => unknown): number {
  try {
    fn();
  } catch (error) {
    if (error instanceof DavError) return error.status;
    throw error;
  }
  return 0;
}

test('a request path is decoded once as UTF-8 and normalised', () => {
  assert.deepEqual(parseRequestPath('/a/%E2%82%AC/b'), { path: '/a/€/b', trailingSlash: false });
  assert.deepEqual(parseRequestPath('/a//./b/../c/'), { path: '/a/c', trailingSlash: true });
  assert.deepEqual(parseRequestPath('/a%2520b'), { path: '/a%20b', trailingSlash: false });
  assert.deepEqual(parseRequestPath('/dir/?query=1'), { path: '/dir', trailingSlash: true });
  assert.deepEqual(parseRequestPath('/'), { path: '/', trailingSlash: false });
  assert.deepEqual(parseRequestPath('http://host:8080/x/y'), { path: '/x/y', trailingSlash: false });
});

test('NUL, encoded slashes, escapes above the root, bad percent-encoding and fragments give 400', () => {
  for (const target of [
    '/a%00b',
    '/a%2Fb',
    '/a%2fb',
    '/%E9%2F%E9',
    '/a%zz',
    '/a%4',
    '/..',
    '/a/../../b',
    '/%2e%2e/x',
    '/a#frag',
    'relative',
  ]) {
    assert.equal(
      status(() => parseRequestPath(target)),
      400,
      target,
    );
  }
});

test('hrefs are percent-encoded per segment and collections end in a slash', () => {
  assert.equal(encodeHref('/', true), '/');
  assert.equal(encodeHref('/a b/€', false), '/a%20b/%E2%82%AC');
  assert.equal(encodeHref('/dir', true), '/dir/');
  assert.equal(encodeHref('/100%/x?y#z', false), '/100%25/x%3Fy%23z');
  assert.equal(parseRequestPath(encodeHref('/we ird/ä?#%', false)).path, '/we ird/ä?#%');
});

test('bytes that are not UTF-8 become escapes (U+DC80+byte) and go back out as the same bytes', () => {
  assert.equal(parseRequestPath('/caf%E9.txt').path, '/caf\uDCE9.txt');
  assert.equal(parseRequestPath('/%C3%28').path, '/\uDCC3(');
  assert.equal(parseRequestPath('/%E2%82').path, '/\uDCE2\uDC82');
  assert.equal(
    parseRequestPath('/%ED%A0%80').path,
    '/\uDCED\uDCA0\uDC80',
    'an encoded surrogate is three bytes',
  );
  for (const href of ['/caf%E9.txt', '/%C3(', '/%E2%82/x', '/%FF%FEx', '/a%ED%A0%80b']) {
    assert.equal(encodeHref(parseRequestPath(href).path, false), href);
  }
  assert.equal(encodeHref('/d\uDCE9r', true), '/d%E9r/');
});

test('é, its UTF-8 bytes and the escapes of those bytes are one name; other bytes another', () => {
  assert.equal(parseRequestPath('/caf%C3%A9').path, '/café');
  assert.equal(parseRequestPath('/caf\u00c3\u00a9').path, '/café', 'raw UTF-8 bytes in a header (latin1)');
  assert.notEqual(parseRequestPath('/caf%E9').path, parseRequestPath('/caf%C3%A9').path);
  assert.notEqual(parseRequestPath('/caf%E9').path, parseRequestPath('/caf%EF%BF%BD').path);
  assert.equal(
    status(() => parseRequestPath('/caf\u20ac')),
    400,
    'not a byte: not from HTTP',
  );
});

test('a Destination with raw bytes or escapes names those bytes', () => {
  const names = { host: '127.0.0.1:8080', publicOrigin: null };
  assert.equal(parseDestination('http://127.0.0.1:8080/x%E9', names), '/x\uDCE9');
  assert.equal(parseDestination('http://127.0.0.1:8080/x\u00e9', names), '/x\uDCE9');
  assert.equal(parseDestination('/x\u00e9', names), '/x\uDCE9');
});

test('readable names show escaped bytes as U+FFFD', () => {
  assert.equal(readablePath('/caf\uDCE9.txt'), '/caf\uFFFD.txt');
  assert.equal(readablePath('/😀'), '/😀');
});

/** A request that arrived directly, with this Host header and no public_url. */
function direct(host: string): { host: string; publicOrigin: null } {
  return { host, publicOrigin: null };
}

test('Destination accepts this server by URL or absolute path, and refuses others with 502', () => {
  assert.equal(parseDestination('http://127.0.0.1:8080/a%20b', direct('127.0.0.1:8080')), '/a b');
  assert.equal(parseDestination('/x/y/', direct('127.0.0.1:8080')), '/x/y');
  assert.equal(parseDestination('http://EXAMPLE.org/z', direct('example.org:80')), '/z');
  assert.equal(
    status(() => parseDestination('http://127.0.0.1:9999/a', direct('127.0.0.1:8080'))),
    502,
  );
  assert.equal(
    status(() => parseDestination('http://other/a', direct('127.0.0.1:8080'))),
    502,
  );
  assert.equal(
    status(() => parseDestination('ftp://127.0.0.1:8080/a', direct('127.0.0.1:8080'))),
    502,
  );
  assert.equal(
    status(() => parseDestination(undefined, direct('127.0.0.1:8080'))),
    400,
  );
  assert.equal(
    status(() => parseDestination('http://127.0.0.1:8080/../..', direct('127.0.0.1:8080'))),
    0,
  );
  assert.equal(
    status(() => parseDestination('/a/%00', direct('127.0.0.1:8080'))),
    400,
  );
});

test('parseDestination accepts server.public_url as this server, alongside the request origin', () => {
  const names = { host: '127.0.0.1:8080', publicOrigin: 'https://dav.example.org' };
  assert.equal(parseDestination('https://dav.example.org/a%20b', names), '/a b');
  assert.equal(parseDestination('https://DAV.example.org:443/c', names), '/c');
  assert.equal(parseDestination('http://127.0.0.1:8080/d', names), '/d');
  // The public name on another scheme or port is another server.
  assert.equal(
    status(() => parseDestination('http://dav.example.org/a', names)),
    502,
  );
  assert.equal(
    status(() => parseDestination('https://dav.example.org:8443/a', names)),
    502,
  );
  assert.equal(
    status(() => parseDestination('https://evil.example.org/a', names)),
    502,
  );
});
