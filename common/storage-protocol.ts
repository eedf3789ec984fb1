// The storage operations of the web process ↔ worker channel, each declared once: the checker of
// its arguments (run by the worker, helper/storage-server.ts), the decoder of its result (run by
// the web process, src/storage/privsep-storage.ts), how many descriptors its reply carries and
// whether a call may be sent again after a lost worker. Neither side trusts the other: a request
// that fails its checker gets a PROTOCOL error reply, a reply that fails its decoder is refused.
//
// Adding an operation is one declaration here plus its implementations:
//   1. the method in the Storage interface (common/storage.ts) and in LocalStorage;
//   2. an entry in STORAGE_PROTOCOL below (`args`, `result`, `replyFds`, `retryable`; `parts` for
//      an answer that may come in several messages, `tree` for one that may take as long as a tree,
//      `requestTail` for file content carried after the request's JSON);
//   3. its handler in helper/storage-server.ts's HANDLERS and its method in PrivsepStorage —
//      both are typed from this table, and TypeScript refuses to compile while either misses one.

import { MAX_PATH_BYTES } from './names';
import { entryFromWire, isBoundedString, isRequestId, MAX_MESSAGE_BYTES } from './protocol';
import {
  ALL_STORAGE_ERROR_CODES,
  type DavPath,
  type Depth,
  type Entry,
  RENDER_SLOT,
  type RenderOp,
  type RenderTemplate,
  type ListOptions,
  type MemberError,
  type PropPatchOp,
  type PropSelection,
  type PutResult,
  type ResourceKind,
  type Space,
  type Stat,
  type StorageErrorCode,
  type Times,
  type TransferOptions,
  type TransferResult,
} from './storage';

/** Property names one call may name, and operations one PROPPATCH may carry. */
export const MAX_PROP_NAMES = 1024;
export const MAX_PATCH_OPS = 1024;
const MAX_PROP_NAME_BYTES = 1024;
/** A resolved path may be longer than a DavPath (home plus subdir in front). */
const MAX_REAL_PATH_BYTES = 2 * MAX_PATH_BYTES;
const MAX_ETAG_BYTES = 128;
/** Member failures sent ahead of a tree operation's last reply, bytes per message (see `parts`). */
export const MEMBER_ERROR_BATCH_BYTES = 96 * 1024;
/**
 * The most file content one message carries (putSmall's request): with the longest path
 * JSON-escaped it still fits MAX_MESSAGE_BYTES. Small files only: bulk data goes through
 * descriptors, so a big transfer never occupies the channel.
 */
export const MAX_INLINE_BYTES = 64 * 1024;

/** What a decoder returns for a value it refuses (no result is ever `undefined`: void ops give null). */
type Decoder<T> = (value: unknown) => T | undefined;
type Check<T> = (value: unknown) => value is T;

export interface OperationSpec<A extends readonly unknown[], R, P = never> {
  /** The worker's check of the request's arguments. */
  args: (args: readonly unknown[]) => args is A;
  /** The web process's check of the (last) reply's result. */
  result: Decoder<R>;
  /**
   * For answers that may take several messages: each `more: true` reply's result. `list` sends
   * its entries this way; tree operations send their member failures ahead (a DELETE of 3,000
   * members that cannot be removed answers more than one message can hold).
   */
  parts?: Decoder<P[]>;
  /** Descriptors a successful reply carries. */
  replyFds: 0 | 1;
  /** The request carries file content after its JSON (handed to the handler, checked by it). */
  requestTail?: true;
  /** Safe to send again after the worker went away: doing it twice undoes nothing. */
  retryable: boolean;
  /** Works on a whole tree (DELETE, COPY, MOVE): waits for the tree deadline, not the call deadline. */
  tree?: true;
}

function operation<A extends readonly unknown[], R, P = never>(
  spec: OperationSpec<A, R, P>,
): OperationSpec<A, R, P> {
  return spec;
}

// ---- checks and decoders ----------------------------------------------------------------------

const isPath: Check<DavPath> = (value): value is DavPath =>
  isBoundedString(value, MAX_PATH_BYTES) && value.startsWith('/');
const isDepth: Check<Depth> = (value): value is Depth => value === 0 || value === 1 || value === 'infinity';
const isSelection: Check<PropSelection> = (value): value is PropSelection =>
  value === 'none' ||
  value === 'names' ||
  value === 'all' ||
  (Array.isArray(value) &&
    value.length <= MAX_PROP_NAMES &&
    value.every((name) => isBoundedString(name, MAX_PROP_NAME_BYTES)));
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
/**
 * Hide patterns a RenderTemplate may carry. They bound the addon's matching per member (a glob
 * match is O(name × pattern)); beyond them the web process renders the listing itself. shares.hide
 * patterns are at most 255 characters, but that can be more than 1024 bytes once in NFC (U+FB2C is
 * 6 bytes).
 */
const MAX_RENDER_HIDE_PATTERNS = 256;
const MAX_RENDER_HIDE_BYTES = 16 * 1024;
const MAX_RENDER_HIDE_PATTERN_BYTES = 1024;
export function hideFitsRenderTemplate(hide: readonly unknown[]): hide is string[] {
  if (hide.length > MAX_RENDER_HIDE_PATTERNS) return false;
  let bytes = 0;
  for (const pattern of hide) {
    if (!isBoundedString(pattern, MAX_RENDER_HIDE_PATTERN_BYTES)) return false;
    bytes += Buffer.byteLength(pattern);
  }
  return bytes <= MAX_RENDER_HIDE_BYTES;
}
/** As native/src/listdir.c's MAX_PROGRAM_OPS and MAX_PROGRAM_LITERAL_BYTES. */
const MAX_PROGRAM_OPS = 512;
const MAX_PROGRAM_LITERAL_BYTES = 128 * 1024;
const SLOTS = new Set<unknown>(Object.values(RENDER_SLOT));
const isProgram = (value: unknown): value is RenderOp[] => {
  if (!Array.isArray(value) || value.length > MAX_PROGRAM_OPS) return false;
  let literalBytes = 0;
  for (const op of value) {
    if (SLOTS.has(op)) continue;
    if (!isBoundedString(op, MAX_PROGRAM_LITERAL_BYTES)) return false;
    literalBytes += Buffer.byteLength(op);
  }
  return literalBytes <= MAX_PROGRAM_LITERAL_BYTES;
};
const isRenderTemplate = (value: unknown): value is RenderTemplate =>
  isObject(value) &&
  isProgram(value.file) &&
  isProgram(value.directory) &&
  Array.isArray(value.hide) &&
  hideFitsRenderTemplate(value.hide);
const isListOptions: Check<ListOptions> = (value): value is ListOptions =>
  isObject(value) &&
  isSelection(value.props) &&
  isRequestId(value.limit) &&
  value.limit >= 1 &&
  (value.render === undefined || (value.props !== 'names' && isRenderTemplate(value.render)));
const isTransfer: Check<TransferOptions> = (value): value is TransferOptions =>
  isObject(value) &&
  typeof value.overwrite === 'boolean' &&
  (value.depth === 0 || value.depth === 'infinity');
const isMoveOptions: Check<Omit<TransferOptions, 'depth'>> = (
  value,
): value is Omit<TransferOptions, 'depth'> => isObject(value) && typeof value.overwrite === 'boolean';
const isPatchOp = (op: unknown): op is PropPatchOp => {
  if (!isObject(op) || !isBoundedString(op.name, MAX_PROP_NAME_BYTES)) return false;
  if (op.op === 'remove') return true;
  return op.op === 'set' && typeof op.value === 'string' && op.value.length <= MAX_MESSAGE_BYTES;
};
const isPatch: Check<PropPatchOp[]> = (value): value is PropPatchOp[] =>
  Array.isArray(value) && value.length <= MAX_PATCH_OPS && value.every(isPatchOp);
const isTime = (value: unknown): boolean =>
  value === undefined || (typeof value === 'number' && Number.isFinite(value) && Math.abs(value) < 1e15);
const isTimes: Check<Times> = (value): value is Times =>
  isObject(value) && isTime(value.atimeMs) && isTime(value.mtimeMs);
const isUploadId: Check<number> = isRequestId;
const isOptionalSize: Check<number | undefined> = (value): value is number | undefined =>
  value === undefined || isRequestId(value);
const isInlineSize: Check<number> = (value): value is number =>
  isRequestId(value) && value <= MAX_INLINE_BYTES;
const isPutOptions: Check<{ mtimeMs?: number }> = (value): value is { mtimeMs?: number } =>
  isObject(value) && isTime(value.mtimeMs);

/** Arguments matched one checker each, by position (a missing optional one is `undefined`). */
function tuple<A extends readonly unknown[]>(
  ...checks: { [K in keyof A]: Check<A[K]> }
): (args: readonly unknown[]) => args is A {
  return (args): args is A => args.length <= checks.length && checks.every((check, i) => check(args[i]));
}

const isKind = (value: unknown): value is ResourceKind =>
  value === 'file' || value === 'directory' || value === 'other';
const NOT_ETAG_TEXT = /[^\x21-\x7e]/;
const isFiniteNumber = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value);

function decodeStat(value: unknown): Stat | undefined {
  if (!isObject(value)) return undefined;
  const { kind, size, mtimeMs, birthtimeMs, etag } = value;
  if (!isKind(kind)) return undefined;
  if (!isFiniteNumber(size) || size < 0 || !isFiniteNumber(mtimeMs) || !isFiniteNumber(birthtimeMs))
    return undefined;
  if (!isBoundedString(etag, MAX_ETAG_BYTES) || NOT_ETAG_TEXT.test(etag)) return undefined;
  return { kind, size, mtimeMs, birthtimeMs, etag };
}

const decodeNullableStat: Decoder<Stat | null> = (value) => (value === null ? null : decodeStat(value));
const decodeNothing: Decoder<null> = (value) => (value === null || value === undefined ? null : undefined);

const decodeRealPath: Decoder<string> = (value) =>
  isBoundedString(value, MAX_REAL_PATH_BYTES) && value.startsWith('/') ? value : undefined;

const decodeEntries: Decoder<Entry[]> = (value) => {
  if (!Array.isArray(value)) return undefined;
  const entries: Entry[] = [];
  for (const wire of value) {
    const entry = entryFromWire(wire);
    if (entry === null) return undefined;
    entries.push(entry);
  }
  return entries;
};

const STORAGE_ERROR_CODES: ReadonlySet<string> = new Set(ALL_STORAGE_ERROR_CODES);
export function isStorageErrorCode(value: unknown): value is StorageErrorCode {
  return typeof value === 'string' && STORAGE_ERROR_CODES.has(value);
}

const decodeMemberErrors: Decoder<MemberError[]> = (value) => {
  if (!Array.isArray(value)) return undefined;
  const errors: MemberError[] = [];
  for (const item of value) {
    if (!isObject(item) || !isPath(item.path) || !isStorageErrorCode(item.code)) return undefined;
    errors.push({ path: item.path, code: item.code });
  }
  return errors;
};

const decodeTransfer: Decoder<TransferResult> = (value) => {
  if (!isObject(value) || typeof value.created !== 'boolean') return undefined;
  const errors = decodeMemberErrors(value.errors);
  return errors === undefined ? undefined : { created: value.created, errors };
};

const decodeOpened: Decoder<{ stat: Stat }> = (value) => {
  const stat = isObject(value) ? decodeStat(value.stat) : undefined;
  return stat === undefined ? undefined : { stat };
};

const decodePut: Decoder<PutResult> = (value) => {
  if (!isObject(value) || typeof value.created !== 'boolean') return undefined;
  const stat = decodeStat(value.stat);
  return stat === undefined ? undefined : { stat, created: value.created };
};

const decodeUpload: Decoder<{ uploadId: number; existing: Stat | null }> = (value) => {
  if (!isObject(value) || !isUploadId(value.uploadId)) return undefined;
  const existing = value.existing === undefined ? null : decodeNullableStat(value.existing);
  return existing === undefined ? undefined : { uploadId: value.uploadId, existing };
};

const decodeSpace: Decoder<Space> = (value) =>
  isObject(value) && isFiniteNumber(value.availableBytes) && isFiniteNumber(value.usedBytes)
    ? { availableBytes: value.availableBytes, usedBytes: value.usedBytes }
    : undefined;

// ---- the operations ---------------------------------------------------------------------------

export const STORAGE_PROTOCOL = {
  stat: operation({
    args: tuple<[DavPath]>(isPath),
    result: decodeNullableStat,
    replyFds: 0,
    retryable: true,
  }),
  realPath: operation({
    args: tuple<[DavPath]>(isPath),
    result: decodeRealPath,
    replyFds: 0,
    retryable: true,
  }),
  /** Entries in `more: true` batches; the last reply carries the last batch (see LIST_BATCH_*). */
  list: operation({
    args: tuple<[DavPath, Depth, ListOptions]>(isPath, isDepth, isListOptions),
    result: decodeEntries,
    parts: decodeEntries,
    replyFds: 0,
    retryable: true,
  }),
  /** The reply carries a read-only descriptor of the file. */
  openRead: operation({ args: tuple<[DavPath]>(isPath), result: decodeOpened, replyFds: 1, retryable: true }),
  /**
   * A whole small upload in one call: [path, size, options], the request's tail its `size` bytes,
   * written, synced and renamed into place by the worker. Not retryable: a second run would
   * answer "replaced" for a file the first one created.
   */
  putSmall: operation({
    args: tuple<[DavPath, number, { mtimeMs?: number }]>(isPath, isInlineSize, isPutOptions),
    result: decodePut,
    replyFds: 0,
    requestTail: true,
    retryable: false,
  }),
  /** The reply carries the write end of the upload's temporary file. */
  openWrite: operation({
    args: tuple<[DavPath]>(isPath),
    result: decodeUpload,
    replyFds: 1,
    retryable: true,
  }),
  commitWrite: operation({
    args: tuple<[number, (number | undefined)?]>(isUploadId, isOptionalSize),
    result: decodeStat,
    replyFds: 0,
    retryable: false,
  }),
  abortWrite: operation({
    args: tuple<[number]>(isUploadId),
    result: decodeNothing,
    replyFds: 0,
    retryable: false,
  }),
  mkcol: operation({ args: tuple<[DavPath]>(isPath), result: decodeNothing, replyFds: 0, retryable: false }),
  remove: operation({
    args: tuple<[DavPath]>(isPath),
    result: decodeMemberErrors,
    parts: decodeMemberErrors,
    replyFds: 0,
    retryable: false,
    tree: true,
  }),
  copy: operation({
    args: tuple<[DavPath, DavPath, TransferOptions]>(isPath, isPath, isTransfer),
    result: decodeTransfer,
    parts: decodeMemberErrors,
    replyFds: 0,
    retryable: false,
    tree: true,
  }),
  move: operation({
    args: tuple<[DavPath, DavPath, Omit<TransferOptions, 'depth'>]>(isPath, isPath, isMoveOptions),
    result: decodeTransfer,
    parts: decodeMemberErrors,
    replyFds: 0,
    retryable: false,
    tree: true,
  }),
  patchProps: operation({
    args: tuple<[DavPath, PropPatchOp[]]>(isPath, isPatch),
    result: decodeNothing,
    replyFds: 0,
    retryable: false,
  }),
  setTimes: operation({
    args: tuple<[DavPath, Times]>(isPath, isTimes),
    result: decodeNothing,
    replyFds: 0,
    retryable: true,
  }),
  space: operation({ args: tuple<[DavPath]>(isPath), result: decodeSpace, replyFds: 0, retryable: true }),
  checkWritable: operation({
    args: tuple<[DavPath]>(isPath),
    result: decodeNothing,
    replyFds: 0,
    retryable: true,
  }),
};

export type StorageProtocol = typeof STORAGE_PROTOCOL;
export type StorageOp = keyof StorageProtocol;
export type ArgsOf<O extends StorageOp> =
  StorageProtocol[O] extends OperationSpec<infer A, unknown, unknown> ? A : never;
export type ResultOf<O extends StorageOp> =
  StorageProtocol[O] extends OperationSpec<readonly unknown[], infer R, unknown> ? R : never;
export type PartOf<O extends StorageOp> =
  StorageProtocol[O] extends OperationSpec<readonly unknown[], unknown, infer P> ? P : never;

export function isStorageOp(value: unknown): value is StorageOp {
  return typeof value === 'string' && Object.hasOwn(STORAGE_PROTOCOL, value);
}

/** One storage request on the wire (web process → worker). */
export interface StorageCall {
  id: number;
  op: StorageOp;
  cookie: string;
  args: unknown[];
}
