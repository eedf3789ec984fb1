// The storage seam: the WebDAV protocol core talks only to this interface. LocalStorage
// (helper/local-storage.ts) implements it with node:fs in the calling process; the web process
// uses PrivsepStorage, which forwards each call to the user's worker. Everything here must be
// plain data (JSON-serialisable) apart from file descriptors, because it crosses the channel.

/**
 * A path in the user's namespace, exactly as the protocol core sees it: it starts with "/",
 * is already percent-decoded and normalised (no ".", "..", empty segments or NUL), and has no
 * trailing slash except for the root "/". In the `home` layout "/" is the user's share; in the
 * `tilde` layout "/~name/..." is name's share and "/" itself is not a resource.
 * Implementations re-validate every path they receive.
 */
export type DavPath = string;

/** The longest DavPath, in UTF-8 bytes, either side accepts (Linux PATH_MAX). Longer: 414. */
export const MAX_DAV_PATH_BYTES = 4096;

export type ResourceKind = 'file' | 'directory' | 'other';

export interface Stat {
  kind: ResourceKind;
  size: number;
  /** Modification time, milliseconds since the epoch (may carry a fraction). */
  mtimeMs: number;
  /** Birth time where the filesystem records it, else the change time. */
  birthtimeMs: number;
  /** Strong entity tag, quoted, derived from (inode, size, mtime in ns): `"1a2b-400-17f0c1d2e3"`. */
  etag: string;
}

/**
 * Dead properties keyed by Clark notation `{namespace}localname`. The value is the property
 * element serialised as self-contained XML (it declares every namespace it uses), exactly as
 * PROPPATCH stored it, so PROPFIND can emit it unchanged.
 */
export type DeadProps = Record<string, string>;

/** Which dead properties a listing should carry. */
export type PropSelection = 'none' | 'names' | 'all' | string[];

export interface Entry {
  path: DavPath;
  stat: Stat;
  /** Present unless the selection was 'none'. With 'names' the values are empty strings. */
  props?: DeadProps;
}

export type Depth = 0 | 1 | 'infinity';

export interface ListOptions {
  props: PropSelection;
  /** Refuse (StorageError 'LIMIT') rather than return more entries than this. */
  limit: number;
  /** On the channel only: listRendered's template (Depth 1). */
  render?: RenderTemplate;
}

/**
 * The values of a member a RenderTemplate's programs put in their place (native/src/listing_xml.h
 * enum xml_slot): the name as an href segment, the creation date (RFC 3339), the name as text, the
 * size, the content type, the ETag, the modification date (IMF-fixdate).
 */
export const RENDER_SLOT = { href: 0, created: 1, name: 2, size: 3, type: 4, etag: 5, modified: 6 } as const;
export type RenderSlot = (typeof RENDER_SLOT)[keyof typeof RENDER_SLOT];
/** Literal text (already XML), or a member's value. */
export type RenderOp = string | RenderSlot;

/**
 * What the worker needs to render the members of a Depth 1 PROPFIND itself (listRendered): a
 * member's <D:response> as a program for files and one for collections, and the names the web
 * process may hide (shares.hide's patterns, reserved names), whose members it gets as entries to
 * judge, as it gets any member with dead properties.
 */
export interface RenderTemplate {
  file: RenderOp[];
  directory: RenderOp[];
  hide: string[];
}

/** `count` members' <D:response> elements, rendered by the worker, as UTF-8. */
export interface RenderedResponses {
  rendered: Buffer;
  count: number;
  /** Frees `rendered` once nothing needs its bytes (written out or copied; unusable after). */
  release(): void;
}

export interface Upload {
  /** Write end of the temporary file; the caller writes the body into it and never closes it. */
  fd: number;
  /** The resource the upload will replace, or null when it creates a new one. */
  existing: Stat | null;
  /**
   * Atomically replace the target with the uploaded content (fsync, then rename). With `size`,
   * fails with EIO instead — the target untouched — unless the file holds exactly that many bytes.
   */
  commit(size?: number): Promise<Stat>;
  /** Discard the upload; the target is untouched and no temporary file remains. */
  abort(): Promise<void>;
  /**
   * Aborted when what holds the upload is gone (its worker died): the upload can only fail, so
   * the rest of the body is not worth reading. Absent where the upload cannot be lost like that.
   */
  readonly lost?: AbortSignal;
}

export interface OpenedFile {
  /** A read-only descriptor the caller owns and must close. */
  fd: number;
  stat: Stat;
}

/** What putSmall did: the file as it now is, and whether it was created (201) or replaced (204). */
export interface PutResult {
  stat: Stat;
  created: boolean;
}

/** One member of a collection operation that failed; the others went ahead. */
export interface MemberError {
  path: DavPath;
  code: StorageErrorCode;
}

export interface TransferOptions {
  /** For COPY of a collection: 0 copies the collection alone, 'infinity' the whole tree. */
  depth: 0 | 'infinity';
  /** Replace an existing destination (it is removed first, as RFC 4918 §9.8.4 requires). */
  overwrite: boolean;
}

export interface TransferResult {
  /** True when the destination did not exist before (201), false when it was replaced (204). */
  created: boolean;
  errors: MemberError[];
}

export type PropPatchOp = { op: 'set'; name: string; value: string } | { op: 'remove'; name: string };

export interface Space {
  availableBytes: number;
  usedBytes: number;
}

export interface Times {
  atimeMs?: number;
  mtimeMs?: number;
}

export interface Storage {
  stat(path: DavPath): Promise<Stat | null>;
  /**
   * The canonical filesystem path of the resource (symlinks resolved; for a resource that does
   * not exist yet, the resolved parent plus the last segment). Locks are keyed by it, so one
   * file reached through two URLs is one resource.
   */
  realPath(path: DavPath): Promise<string>;
  /** Depth 0: the resource itself; 1: it and its members; 'infinity': the whole tree. */
  list(path: DavPath, depth: Depth, options: ListOptions): AsyncIterable<Entry>;
  /**
   * list() at Depth 1, where members the worker can render as `template` says come as rendered
   * responses; the others (and the collection itself) as entries. Storage that
   * cannot render has no such method.
   */
  listRendered?(
    path: DavPath,
    options: ListOptions,
    template: RenderTemplate,
  ): AsyncIterable<Entry | RenderedResponses>;
  openRead(path: DavPath): Promise<OpenedFile>;
  openWrite(path: DavPath): Promise<Upload>;
  /**
   * A whole upload of at most MAX_INLINE_BYTES in one call, as atomic as openWrite + commit: the
   * content goes to a temporary file beside the target, synced, then renamed over it; with
   * `mtimeMs` the new file gets that modification time before it becomes visible.
   */
  putSmall(path: DavPath, content: Buffer, options: { mtimeMs?: number }): Promise<PutResult>;
  mkcol(path: DavPath): Promise<void>;
  /** Recursive for collections; members that could not be removed are returned. */
  remove(path: DavPath): Promise<MemberError[]>;
  copy(from: DavPath, to: DavPath, options: TransferOptions): Promise<TransferResult>;
  /** Rename where possible; across filesystems copy then delete, as the same user. */
  move(from: DavPath, to: DavPath, options: Omit<TransferOptions, 'depth'>): Promise<TransferResult>;
  /** Applies the operations in order, all or none; on failure throws and changes nothing. */
  patchProps(path: DavPath, ops: PropPatchOp[]): Promise<void>;
  setTimes(path: DavPath, times: Times): Promise<void>;
  /**
   * Throws (EACCES, EPERM, EROFS ...) unless the user may change the resource, as the kernel
   * judges it (groups, ACLs). A LOCK needs it: a lock on a file the user cannot write would only
   * serve to keep its owner out.
   */
  checkWritable(path: DavPath): Promise<void>;
  space(path: DavPath): Promise<Space>;
}

/**
 * Stable error codes. Filesystem failures keep their errno name; the rest are ours. The
 * mapping to HTTP statuses lives in one place (src/dav/errors.ts).
 */
export type StorageErrorCode =
  | 'ENOENT'
  | 'EACCES'
  | 'EPERM'
  | 'EEXIST'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'ENOTEMPTY'
  | 'ENOSPC'
  | 'EDQUOT'
  | 'EFBIG'
  | 'ENAMETOOLONG'
  | 'ELOOP'
  | 'EROFS'
  | 'EBUSY'
  | 'EXDEV'
  | 'EMLINK'
  | 'ENOTSUP'
  | 'E2BIG'
  | 'ERANGE'
  | 'EIO'
  | 'BAD_PATH' // NUL, "..", or otherwise not a valid DavPath
  | 'NOT_A_SHARE' // tilde layout: no such share, or "/" itself
  | 'LIMIT' // a listing or tree operation went past its bound
  | 'COOKIE_INVALID' // the worker refused the credentials
  | 'COOKIE_EXPIRED' // the credentials are genuine but past their expiry: re-authenticate
  | 'UNAVAILABLE' // the worker could not be reached or died mid-request
  | 'PROTOCOL' // a malformed message on the channel
  | 'INTERNAL';

const KNOWN_ERRNO = new Set<string>([
  'ENOENT',
  'EACCES',
  'EPERM',
  'EEXIST',
  'ENOTDIR',
  'EISDIR',
  'ENOTEMPTY',
  'ENOSPC',
  'EDQUOT',
  'EFBIG',
  'ENAMETOOLONG',
  'ELOOP',
  'EROFS',
  'EBUSY',
  'EXDEV',
  'EMLINK',
  'ENOTSUP',
  'E2BIG',
  'ERANGE',
  'EIO',
]);

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  /** For PROPPATCH: the property that failed. */
  readonly property?: string;

  constructor(code: StorageErrorCode, message?: string, property?: string) {
    super(message ?? code);
    this.name = 'StorageError';
    this.code = code;
    this.property = property;
  }

  /** Wraps a node:fs error (or anything thrown) without leaking more than its errno name. */
  static from(error: unknown): StorageError {
    if (error instanceof StorageError) return error;
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EOPNOTSUPP') return new StorageError('ENOTSUP', 'operation not supported');
    if (code !== undefined && KNOWN_ERRNO.has(code)) return new StorageError(code as StorageErrorCode);
    return new StorageError('INTERNAL', error instanceof Error ? error.message : String(error));
  }
}

export const ALL_STORAGE_ERROR_CODES: readonly StorageErrorCode[] = [
  ...(KNOWN_ERRNO as Set<StorageErrorCode>),
  'BAD_PATH',
  'NOT_A_SHARE',
  'LIMIT',
  'COOKIE_INVALID',
  'COOKIE_EXPIRED',
  'UNAVAILABLE',
  'PROTOCOL',
  'INTERNAL',
];
