// The single place where a DavPath becomes a filesystem path (like Dir.resolve in x/net/webdav).
// Every LocalStorage operation goes through resolvePath; its input comes from the untrusted web process.
// Filesystem paths stay in the DavPath's escaped form (common/name-bytes.ts) and become bytes at the
// system call: every node:fs and addon call takes osPath(fsPath), never the string itself.

import {
  decodeNameBytes,
  encodeNameBytes,
  hasEscapedBytes,
  isEscapedForm,
  nameByteLength,
} from '../common/name-bytes';
import { isUserName, MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from '../common/names';
import { StorageError, type DavPath } from '../common/storage';

export type LayoutConfig =
  /** "/" is the share root; `root` already includes the configured subdir. */
  | { kind: 'home'; root: string }
  /** "/~name/..." maps to homeOf(name) + "/" + subdir; homeOf returns null for an unknown name. */
  | { kind: 'tilde'; subdir: string; homeOf(name: string): string | null };

export { MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from '../common/names';

/**
 * Checks that `davPath` is a well-formed DavPath and returns its segments ("/" has none).
 * Throws StorageError('BAD_PATH') otherwise. Pure: never touches the filesystem.
 */
export function parseDavPath(davPath: unknown): string[] {
  if (typeof davPath !== 'string' || davPath.length === 0 || davPath[0] !== '/') {
    throw badPath('a path must start with "/"');
  }
  if (davPath === '/') return [];
  if (davPath.includes('\0')) throw badPath('NUL in path');
  // Escaped bytes name exactly their bytes; any other lone surrogate, or escapes that would decode
  // as characters, would reach the filesystem as another name (U+FFFD, or the UTF-8 spelling).
  if (!isEscapedForm(davPath)) throw badPath('path is neither UTF-8 nor escaped bytes');
  // A UTF-16 unit is at most 3 bytes: only a long path needs counting.
  if (davPath.length * 3 > MAX_PATH_BYTES && nameByteLength(davPath) > MAX_PATH_BYTES)
    throw badPath('path too long');
  const segments = davPath.slice(1).split('/');
  for (const segment of segments) {
    if (!isValidSegment(segment)) throw badPath('empty, "." or ".." segment, or segment too long');
  }
  return segments;
}

/**
 * True when `segment` may be one segment of a DavPath: not empty, not "." or "..", no "/" or NUL,
 * at most 255 bytes. A backslash is an ordinary byte on Linux, but "..\x" means ".." to Windows
 * clients and to anything that later treats the name as a Windows path, so "." and ".." pieces
 * between backslashes are refused too.
 */
export function isValidSegment(segment: string): boolean {
  if (segment === '' || segment === '.' || segment === '..') return false;
  if (segment.includes('/') || segment.includes('\0')) return false;
  if (segment.includes('\\') && segment.split('\\').some((piece) => piece === '.' || piece === '..'))
    return false;
  if (segment.length * 3 <= MAX_SEGMENT_BYTES) return true; // at most 3 bytes a UTF-16 unit
  const bytes = nameByteLength(segment);
  return bytes !== -1 && bytes <= MAX_SEGMENT_BYTES;
}

/**
 * What node:fs and the addon are given for the filesystem path `fsPath` (resolvePath's result, or
 * one built from it): the string itself, unless it carries escaped bytes — then those bytes, since
 * a string reaches the kernel as UTF-8 and an escape would become U+FFFD, another name.
 */
export function osPath(fsPath: string): string | Buffer {
  if (!hasEscapedBytes(fsPath)) return fsPath;
  const bytes = encodeNameBytes(fsPath);
  if (bytes === null) throw badPath('path is neither UTF-8 nor escaped bytes');
  return bytes;
}

/** osPath, always as bytes (for code that joins names as Buffers). */
export function osPathBytes(fsPath: string): Buffer {
  const bytes = osPath(fsPath);
  return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
}

/** A path or name the filesystem gave as bytes (readdir, realpath), in the escaped form. */
export function fromOsPath(bytes: Buffer): string {
  return decodeNameBytes(bytes);
}

/** The absolute filesystem path a DavPath names; throws BAD_PATH or NOT_A_SHARE. */
export function resolvePath(layout: LayoutConfig, davPath: DavPath): string {
  const segments = parseDavPath(davPath);
  if (layout.kind === 'home') return joinUnder(checkedRoot(layout.root), segments);

  const share = segments[0];
  // A share is named by its owner's account name, in the one grammar logins are held to.
  if (share === undefined || share[0] !== '~' || !isUserName(share.slice(1))) {
    throw new StorageError('NOT_A_SHARE', 'no such share');
  }
  const home = layout.homeOf(share.slice(1));
  if (home === null) throw new StorageError('NOT_A_SHARE', 'no such share');
  const root =
    layout.subdir === '' ? checkedRoot(home) : joinUnder(checkedRoot(home), checkedSubdir(layout.subdir));
  return joinUnder(root, segments.slice(1));
}

/** The DavPath of a member `name` of the collection `parent` (both already valid). */
export function childDavPath(parent: DavPath, name: string): DavPath {
  return parent === '/' ? '/' + name : parent + '/' + name;
}

/** The DavPath of the collection containing `davPath` ("/" for a top-level member). */
export function parentDavPath(davPath: DavPath): DavPath {
  const slash = davPath.lastIndexOf('/');
  return slash <= 0 ? '/' : davPath.slice(0, slash);
}

/** True when `inner` is `outer` itself or lies below it (DavPaths, already valid). */
export function isSameOrInside(outer: DavPath, inner: DavPath): boolean {
  if (outer === '/') return true;
  return inner === outer || inner.startsWith(outer + '/');
}

/** The DavPath of the share root containing `davPath`: "/" (home) or "/~name" (tilde). */
export function shareRootOf(layout: LayoutConfig, davPath: DavPath): DavPath {
  if (layout.kind === 'home') return '/';
  const segments = parseDavPath(davPath);
  return segments.length === 0 ? '/' : '/' + segments[0];
}

function joinUnder(root: string, segments: string[]): string {
  if (segments.length === 0) return root;
  return (root === '/' ? '' : root) + '/' + segments.join('/');
}

/** Roots come from configuration or the password database, but a wrong one must not widen access. */
function checkedRoot(root: string): string {
  if (typeof root !== 'string' || root[0] !== '/' || root.includes('\0')) {
    throw new StorageError('NOT_A_SHARE', 'share root is not an absolute path');
  }
  const trimmed = root.length > 1 ? root.replace(/\/+$/, '') : root;
  if (trimmed.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw new StorageError('NOT_A_SHARE', 'share root is not a normal path');
  }
  return trimmed === '' ? '/' : trimmed;
}

function checkedSubdir(subdir: string): string[] {
  const segments = subdir.split('/').filter((segment) => segment !== '');
  if (subdir.includes('\0') || segments.some((segment) => segment === '.' || segment === '..')) {
    throw new StorageError('NOT_A_SHARE', 'configured subdir is not a plain relative path');
  }
  return segments;
}

function badPath(message: string): StorageError {
  return new StorageError('BAD_PATH', message);
}
