// Request targets, Destination headers and hrefs: the one URL ↔ DavPath chokepoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DavError } from '../../src/dav/errors';
import { encodeHref, parseDestination, parseRequestPath } from '../../src/dav/paths';

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

test('NUL, invalid UTF-8, encoded slashes, escapes above the root and fragments give 400', () => {
  for (const target of [
    '/a%00b',
    '/%C3%28',
    '/%E2%82',
    '/a%2Fb',
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
