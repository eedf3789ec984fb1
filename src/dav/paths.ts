// The one chokepoint between URLs and DavPaths: request targets, Destination headers and If:
// resource tags are decoded here, and every href we send is encoded here.
import { MAX_DAV_PATH_BYTES, type DavPath } from '../../common/storage';
import { DavError } from './errors';

export interface RequestTarget {
  path: DavPath;
  /** The client wrote a trailing slash (RFC 4918 §5.2: a collection may be named without one). */
  trailingSlash: boolean;
}

/**
 * Decodes the path of a request target exactly once, as UTF-8, and normalises it. Refuses what a
 * DavPath cannot represent or what would escape the namespace: NUL, an encoded "/", invalid UTF-8,
 * ".." above the root, a fragment. The storage re-validates, but nothing malformed gets that far.
 */
export function parseRequestPath(rawTarget: string): RequestTarget {
  let target = rawTarget;
  if (!target.startsWith('/')) {
    // absolute-form (RFC 9112 §3.2.2): keep only the path
    const match = /^https?:\/\/[^/?#]*/i.exec(target);
    if (match === null) throw new DavError(400, 'request target is not a path');
    target = target.slice(match[0].length) || '/';
  }
  if (target.includes('#')) throw new DavError(400, 'fragment in request target');
  const query = target.indexOf('?');
  if (query !== -1) target = target.slice(0, query);
  return normalise(target);
}

function normalise(encoded: string): RequestTarget {
  if (!encoded.startsWith('/')) throw new DavError(400, 'path must be absolute');
  const segments: string[] = [];
  for (const raw of encoded.split('/')) {
    if (raw === '' || raw === '.' || raw === '%2e' || raw === '%2E') continue;
    let segment: string;
    try {
      segment = raw.includes('%') ? decodeURIComponent(raw) : raw;
    } catch {
      throw new DavError(400, 'invalid percent-encoding or UTF-8 in path');
    }
    if (segment.includes('\0')) throw new DavError(400, 'NUL in path');
    // An encoded slash would name a different resource than the client sees; refuse it.
    if (segment.includes('/')) throw new DavError(400, 'encoded "/" in path');
    if (segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw new DavError(400, 'path escapes the root');
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  const trailingSlash = encoded.length > 1 && encoded.endsWith('/');
  const path = '/' + segments.join('/');
  // No filesystem path can be this long: refused here, before a worker is asked to resolve it.
  if (path.length > MAX_DAV_PATH_BYTES / 3 && Buffer.byteLength(path, 'utf8') > MAX_DAV_PATH_BYTES)
    throw new DavError(414, 'URL too long');
  return { path, trailingSlash };
}

/** How this server is named: the Host the request arrived with, and server.public_url's origin. */
export interface ServerNames {
  host: string | undefined;
  /** "https://dav.example.org" (URL.origin form), or null. */
  publicOrigin: string | null;
}

/**
 * Decodes a Destination header (RFC 4918 §10.3): an absolute URL on this server, or an absolute
 * path. Another host or port is a different server: 502, as §9.8.5 prescribes.
 */
export function parseDestination(header: string | undefined, names: ServerNames): DavPath {
  if (header === undefined || header === '') throw new DavError(400, 'missing Destination header');
  return resolveUrlOnThisServer(header, names, 502).path;
}

/**
 * Resolves a URL or absolute path that must name a resource on this server: the origin the
 * request arrived on (any scheme: a TLS proxy may speak http to us), or exactly the public origin.
 */
export function resolveUrlOnThisServer(
  url: string,
  names: ServerNames,
  foreignStatus: number,
): RequestTarget {
  if (url.startsWith('/')) return parseRequestPath(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DavError(400, 'malformed URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new DavError(foreignStatus, 'not an http URL');
  const { host, publicOrigin } = names;
  const isPublic = publicOrigin !== null && parsed.origin === publicOrigin;
  if (!isPublic && (host === undefined || !sameHost(parsed, host, parsed.protocol))) {
    throw new DavError(foreignStatus, 'URL names another server');
  }
  return normalise(parsed.pathname);
}

function sameHost(url: URL, hostHeader: string, protocol: string): boolean {
  // URL normalises default ports away; do the same for the Host header.
  const defaultPort = protocol === 'https:' ? ':443' : ':80';
  let host = hostHeader.toLowerCase();
  if (host.endsWith(defaultPort)) host = host.slice(0, -defaultPort.length);
  return url.host.toLowerCase() === host;
}

/** The percent-encoded href of a resource; collections end in "/". */
export function encodeHref(path: DavPath, isCollection: boolean): string {
  if (path === '/') return '/';
  let href = '';
  let start = 1;
  while (start <= path.length) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    href += '/' + encodeSegment(path.slice(start, end));
    start = end + 1;
  }
  return isCollection ? href + '/' : href;
}

const SAFE_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]*$/;

function encodeSegment(segment: string): string {
  if (SAFE_SEGMENT.test(segment)) return segment;
  return encodeURIComponent(segment);
}

export function parentPath(path: DavPath): DavPath {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export function baseName(path: DavPath): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** True when `inner` is `outer` itself or lies below it. */
export function isSameOrBelow(inner: DavPath, outer: DavPath): boolean {
  if (inner === outer || outer === '/') return true;
  return inner.startsWith(outer) && inner.charCodeAt(outer.length) === 47; /* "/" */
}
