// The one chokepoint between URLs and DavPaths: request targets, Destination headers and If:
// resource tags are decoded here, and every href we send is encoded here.
import { decodeNameBytes, encodeNameBytes, nameByteLength, readableName } from '../../common/name-bytes';
import { MAX_DAV_PATH_BYTES, type DavPath } from '../../common/storage';
import { DavError } from './errors';

export interface RequestTarget {
  path: DavPath;
  /** The client wrote a trailing slash (RFC 4918 §5.2: a collection may be named without one). */
  trailingSlash: boolean;
}

/**
 * Decodes the path of a request target exactly once and normalises it. Names are bytes: each
 * segment is percent-decoded to bytes and read as UTF-8, a byte that is not part of valid UTF-8
 * becoming an escape (common/name-bytes.ts), so a name that is not UTF-8 is reached by its own
 * bytes. Refuses what would escape the namespace or name another resource: NUL, an encoded "/",
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
    const segment = PLAIN_SEGMENT.test(raw) ? raw : decodeSegment(raw);
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
  if (path.length > MAX_DAV_PATH_BYTES / 3 && nameByteLength(path) > MAX_DAV_PATH_BYTES)
    throw new DavError(414, 'URL too long');
  return { path, trailingSlash };
}

/** Printable ASCII without "%": the segment is its own name (the common case, no decoding). */
const PLAIN_SEGMENT = /^[\x21-\x24\x26-\x7e]*$/;
const ASCII_SEGMENT = /^[\x21-\x7e]*$/;

/**
 * One segment's bytes as a DavPath segment. Header values (Destination) reach us as latin1, one
 * character per byte, so a raw byte above 0x7f counts as that byte; a character beyond 0xff cannot
 * come from HTTP and is refused.
 */
function decodeSegment(raw: string): string {
  // The common case, UTF-8 throughout: decodeURIComponent gives the same characters (it refuses
  // invalid UTF-8, which is then decoded byte by byte below), natively.
  if (ASCII_SEGMENT.test(raw)) {
    let decoded: string | null;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      decoded = null;
    }
    if (decoded !== null) {
      if (decoded.includes('\0')) throw new DavError(400, 'NUL in path');
      if (decoded.includes('/')) throw new DavError(400, 'encoded "/" in path');
      return decoded;
    }
  }
  const bytes = Buffer.allocUnsafe(raw.length);
  let length = 0;
  for (let at = 0; at < raw.length; at++) {
    let byte = raw.charCodeAt(at);
    if (byte === 0x25 /* % */) {
      const hex = raw.slice(at + 1, at + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new DavError(400, 'invalid percent-encoding in path');
      byte = parseInt(hex, 16);
      at += 2;
    } else if (byte > 0xff) {
      throw new DavError(400, 'path is not a URL');
    }
    if (byte === 0) throw new DavError(400, 'NUL in path');
    // An encoded slash would name a different resource than the client sees; refuse it.
    if (byte === 0x2f) throw new DavError(400, 'encoded "/" in path');
    bytes[length++] = byte;
  }
  return decodeNameBytes(bytes.subarray(0, length));
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
    // Raw bytes in a header value (latin1) stay those bytes; the URL parser would re-encode them.
    parsed = new URL(url.replace(/[\x80-\xff]/g, (byte) => percentEncoded(byte.charCodeAt(0))));
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
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

function encodeSegment(segment: string): string {
  if (SAFE_SEGMENT.test(segment)) return segment;
  if (!ANY_SURROGATE.test(segment)) return encodeURIComponent(segment);
  // A name that is not UTF-8: its exact bytes, so that the href reaches it (parseRequestPath). A
  // string in no escaped form (a worker's bug) goes out lossy, as U+FFFD, rather than throwing.
  const bytes = encodeNameBytes(segment) ?? Buffer.from(segment, 'utf8');
  let encoded = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    encoded += byte < 0x80 && SAFE_SEGMENT.test(char) ? char : percentEncoded(byte);
  }
  return encoded;
}

function percentEncoded(byte: number): string {
  return '%' + (byte < 16 ? '0' : '') + byte.toString(16).toUpperCase();
}

export function parentPath(path: DavPath): DavPath {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export function baseName(path: DavPath): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * A path or name as text for people (displayname, the HTML listing, Content-Disposition): bytes
 * that are not UTF-8 shown as U+FFFD, since XML and HTML cannot carry them. Hrefs carry the bytes.
 */
export function readablePath(path: DavPath): string {
  return readableName(path);
}

/** True when `inner` is `outer` itself or lies below it. */
export function isSameOrBelow(inner: DavPath, outer: DavPath): boolean {
  if (inner === outer || outer === '/') return true;
  return inner.startsWith(outer) && inner.charCodeAt(outer.length) === 47; /* "/" */
}
