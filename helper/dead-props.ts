// Dead WebDAV properties stored as `user.` extended attributes of the file itself, so they belong
// to the user and travel with copies and moves. Used only by LocalStorage, on resolved paths.
//
// The calls are synchronous (our addon's, native/src/xattr.c): each is one short syscall on the
// worker, which serves a single user. Listings read xattrs in bulk with listDirectory instead.

import { createHash } from 'node:crypto';
import { xattrGet, xattrList, xattrRemove, xattrSet } from '../native/index';
import { StorageError, type DeadProps, type PropPatchOp, type PropSelection } from '../common/storage';
import { osPath } from './layout';

/** `user.dav:{ns}name` holds the property XML. */
const PLAIN_PREFIX = 'user.dav:';
/** `user.dav#<sha256 of the Clark name>` holds `{ns}name` NUL XML, for names too long for an xattr name. */
const HASHED_PREFIX = 'user.dav#';
/** Linux XATTR_NAME_MAX, counted in bytes including the `user.` namespace. */
const XATTR_NAME_MAX = 255;
/** A Clark name longer than this is not a property name a client could mean. */
const MAX_PROPERTY_NAME_BYTES = 4096;

/** Errors that mean "this file cannot carry user xattrs": symlinks, devices, filesystems without them. */
function isUnsupported(code: string | undefined): boolean {
  return code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EPERM';
}

/** The xattr name under which property `clarkName` is stored. */
export function xattrNameOf(clarkName: string): string {
  if (PLAIN_PREFIX.length + Buffer.byteLength(clarkName, 'utf8') <= XATTR_NAME_MAX)
    return PLAIN_PREFIX + clarkName;
  return HASHED_PREFIX + createHash('sha256').update(clarkName, 'utf8').digest('hex');
}

/** Refuses anything that is not a plausible Clark name `{namespace}local` (the input is untrusted). */
export function checkPropertyName(name: unknown): asserts name is string {
  if (
    typeof name !== 'string' ||
    name[0] !== '{' ||
    name.includes('\0') ||
    Buffer.byteLength(name, 'utf8') > MAX_PROPERTY_NAME_BYTES
  ) {
    throw new StorageError(
      'PROTOCOL',
      'malformed property name',
      typeof name === 'string' ? name : undefined,
    );
  }
  const close = name.indexOf('}');
  if (close < 0 || close === name.length - 1 || name.includes('{', 1) || name.includes('}', close + 1)) {
    throw new StorageError('PROTOCOL', 'malformed property name', name);
  }
}

function encodeValue(attr: string, name: string, value: string): Buffer {
  return attr.startsWith(HASHED_PREFIX)
    ? Buffer.from(name + '\0' + value, 'utf8')
    : Buffer.from(value, 'utf8');
}

/** Reads one stored property back as [Clark name, XML]; null when the attribute is not ours or is damaged. */
function decodeAttribute(attr: string, raw: Buffer): [string, string] | null {
  if (attr.startsWith(PLAIN_PREFIX)) return [attr.slice(PLAIN_PREFIX.length), raw.toString('utf8')];
  const nul = raw.indexOf(0);
  if (nul < 0) return null;
  const name = raw.subarray(0, nul).toString('utf8');
  if (xattrNameOf(name) !== attr) return null; // not written by us, or corrupted
  return [name, raw.subarray(nul + 1).toString('utf8')];
}

function isOurs(attr: string): boolean {
  return attr.startsWith(PLAIN_PREFIX) || attr.startsWith(HASHED_PREFIX);
}

/** Attribute names on `fsPath`, or [] where the file cannot carry user xattrs or may not be read. */
function listOrNothing(fsPath: string): string[] {
  try {
    return xattrList(osPath(fsPath));
  } catch (error) {
    const code = errnoOf(error);
    if (isUnsupported(code) || code === 'EACCES') return [];
    throw StorageError.from(error);
  }
}

/** One attribute's raw value, or null when it does not exist (any more). */
function readRaw(fsPath: string, attr: string): Buffer | null {
  try {
    // One read into a buffer of the largest possible size: no size query, so no ERANGE race.
    return xattrGet(osPath(fsPath), attr);
  } catch (error) {
    if (errnoOf(error) === 'ENODATA') return null;
    throw StorageError.from(error);
  }
}

/**
 * The dead properties of the file at `fsPath` selected by `selection` ('none' gives {}).
 * A file or filesystem without user xattrs, or one the user may not read, has none.
 */
export function readDeadProps(fsPath: string, selection: PropSelection): DeadProps {
  if (selection === 'none' || (Array.isArray(selection) && selection.length === 0)) return {};
  return selectDeadProps(listOrNothing(fsPath), selection, (attr) => readRaw(fsPath, attr));
}

/**
 * The dead properties `selection` asks for among a file's attributes `attrs` (all its names, or
 * only its `user.dav` ones); `read` gives an attribute's raw value, null when it is gone. The one
 * decoding of stored properties: readDeadProps and LocalStorage's native listing both use it.
 */
export function selectDeadProps(
  attrs: readonly string[],
  selection: PropSelection,
  read: (attr: string) => Buffer | null,
): DeadProps {
  const props: DeadProps = {};
  if (selection === 'none' || (Array.isArray(selection) && selection.length === 0)) return props;
  const present = attrs.filter(isOurs);
  if (present.length === 0) return props;

  let wanted: Set<string> | null = null;
  if (Array.isArray(selection)) {
    wanted = new Set<string>();
    for (const name of selection) if (typeof name === 'string') wanted.add(xattrNameOf(name));
  }
  for (const attr of present) {
    if (wanted !== null && !wanted.has(attr)) continue;
    if (selection === 'names' && attr.startsWith(PLAIN_PREFIX)) {
      props[attr.slice(PLAIN_PREFIX.length)] = '';
      continue;
    }
    let raw: Buffer | null;
    try {
      raw = read(attr);
    } catch (error) {
      if (error instanceof StorageError && (error.code === 'EACCES' || error.code === 'EPERM')) continue;
      throw error;
    }
    const decoded = raw === null ? null : decodeAttribute(attr, raw);
    if (decoded === null) continue;
    props[decoded[0]] = selection === 'names' ? '' : decoded[1];
  }
  return props;
}

/**
 * Applies `ops` in order to the file at `fsPath`, all or nothing: when one fails, the attributes
 * already changed are put back and a StorageError naming the failing property is thrown.
 * Removing a property that does not exist is not an error (RFC 4918 §14.23).
 */
export function patchDeadProps(fsPath: string, ops: readonly PropPatchOp[]): void {
  for (const op of ops) {
    checkPropertyName(op?.name);
    if ((op.op !== 'set' && op.op !== 'remove') || (op.op === 'set' && typeof op.value !== 'string')) {
      throw new StorageError('PROTOCOL', 'malformed property operation', op.name);
    }
  }
  const before = new Map<string, Buffer | null>();
  for (const op of ops) {
    const attr = xattrNameOf(op.name);
    try {
      if (!before.has(attr)) before.set(attr, readRaw(fsPath, attr));
      if (op.op === 'set') xattrSet(osPath(fsPath), attr, encodeValue(attr, op.name, op.value));
      else removeQuietly(fsPath, attr);
    } catch (error) {
      restore(fsPath, before);
      const failure = StorageError.from(error);
      throw new StorageError(failure.code, failure.message, op.name);
    }
  }
}

/** Best effort: puts every attribute in `before` back as it was. */
function restore(fsPath: string, before: Map<string, Buffer | null>): void {
  for (const [attr, raw] of before) {
    try {
      if (raw === null) removeQuietly(fsPath, attr);
      else xattrSet(osPath(fsPath), attr, raw);
    } catch {
      // Nothing more can be done: the filesystem refused to take back its own previous state.
    }
  }
}

function removeQuietly(fsPath: string, attr: string): void {
  try {
    xattrRemove(osPath(fsPath), attr);
  } catch (error) {
    if (errnoOf(error) !== 'ENODATA') throw error;
  }
}

/**
 * Copies every `user.` attribute (dead properties and whatever else the user's tools stored) from
 * `fromPath` to `toPath`. A destination that cannot carry them simply does not get them; any other
 * failure is thrown, because silently losing the user's properties would be worse.
 */
export function copyUserXattrs(fromPath: string, toPath: string): void {
  for (const attr of listOrNothing(fromPath)) {
    if (!attr.startsWith('user.')) continue;
    const raw = readRaw(fromPath, attr);
    if (raw === null) continue;
    try {
      xattrSet(osPath(toPath), attr, raw);
    } catch (error) {
      if (isUnsupported(errnoOf(error))) return;
      throw StorageError.from(error);
    }
  }
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
