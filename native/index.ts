// Typed loader of the privdav_native addon (native/src/privdav_native.c): the Linux system calls
// Node does not expose. Errors thrown are Node-style system errors (err.code = 'EEXIST', ...).
import fs from 'node:fs';
import path from 'node:path';

declare const pollHandleBrand: unique symbol;
declare const listingHandleBrand: unique symbol;
/** An opaque libuv poll handle on a channel's socket; only the functions below accept it. */
export interface PollHandle {
  readonly [pollHandleBrand]: never;
}

/** The raw channel primitives common/channel.ts is built on; nothing else should need them. */
export interface ChannelBinding {
  /** Bytes sent, or -errno (-EAGAIN when the socket is full). Closes `fds` once they are sent. */
  sendmsg(fd: number, payload: Buffer, fds: readonly number[] | null): number;
  /** Bytes received, or -errno. out[0] = msg_flags, out[1] = fd count, out[2...] = fds (CLOEXEC). */
  recvmsg(fd: number, buffer: Buffer, out: Int32Array): number;
  /** The socket's pending error as -errno, clearing it; 0 if none. */
  socketError(fd: number): number;
  /** Starts watching `fd` (sets O_NONBLOCK); refuses anything but a SEQPACKET socket. */
  /** `callback(status, events)`: status < 0 (libuv's UV_EBADF for POLLERR) means polling stopped. */
  pollOpen(fd: number, callback: (status: number, events: number) => void): PollHandle;
  /** Polls for constants.UV_READABLE | UV_WRITABLE, or stops with 0. */
  pollSet(handle: PollHandle, events: number): void;
  pollRef(handle: PollHandle, keepAlive: boolean): void;
  /** Stops polling, then closes the fd. Idempotent. */
  pollClose(handle: PollHandle): void;
  /** Detaches `buffer`: its memory is freed now, not at a garbage collection; its views empty. */
  releaseArrayBuffer(buffer: ArrayBuffer): void;
  readonly constants: {
    readonly UV_READABLE: number;
    readonly UV_WRITABLE: number;
    readonly MSG_TRUNC: number;
    readonly MSG_CTRUNC: number;
    readonly SCM_MAX_FD: number;
  };
}

interface Addon extends ChannelBinding {
  socketpair(): [number, number];
  tcpListen(host: string, port: number, backlog: number): number;
  setNoNewPrivs(): void;
  closeFd(fd: number): void;
  closeFds(fds: Int32Array, callback: () => void): void;
  readCached(fd: number, buffer: Buffer, position: number): number;
  openForRead(path: string | Buffer, numbers: Float64Array): string | null;
  dupFd(fd: number): number;
  groupList(user: string, gid: number): number[];
  xattrList(path: string | Buffer): string[];
  xattrGet(path: string | Buffer, name: string): Buffer;
  xattrSet(path: string | Buffer, name: string, value: Buffer): void;
  xattrRemove(path: string | Buffer, name: string): void;
  commitUpload(
    fd: number,
    temporary: string | Buffer,
    link: boolean,
    target: string | Buffer,
    durable: boolean,
    callback: (error: NodeJS.ErrnoException | null) => void,
  ): void;
  sendFile(
    socketFd: number,
    fileFd: number,
    offset: number,
    length: number,
    idleMs: number,
    copy: boolean,
    callback: (error: NodeJS.ErrnoException | null, sent: number, copied: number) => void,
  ): SendFileHandle;
  abortSendFile(handle: SendFileHandle): void;
  cloneFile(
    targetFd: number,
    sourceFd: number,
    from: number,
    length: number,
    callback: (error: NodeJS.ErrnoException | null, cloned: boolean, next: number) => void,
  ): void;
  diskQuota(path: string | Buffer, uid: number): DiskQuota | null;
  releaseListing(listing: PackedListing): void;
  listingOpen(
    path: string | Buffer,
    xattrs: 0 | 1 | 2,
    wire?: { prefix: string; maxNameBytes: number; props: boolean; xml?: XmlTemplate },
  ): ListingHandle;
  listingRead(
    handle: ListingHandle,
    maxMembers: number,
    callback: ((error: NodeJS.ErrnoException | null, listing?: PackedListing) => void) | null,
  ): PackedListing | undefined;
  listingClose(handle: ListingHandle): void;
}

/** An open listing in listdir.c (its directory, read batch by batch); only the functions below accept it. */
interface ListingHandle {
  readonly [listingHandleBrand]: never;
}

/** listdir.c's answer to one listingRead: a batch as flat arrays, decoded below (layouts described there). */
interface PackedListing {
  count: number;
  /** The directory has no more members: this was the last batch. */
  end: boolean;
  /** Member names, attribute names and attribute values, back to back. */
  bytes: Buffer;
  /**
   * Per member: name offset, name length, flags (1 = symlink, 2 = has no wire text), first
   * attribute, attribute count, ETag offset, ETag length, wire text offset, wire text length. A
   * member with wire text has only flags and the wire fields; one without has, in place of the
   * wire text offset, its slot in `stats` and `numbers`.
   */
  members: Uint32Array;
  /** Per member: dev, ino, mode, uid, gid, size, mtime s, ns, ctime s, ns, birthtime s, ns. */
  stats: BigInt64Array;
  /** Per attribute: name offset, name length, value offset, value length (0xffffffff: not read). */
  attrs: Uint32Array;
  /** Per member: size, mtimeMs, birthtimeMs, mode. */
  numbers: Float64Array;
  /** With the wire option: the members' wire texts, back to back, each followed by a comma. */
  wire?: Buffer;
}

// Compiled code runs from dist/native/, sources from native/: both sit below the package root.
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`privdav_native: no package.json above ${start}`);
  }
}

const addonPath = path.join(findPackageRoot(__dirname), 'native', 'build', 'Release', 'privdav_native.node');
// A .node file can only be loaded with require.
const addon = require(addonPath) as Addon;

/** A connected AF_UNIX SOCK_SEQPACKET pair, both ends close-on-exec. */
export function socketpair(): [number, number] {
  return addon.socketpair();
}

/**
 * A listening TCP socket (SO_REUSEADDR; IPV6_V6ONLY for IPv6; close-on-exec; non-blocking) on a
 * numeric IPv4/IPv6 host ("::1" or "[::1]"). Returns the fd; port 0 picks a free port.
 */
export function tcpListen(host: string, port: number, backlog: number): number {
  return addon.tcpListen(host, port, backlog);
}

/**
 * The end of an atomic upload, in one threadpool job: fdatasync `fd` when `durable`; with `link`,
 * give the O_TMPFILE file behind `fd` the name `temporary` (linkat through /proc/self/fd); then
 * rename `temporary` over `target`. A name it linked is removed again if the rename fails.
 */
export function commitUpload(
  fd: number,
  temporary: string | Buffer,
  options: { link: boolean; target: string | Buffer; durable: boolean },
): Promise<void> {
  return new Promise((resolve, reject) =>
    addon.commitUpload(fd, temporary, options.link, options.target, options.durable, (error) =>
      error === null ? resolve() : reject(error),
    ),
  );
}

/**
 * Copies the first `length` bytes of `sourceFd` (open for reading) into `targetFd` (open for
 * writing, empty): FICLONE when the source is exactly `length` bytes and the filesystem shares
 * blocks, else copy_file_range, else pread/pwrite — in threadpool jobs of at most 16 MiB each, so
 * a large file cannot hold one of the web process's few threadpool threads for seconds. Resolves
 * to true when the blocks were cloned. ENODATA when the source is shorter than `length`.
 */
export async function cloneFile(targetFd: number, sourceFd: number, length: number): Promise<boolean> {
  let from = 0;
  for (;;) {
    const [cloned, next] = await new Promise<[boolean, number]>((resolve, reject) =>
      addon.cloneFile(targetFd, sourceFd, from, length, (error, cloned, next) =>
        error === null ? resolve([cloned, next]) : reject(error),
      ),
    );
    if (cloned || next >= length) return cloned;
    from = next;
  }
}

/** A user's quota on one filesystem, in bytes; a limit of 0 means none. */
export interface DiskQuota {
  usedBytes: number;
  softLimitBytes: number;
  hardLimitBytes: number;
}

/**
 * The disk quota of `uid` on the filesystem holding `path` (quotactl Q_GETQUOTA), or null when that
 * filesystem keeps no user quotas (quotas off, or no quota support in the kernel). Synchronous: a
 * metadata call. Throws (node:fs-shaped errors) when the path cannot be opened.
 */
export function diskQuota(path: string | Buffer, uid: number): DiskQuota | null {
  return addon.diskQuota(path, uid);
}

declare const sendFileHandleBrand: unique symbol;
/** A transfer started by sendFile; only abortSendFile accepts it. */
export interface SendFileHandle {
  readonly [sendFileHandleBrand]: never;
}

/**
 * Sends `length` bytes of `fileFd` from `offset` to the stream socket `socketFd` with sendfile(2),
 * or with `copy` by write(2) from a mapping of the file (faster to a peer on the same host, see
 * native/src/sendfile.c), in threadpool steps, waiting for the socket to drain between them (on a dup of `socketFd`, so
 * the caller's descriptor is untouched). `callback(error, sent, copied)` runs once, `copied` being
 * the part of `sent` written from a mapping (less than `sent` when a file that cannot be mapped
 * fell back to sendfile): error null when all was sent; ETIMEDOUT when the socket accepted nothing for `idleMs` (0: no limit); ENODATA when
 * the file ended early; ECANCELED after abortSendFile. The caller must not write to the socket
 * meanwhile, and keeps `fileFd` open until the callback.
 */
export function sendFile(
  socketFd: number,
  fileFd: number,
  offset: number,
  length: number,
  idleMs: number,
  copy: boolean,
  callback: (error: NodeJS.ErrnoException | null, sent: number, copied: number) => void,
): SendFileHandle {
  return addon.sendFile(socketFd, fileFd, offset, length, idleMs, copy, callback);
}

export function abortSendFile(handle: SendFileHandle): void {
  addon.abortSendFile(handle);
}

const pendingCloses: number[] = [];
/** Descriptors are C ints: a larger number would wrap in the Int32Array of a batch. */
const MAX_FD = 2 ** 31 - 1;
let closing = false;

function flushCloses(): void {
  if (pendingCloses.length === 0) {
    closing = false;
    return;
  }
  const batch = Int32Array.from(pendingCloses.splice(0, 65536));
  closing = true;
  try {
    addon.closeFds(batch, flushCloses);
  } catch {
    // The threadpool job could not be queued (ENOMEM): close this batch here and now, and go on
    // with the rest, rather than leave `closing` set and every later descriptor open.
    for (const fd of batch) closeQuietly(fd);
    flushCloses();
  }
}

function closeQuietly(fd: number): void {
  try {
    addon.closeFd(fd);
  } catch {
    // Not open (any more): nothing to release.
  }
}

/**
 * Closes `fd` soon, off the event loop (close can wait on FUSE or NFS): descriptors given while
 * a batch is being closed are closed together in the next one, one threadpool job per batch.
 */
export function closeLater(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0 || fd > MAX_FD)
    throw new TypeError(`closeLater: not a descriptor: ${fd}`);
  pendingCloses.push(fd);
  if (!closing) flushCloses();
}

/**
 * Fills `buffer` from `position` of `fd` with what the page cache already holds (preadv2 with
 * RWF_NOWAIT), never waiting for the disk. Returns the bytes read (fewer at end of file or when
 * only part was cached) or -errno, -EAGAIN (-11) when nothing was cached.
 */
export function readCached(fd: number, buffer: Buffer, position: number): number {
  return addon.readCached(fd, buffer, position);
}

/** What openForRead found at a path. */
export type OpenedForRead =
  | { kind: 'file'; fd: number; size: number; mtimeMs: number; birthtimeMs: number; etag: string }
  | { kind: 'directory' | 'other' };

const openNumbers = new Float64Array(4);

/**
 * Opens a regular file for reading (O_RDONLY | O_NONBLOCK | O_CLOEXEC, following symlinks) in one
 * call: stat of the path first, so that a FIFO or a device is never opened, then open, then statx
 * of the descriptor, which must be a regular file too. Its size, times and ETag are those
 * helper/file-stat.ts's toStat gives (the listing's own computation). A directory or anything
 * else is reported, not opened. Throws node:fs-shaped errors (syscall stat, open or fstat).
 */
export function openForRead(path: string | Buffer): OpenedForRead {
  const etag = addon.openForRead(path, openNumbers);
  const fd = openNumbers[0]!;
  if (etag === null) return { kind: fd === -1 ? 'directory' : 'other' };
  return {
    kind: 'file',
    fd,
    size: openNumbers[1]!,
    mtimeMs: openNumbers[2]!,
    birthtimeMs: openNumbers[3]!,
    etag,
  };
}

/** Extended attribute names of `path` (following symlinks), e.g. `user.dav:{DAV:}x`. */
export function xattrList(path: string | Buffer): string[] {
  return addon.xattrList(path);
}

/** The value of one extended attribute; throws ENODATA when it is absent. */
export function xattrGet(path: string | Buffer, name: string): Buffer {
  return addon.xattrGet(path, name);
}

export function xattrSet(path: string | Buffer, name: string, value: Buffer): void {
  addon.xattrSet(path, name, value);
}

/** Throws ENODATA when the attribute is absent. */
export function xattrRemove(path: string | Buffer, name: string): void {
  addon.xattrRemove(path, name);
}

/** prctl(PR_SET_NO_NEW_PRIVS, 1): this process and its children can never gain privileges by exec. */
export function setNoNewPrivs(): void {
  addon.setNoNewPrivs();
}

/** close(2). Throws EBADF for a descriptor that is not open. */
export function closeFd(fd: number): void {
  addon.closeFd(fd);
}

/** A close-on-exec duplicate of `fd` (fcntl F_DUPFD_CLOEXEC), e.g. to keep a descriptor one is about to send. */
export function dupFd(fd: number): number {
  return addon.dupFd(fd);
}

/** The sorted supplementary groups initgroups(user, gid) would set now (getgrouplist, via NSS). */
export function groupList(user: string, gid: number): number[] {
  return addon.groupList(user, gid);
}

/** stat(2) of a listed member, with the same values (and types) as node:fs's BigIntStats. */
export interface ListedStat {
  dev: bigint;
  ino: bigint;
  mode: bigint;
  uid: bigint;
  gid: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** 0n where the filesystem records no birth time (as node:fs). */
  birthtimeNs: bigint;
}

export interface ListedMember {
  /** The directory entry's name, raw bytes (it need not be UTF-8). */
  name: Buffer;
  /** The entry itself is a symlink; `stat` describes what it points to. */
  isSymlink: boolean;
  /** As node:fs's BigIntStats; made on first use (the BigInts cost more than the listing's JS). */
  readonly stat: ListedStat;
  /** The same stat as plain numbers, computed by the addon; see ListedNumbers. */
  numbers: ListedNumbers;
  /** Its `user.dav:` and `user.dav#` attributes; `value` is null where only names were asked for. */
  xattrs: Array<{ name: Buffer; value: Buffer | null }>;
}

/**
 * What helper/local-storage.ts's Stat is made of, as it makes it from a BigIntStats: the ETag
 * `"<ino>-<size>-<mtime ns>"` in hex, times in milliseconds with microsecond precision, birthtime
 * falling back to ctime, size and mode as Number(bigint) gives them.
 */
export interface ListedNumbers {
  size: number;
  mtimeMs: number;
  birthtimeMs: number;
  /** For the kind of resource. */
  mode: number;
  etag: string;
}

export interface ListDirectoryOptions {
  /** 'names': attribute names, plus the values of `user.dav#` ones (they hold the property name). */
  xattrs: 'none' | 'names' | 'values';
  /** The most members one batch holds (a batch also ends once it holds 4 MiB). */
  batchMembers: number;
  /**
   * Members of the first batch, read on the calling thread rather than the threadpool (a small
   * directory costs less than the two thread wake-ups); 0 (the default): every batch on the pool.
   */
  firstBatchNow?: number;
}

const XATTR_MODES = { none: 0, names: 1, values: 2 } as const;
const NO_VALUE = 0xffffffff;
const NS_PER_SECOND = 1_000_000_000n;

/** What one read of a DirectoryCursor gives: its members are decoded by the listings below. */
export type ListingBatch = PackedListing;

/**
 * One directory opened once and read in batches (listdir.c's cursor): the next batch of members
 * with `read` (threadpool) or `readNow` (this thread), one at a time — a read while another is in
 * flight is refused (ERR_LISTING_BUSY), as is one after the last batch, an error or close
 * (ERR_LISTING_CLOSED). The directory is closed after the last batch, on an error, on close(),
 * and, for a cursor dropped before its end, when the garbage collector finalizes it.
 */
export class DirectoryCursor {
  readonly #handle: ListingHandle;

  /** `path`: a string, or a Buffer for a directory whose name is not UTF-8. */
  constructor(path: string | Buffer, xattrs: ListDirectoryOptions['xattrs'], wire?: WireListingOptions) {
    this.#handle = addon.listingOpen(
      path,
      XATTR_MODES[xattrs],
      wire === undefined
        ? undefined
        : { prefix: wire.prefix, maxNameBytes: wire.maxNameBytes, props: wire.props, xml: wire.xml },
    );
  }

  read(maxMembers: number): Promise<ListingBatch> {
    return new Promise((resolve, reject) =>
      addon.listingRead(this.#handle, maxMembers, (error, listing) =>
        error !== null || listing === undefined ? reject(error) : resolve(listing),
      ),
    );
  }

  readNow(maxMembers: number): ListingBatch {
    return addon.listingRead(this.#handle, maxMembers, null)!;
  }

  /** Nothing more is read; a batch in flight is dropped (it fails with ECANCELED). Idempotent. */
  close(): void {
    addon.listingClose(this.#handle);
  }
}

function ignore(): void {}

/**
 * The batches of one directory in order, as `itemsOf` decodes them, each released (its memory
 * freed) when the next is asked for. While a batch is consumed the next is read on the threadpool,
 * so the directory is read while its members are sent; at most two batches are held. The cursor
 * is closed however the iteration ends (a batch still in flight then is dropped when it arrives).
 */
async function* batchesOf<T>(
  cursor: DirectoryCursor,
  options: ListDirectoryOptions,
  itemsOf: (batch: ListingBatch) => Iterable<T>,
): AsyncGenerator<Iterable<T>> {
  let next: Promise<ListingBatch> | null = null;
  try {
    const first = options.firstBatchNow ?? 0;
    let batch = first > 0 ? cursor.readNow(first) : await cursor.read(options.batchMembers);
    for (;;) {
      next = batch.end ? null : cursor.read(options.batchMembers);
      // Awaited later; until then its failure must not count as unhandled.
      next?.catch(ignore);
      try {
        yield itemsOf(batch);
      } finally {
        addon.releaseListing(batch);
      }
      if (next === null) return;
      batch = await next;
      next = null;
    }
  } finally {
    next?.then((dropped) => addon.releaseListing(dropped), ignore);
    cursor.close();
  }
}

/**
 * The members of directory `path` (not . and ..), in directory order, each stat'ed following
 * symlinks; members that vanish or cannot be stat'ed are left out. Read by the addon in batches
 * over one open directory (ListDirectoryOptions), and given batch by batch: one await per batch,
 * not per member. Fails with a Node-style system error (code 'ENOENT', 'ENOTDIR', 'EACCES';
 * syscall 'opendir' when the directory cannot be opened). A batch's members are decoded one at a
 * time as they are iterated, so only those in hand are JavaScript objects; their Buffers (names,
 * attributes) are valid until the next batch is asked for.
 */
export function listDirectory(
  path: string | Buffer,
  options: ListDirectoryOptions,
): AsyncGenerator<Iterable<ListedMember>> {
  return batchesOf(new DirectoryCursor(path, options.xattrs), options, membersOfBatch);
}

export interface XmlTemplate {
  /** Literal text and slot numbers (native/src/listing_xml.h enum xml_slot). */
  file: Array<string | number>;
  directory: Array<string | number>;
  types: string[];
  hide: string[];
}

export interface WireListingOptions extends ListDirectoryOptions {
  /**
   * The JSON text of the directory's DavPath followed by "/", without the closing quote (e.g.
   * `"/docs/`): each member's path is this plus its name.
   */
  prefix: string;
  /** Longer names make too long a path: such members come as members, for JavaScript to judge. */
  maxNameBytes: number;
  /** Entries carry dead properties (`{}` when a member has none) — common/protocol.ts entryToWire. */
  props: boolean;
  /**
   * When set, a member's text is its PROPFIND response (native/src/listing_xml.c) instead of its
   * JSON: the programs for files and collections, props.ts's content types (extension, type, ...)
   * and the hide patterns whose members are left to JavaScript.
   */
  xml?: XmlTemplate;
  /** Bounds of one run of text. */
  maxRunEntries: number;
  maxRunBytes: number;
}

/**
 * Either a run of consecutive members the addon wrote as wire text (`count` entries, each followed
 * by a comma; a view of its batch, emptied when the next batch is asked for), or one member it
 * left to JavaScript: a name JSON needs escapes for or that may not be addressable, dead
 * properties to decode, times beyond 2^53 µs.
 */
export type WireItem = { text: Buffer; count: number; member?: undefined } | { member: ListedMember };

/**
 * listDirectory for common/protocol.ts's wire: most members come as ready-made entry text
 * written by the addon (no JavaScript object per member), the rest as members; batch by batch.
 */
export function listDirectoryAsWire(
  path: string | Buffer,
  options: WireListingOptions,
): AsyncGenerator<Iterable<WireItem>> {
  return batchesOf(new DirectoryCursor(path, options.xattrs, options), options, (batch) =>
    wireItemsOf(batch, options),
  );
}

function* wireItemsOf(listing: PackedListing, options: WireListingOptions): Generator<WireItem> {
  const { members, wire } = listing;
  let runStart = 0;
  let runEnd = 0;
  let runCount = 0;
  for (let i = 0; i < listing.count; i++) {
    const m = i * MEMBER_FIELDS;
    if ((members[m + 2]! & MEMBER_NEEDS_JS) !== 0) {
      if (runCount > 0) yield { text: wire!.subarray(runStart, runEnd), count: runCount };
      runCount = 0;
      yield { member: new PackedMember(listing, i) };
      continue;
    }
    const start = members[m + 7]!;
    const end = start + members[m + 8]!;
    if (runCount > 0 && (runCount >= options.maxRunEntries || end - runStart > options.maxRunBytes)) {
      yield { text: wire!.subarray(runStart, runEnd), count: runCount };
      runCount = 0;
    }
    if (runCount === 0) runStart = start;
    runEnd = end;
    runCount++;
  }
  if (runCount > 0) yield { text: wire!.subarray(runStart, runEnd), count: runCount };
}

/** The members of one batch a DirectoryCursor read, decoded one at a time. */
export function* membersOfBatch(listing: ListingBatch): Generator<ListedMember> {
  for (let i = 0; i < listing.count; i++) yield new PackedMember(listing, i);
}

const MEMBER_FIELDS = 9;
const MEMBER_IS_SYMLINK = 1;
const MEMBER_NEEDS_JS = 2;
const STAT_FIELDS = 12;
const NUMBER_FIELDS = 4;

/** One member of a packed listing; `stat` is computed from the listing when first asked for. */
class PackedMember implements ListedMember {
  readonly name: Buffer;
  readonly isSymlink: boolean;
  readonly numbers: ListedNumbers;
  readonly xattrs: ListedMember['xattrs'];
  #stat: ListedStat | null = null;
  readonly #stats: BigInt64Array;
  readonly #index: number;

  constructor(listing: PackedListing, i: number) {
    const { bytes, members, attrs, numbers } = listing;
    const m = i * MEMBER_FIELDS;
    // In a wire listing only members without wire text have stats and numbers: at their slot.
    const slot = (members[m + 2]! & MEMBER_NEEDS_JS) !== 0 ? members[m + 7]! : i;
    const n = slot * NUMBER_FIELDS;
    this.name = bytes.subarray(members[m]!, members[m]! + members[m + 1]!);
    this.isSymlink = (members[m + 2]! & MEMBER_IS_SYMLINK) !== 0;
    this.numbers = {
      size: numbers[n]!,
      mtimeMs: numbers[n + 1]!,
      birthtimeMs: numbers[n + 2]!,
      mode: numbers[n + 3]!,
      etag: bytes.toString('latin1', members[m + 5]!, members[m + 5]! + members[m + 6]!),
    };
    const xattrs: ListedMember['xattrs'] = [];
    for (let a = members[m + 3]! * 4, end = a + members[m + 4]! * 4; a < end; a += 4) {
      const valueLength = attrs[a + 3]!;
      xattrs.push({
        name: bytes.subarray(attrs[a]!, attrs[a]! + attrs[a + 1]!),
        value: valueLength === NO_VALUE ? null : bytes.subarray(attrs[a + 2]!, attrs[a + 2]! + valueLength),
      });
    }
    this.xattrs = xattrs;
    this.#stats = listing.stats;
    this.#index = slot;
  }

  get stat(): ListedStat {
    if (this.#stat === null) {
      const stats = this.#stats;
      const s = this.#index * STAT_FIELDS;
      if (s + STAT_FIELDS > stats.length) throw new Error('listDirectory: the batch was released');
      this.#stat = {
        dev: stats[s]!,
        ino: stats[s + 1]!,
        mode: stats[s + 2]!,
        uid: stats[s + 3]!,
        gid: stats[s + 4]!,
        size: stats[s + 5]!,
        // As node:fs computes them, so ETags made from either agree.
        mtimeNs: stats[s + 6]! * NS_PER_SECOND + stats[s + 7]!,
        ctimeNs: stats[s + 8]! * NS_PER_SECOND + stats[s + 9]!,
        birthtimeNs: stats[s + 10]! * NS_PER_SECOND + stats[s + 11]!,
      };
    }
    return this.#stat;
  }
}

export const channelBinding: ChannelBinding = addon;
