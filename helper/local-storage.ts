// LocalStorage: the Storage interface done with node:fs in the calling process. The worker runs it
// as the authenticated user (the kernel enforces permissions); non-root mode and the protocol core's
// tests use it directly. Every DavPath goes through resolvePath (helper/layout.ts) first.

import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { TextDecoder } from 'node:util';
import {
  StorageError,
  type DavPath,
  type DeadProps,
  type Depth,
  type Entry,
  type ListOptions,
  type MemberError,
  type OpenedFile,
  type PropPatchOp,
  type PropSelection,
  type Space,
  type Stat,
  type Storage,
  type Times,
  type TransferOptions,
  type TransferResult,
  type Upload,
} from '../common/storage';
import {
  commitUpload,
  listDirectoryAsWire,
  listDirectoryAsWireNow,
  listDirectoryLazily,
  type ListDirectoryOptions,
  type ListedMember as NativeMember,
  type ListedNumbers,
  type WireItem,
} from '../native/index';
import { copyUserXattrs, patchDeadProps, readDeadProps, selectDeadProps } from './dead-props';
import {
  childDavPath,
  isSameOrInside,
  isValidSegment,
  MAX_PATH_BYTES,
  MAX_SEGMENT_BYTES,
  parentDavPath,
  resolvePath,
  shareRootOf,
  type LayoutConfig,
} from './layout';
import { wireRunOf, type WireRun } from '../common/protocol';

export type { LayoutConfig } from './layout';

export interface LocalStorageOptions {
  layout: LayoutConfig;
  /** fdatasync an upload before it replaces the target (default true). */
  durable?: boolean;
}

const fsp = fs.promises;
/** open(2) flags O_TMPFILE | O_DIRECTORY; Node does not export the constant. */
const O_TMPFILE = 0o20200000;
/** Members stat'ed at once while listing: enough to keep the threadpool busy, bounded for memory. */
const LIST_CONCURRENCY = 32;
/**
 * The most members one directory may have to be listed by the addon in one piece (it holds them
 * all in memory at once); a bigger directory is streamed by listMembers instead.
 */
const NATIVE_LIST_MAX_MEMBERS = 100_000;
/**
 * Directories up to this size (st_size; on ext4 about 300 short names) are listed by the worker's
 * own thread, up to SMALL_DIRECTORY_MEMBERS members; bigger ones on the threadpool, where several
 * listings proceed in parallel and the worker keeps answering meanwhile.
 */
const SMALL_DIRECTORY_BYTES = 12_288n;
const SMALL_DIRECTORY_MEMBERS = 512;
/**
 * statfs(2) types of filesystems where a stat may wait on the network or on another process: a
 * directory there goes to the threadpool whatever its size, so the worker keeps answering.
 */
const REMOTE_FILESYSTEMS = new Set([
  0x6969, // NFS
  0x65735546, // FUSE (sshfs, davfs2, ...)
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x517b, // SMB
  0x01021997, // 9p
  0x00c36400, // Ceph
  0x5346414f, // AFS
  0x6b414653, // kAFS
  0x47504653, // GPFS
  0x0bd00bd0, // Lustre
]);

export function isRemoteFilesystem(statfsType: number): boolean {
  return REMOTE_FILESYSTEMS.has(statfsType);
}

/** Whether a small directory on the filesystem of `fsPath` may be listed on the worker's own thread. */
export function mayListAtOnce(fsPath: string): boolean {
  try {
    return !isRemoteFilesystem(fs.statfsSync(fsPath).type);
  } catch {
    return false;
  }
}
/** Members removed or copied at once inside one collection. */
const TREE_CONCURRENCY = 16;
/** Directory entry names are bytes: one that is not UTF-8 cannot be a DavPath segment. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export class LocalStorage implements Storage {
  readonly #layout: LayoutConfig;
  readonly #durable: boolean;

  constructor(options: LocalStorageOptions) {
    this.#layout = options.layout;
    this.#durable = options.durable ?? true;
  }

  async stat(path: DavPath): Promise<Stat | null> {
    const fsPath = this.#resolve(path);
    const stats = await statOrNull(fsPath);
    return stats === null ? null : toStat(stats);
  }

  async realPath(path: DavPath): Promise<string> {
    const fsPath = this.#resolve(path);
    try {
      return await fsp.realpath(fsPath);
    } catch (error) {
      // A resource that does not exist yet is named by its (resolved) parent plus its name.
      if (errnoOf(error) !== 'ENOENT' || this.#isShareRoot(path)) throw storageError(error);
      const parent = await this.realPath(parentDavPath(path));
      return (parent === '/' ? '' : parent) + '/' + basename(fsPath);
    }
  }

  async *list(path: DavPath, depth: Depth, options: ListOptions): AsyncGenerator<Entry> {
    const fsPath = this.#resolve(path);
    checkListArguments(depth, options);
    const props = options.props;
    const root = await statOrThrow(fsPath);
    let count = 0;
    const counted = (entry: Entry): Entry => {
      if (++count > options.limit) throw new StorageError('LIMIT', 'too many entries');
      return entry;
    };
    yield counted(makeEntry(path, fsPath, root, props));
    if (depth === 0 || !root.isDirectory()) return;

    // Breadth-first. Symlinked directories are listed but not entered, and a directory reached
    // twice (bind mounts) is entered once, so the walk always ends.
    // A collection below the first that cannot be read is listed without its members.
    const visited = new Set<string>([identityOf(root)]);
    const pending: Array<{ path: DavPath; fsPath: string }> = [{ path, fsPath }];
    for (let next = 0; next < pending.length; next++) {
      const dir = pending[next]!;
      const members =
        (await listMembersNatively(dir.path, dir.fsPath, props, next > 0, options.limit - count)) ??
        listMembers(dir.path, dir.fsPath, props, next > 0);
      for await (const member of members) {
        yield counted(member.entry);
        if (depth !== 'infinity' || member.isSymlink || member.entry.stat.kind !== 'directory') continue;
        if (visited.has(member.identity)) continue;
        visited.add(member.identity);
        pending.push({ path: member.entry.path, fsPath: member.fsPath });
      }
    }
  }

  /**
   * list() in common/protocol.ts's wire form: runs of entry texts, each entry followed by a comma,
   * of at most `bounds` entries and bytes (a single entry may be larger). The members of a Depth 1
   * listing come mostly as text the addon wrote, without a JavaScript object each — a worker
   * answering PROPFINDs spent most of its time making and serialising those. Same entries, order,
   * errors and limit as list().
   */
  async *listWire(
    path: DavPath,
    depth: Depth,
    options: ListOptions,
    bounds: { entries: number; bytes: number },
  ): AsyncGenerator<WireRun> {
    if (depth !== 1) {
      for await (const entry of this.list(path, depth, options)) yield wireRunOf(entry);
      return;
    }
    const fsPath = this.#resolve(path);
    checkListArguments(depth, options);
    const props = options.props;
    const root = await statOrThrow(fsPath);
    yield wireRunOf(makeEntry(path, fsPath, root, props));
    if (!root.isDirectory()) return;
    let count = 1;
    const counted = (n: number): void => {
      count += n;
      if (count > options.limit) throw new StorageError('LIMIT', 'too many entries');
    };
    const pathBytes = Buffer.byteLength(path, 'utf8');
    const listOptions = {
      xattrs: xattrsFor(props),
      maxMembers: Math.max(0, Math.min(options.limit - count, NATIVE_LIST_MAX_MEMBERS)),
      prefix: JSON.stringify(childDavPath(path, '')).slice(0, -1),
      maxNameBytes: Math.max(0, Math.min(MAX_SEGMENT_BYTES, MAX_PATH_BYTES - pathBytes - 1)),
      props: props !== 'none',
      maxRunEntries: bounds.entries,
      maxRunBytes: bounds.bytes,
    };
    let items: Iterable<WireItem> | null = null;
    try {
      // A small directory on a local filesystem is listed at once: two thread wake-ups cost more
      // than the listing. It turns out bigger than its size said (E2BIG): the threadpool lists it.
      if (root.size <= SMALL_DIRECTORY_BYTES && mayListAtOnce(fsPath))
        items = listDirectoryAsWireNow(fsPath, {
          ...listOptions,
          maxMembers: Math.min(listOptions.maxMembers, SMALL_DIRECTORY_MEMBERS),
        });
    } catch (error) {
      if (errnoOf(error) !== 'E2BIG') throw storageError(error);
    }
    try {
      items ??= await listDirectoryAsWire(fsPath, listOptions);
    } catch (error) {
      if (errnoOf(error) !== 'E2BIG') throw storageError(error);
      for await (const member of listMembers(path, fsPath, props, false)) {
        counted(1);
        yield wireRunOf(member.entry);
      }
      return;
    }
    for (const item of items) {
      if (item.member === undefined) {
        counted(item.count);
        yield item;
        continue;
      }
      const member = listedMember(item.member, path, fsPath, props, pathBytes);
      if (member === null) continue;
      counted(1);
      yield wireRunOf(member.entry);
    }
  }

  async openRead(path: DavPath): Promise<OpenedFile> {
    const fsPath = this.#resolve(path);
    // Checked before opening so a FIFO or device is never opened (opening a FIFO blocks a thread).
    refuseNonFile(await statOrThrow(fsPath));
    let fd: number;
    try {
      fd = fs.openSync(fsPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (error) {
      throw storageError(error);
    }
    try {
      // The descriptor, not the path, is what the caller reads: check what was actually opened.
      const stats = await fstat(fd);
      refuseNonFile(stats);
      return { fd, stat: toStat(stats) };
    } catch (error) {
      closeQuietly(fd);
      throw storageError(error);
    }
  }

  async openWrite(path: DavPath): Promise<Upload> {
    const fsPath = this.#resolve(path);
    const existing = await statOrNull(fsPath);
    if (existing !== null) refuseNonFile(existing);
    // Writing through the user's symlink replaces the file it points to, not the link.
    const target = existing === null ? fsPath : realPathSync(fsPath);
    return LocalUpload.open(target, existing === null ? null : toStat(existing), this.#durable);
  }

  async mkcol(path: DavPath): Promise<void> {
    const fsPath = this.#resolve(path);
    await guard(fsp.mkdir(fsPath, 0o777));
  }

  async remove(path: DavPath): Promise<MemberError[]> {
    const fsPath = this.#resolve(path);
    if (this.#isShareRoot(path)) throw new StorageError('EPERM', 'a share root cannot be removed');
    const stats = await guard(fsp.lstat(fsPath, { bigint: true }));
    if (!stats.isDirectory()) {
      await guard(fsp.unlink(fsPath));
      return [];
    }
    const errors = await removeMembers(path, Buffer.from(fsPath));
    if (errors.length === 0) await guard(fsp.rmdir(fsPath));
    return errors;
  }

  async copy(from: DavPath, to: DavPath, options: TransferOptions): Promise<TransferResult> {
    const source = this.#resolve(from);
    const destination = this.#resolve(to);
    if (options?.depth !== 0 && options?.depth !== 'infinity') throw protocolError('bad copy depth');
    const stats = await statOrThrow(source); // a symlink copies what it points to
    await this.#refuseOverlap(from, to, stats, await guard(fsp.realpath(source)));
    const cleared = await this.#clearDestination(to, destination, options.overwrite);
    if (cleared.errors.length > 0) return { created: false, errors: cleared.errors };
    const errors = await copyResource(source, stats, destination, to, options.depth);
    return { created: cleared.created, errors };
  }

  async move(from: DavPath, to: DavPath, options: Omit<TransferOptions, 'depth'>): Promise<TransferResult> {
    const source = this.#resolve(from);
    const destination = this.#resolve(to);
    if (this.#isShareRoot(from) || this.#isShareRoot(to)) {
      throw new StorageError('EPERM', 'a share root cannot be moved or replaced');
    }
    const stats = await guard(fsp.lstat(source, { bigint: true })); // a symlink moves as itself
    await this.#refuseOverlap(from, to, stats, await this.#entryLocation(from));
    const destinationStats = await lstatOrNull(destination);
    if (destinationStats !== null && options?.overwrite !== true) throw new StorageError('EEXIST');
    // rename(2) replaces a file atomically; a collection on either side must be removed first.
    if (destinationStats !== null && (destinationStats.isDirectory() || stats.isDirectory())) {
      const errors = await this.remove(to);
      if (errors.length > 0) return { created: false, errors };
    }
    const created = destinationStats === null;
    try {
      await fsp.rename(source, destination);
      // rename(2) between two hard links of one file does nothing: finish the move by hand.
      if (destinationStats !== null && identityOf(destinationStats) === identityOf(stats)) {
        await guard(fsp.unlink(source));
      }
      return { created, errors: [] };
    } catch (error) {
      if (errnoOf(error) === 'EINVAL')
        throw new StorageError('BAD_PATH', 'cannot move a collection into itself');
      if (errnoOf(error) !== 'EXDEV') throw storageError(error);
    }
    // Another filesystem: copy as the user, and delete the source only when every member arrived.
    if (destinationStats !== null && (await lstatOrNull(destination)) !== null) {
      const errors = await this.remove(to); // a file the rename would have replaced
      if (errors.length > 0) return { created, errors };
    }
    const errors = await copyResource(source, stats, destination, to, 'infinity');
    if (errors.length > 0) return { created, errors };
    return { created, errors: await this.remove(from) };
  }

  async getProps(path: DavPath, selection: PropSelection): Promise<DeadProps> {
    const fsPath = this.#resolve(path);
    checkSelection(selection);
    await statOrThrow(fsPath);
    return readDeadProps(fsPath, selection);
  }

  async patchProps(path: DavPath, ops: PropPatchOp[]): Promise<void> {
    const fsPath = this.#resolve(path);
    if (!Array.isArray(ops)) throw protocolError('property operations must be a list');
    await statOrThrow(fsPath);
    patchDeadProps(fsPath, ops);
  }

  async checkWritable(path: DavPath): Promise<void> {
    try {
      // access(2) asks the kernel with the worker's (the user's) credentials: groups and ACLs count.
      fs.accessSync(this.#resolve(path), fs.constants.W_OK);
    } catch (error) {
      throw storageError(error);
    }
  }

  async setTimes(path: DavPath, times: Times): Promise<void> {
    const fsPath = this.#resolve(path);
    const { atimeMs, mtimeMs } = times ?? {};
    for (const value of [atimeMs, mtimeMs]) {
      if (value !== undefined && !Number.isFinite(value)) throw protocolError('times must be finite numbers');
    }
    // utimes(2) sets both: a time the caller left out is written back as it is now.
    const current = await statOrThrow(fsPath);
    const atime = atimeMs ?? nsToMs(current.atimeNs);
    const mtime = mtimeMs ?? nsToMs(current.mtimeNs);
    await guard(fsp.utimes(fsPath, atime / 1000, mtime / 1000));
  }

  async space(path: DavPath): Promise<Space> {
    const fsPath = this.#resolve(path);
    const stats = await guard(fsp.statfs(fsPath, { bigint: true }));
    return {
      availableBytes: Number(stats.bavail * stats.bsize),
      usedBytes: Number((stats.blocks - stats.bfree) * stats.bsize),
    };
  }

  #resolve(path: DavPath): string {
    return resolvePath(this.#layout, path);
  }

  #isShareRoot(path: DavPath): boolean {
    return shareRootOf(this.#layout, path) === path;
  }

  /**
   * Refuses a COPY or MOVE whose source and destination overlap (RFC 4918 §9.8.5, §9.9.4: 403):
   * a collection into itself would never end, and replacing a collection that contains the
   * source would destroy the source first. Checked on DavPaths, then where things really are
   * (`sourceLocation` is what is copied or renamed), so symlinks cannot hide an overlap.
   */
  async #refuseOverlap(
    from: DavPath,
    to: DavPath,
    stats: fs.BigIntStats,
    sourceLocation: string,
  ): Promise<void> {
    const isCollection = stats.isDirectory();
    if (from === to || isSameOrInside(to, from) || (isCollection && isSameOrInside(from, to))) {
      throw new StorageError('BAD_PATH', 'source and destination overlap');
    }
    const destinationLocation = await this.#entryLocation(to);
    if (
      isSameOrBelow(destinationLocation, sourceLocation) ||
      (isCollection && isSameOrBelow(sourceLocation, destinationLocation))
    ) {
      throw new StorageError('BAD_PATH', 'source and destination overlap');
    }
  }

  /** Where the directory entry `path` really is: its parent resolved, its own name kept (not followed). */
  async #entryLocation(path: DavPath): Promise<string> {
    if (this.#isShareRoot(path)) return guard(fsp.realpath(this.#resolve(path)));
    const parent = await this.realPath(parentDavPath(path));
    return (parent === '/' ? '' : parent) + '/' + basename(this.#resolve(path));
  }

  /**
   * Makes way for a COPY: removes an existing destination when `overwrite` allows it (RFC 4918
   * §9.8.4), throws EEXIST when it does not. `created` says whether there was none.
   */
  async #clearDestination(to: DavPath, destination: string, overwrite: unknown): Promise<TransferResult> {
    if ((await lstatOrNull(destination)) === null) return { created: true, errors: [] };
    if (overwrite !== true) throw new StorageError('EEXIST');
    if (this.#isShareRoot(to)) throw new StorageError('EPERM', 'a share root cannot be replaced');
    return { created: false, errors: await this.remove(to) };
  }
}

/**
 * An upload in progress: a temporary file in the target's directory. LocalStorage owns `fd`; the
 * caller only writes into it (or into its own duplicate) and never closes it — commit() and abort()
 * close it. Until commit() renames it into place, the target is untouched.
 */
class LocalUpload implements Upload {
  readonly fd: number;
  readonly existing: Stat | null;
  readonly #target: string;
  readonly #durable: boolean;
  /** The temporary name: created at open (named fallback) or at commit (O_TMPFILE). */
  #temporaryPath: string | null;
  #finished = false;

  private constructor(
    fd: number,
    target: string,
    existing: Stat | null,
    durable: boolean,
    temporary: string | null,
  ) {
    this.fd = fd;
    this.existing = existing;
    this.#target = target;
    this.#durable = durable;
    this.#temporaryPath = temporary;
  }

  static async open(target: string, existing: Stat | null, durable: boolean): Promise<LocalUpload> {
    const directory = dirname(target);
    try {
      // Anonymous until commit: a killed worker leaves nothing behind. Mode 0666 & ~umask.
      const fd = fs.openSync(directory, fs.constants.O_WRONLY | O_TMPFILE, 0o666);
      return new LocalUpload(fd, target, existing, durable, null);
    } catch (error) {
      // Filesystems without O_TMPFILE (and kernels that ignore the flag) fall back to a named file.
      const code = errnoOf(error);
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EINVAL') {
        throw storageError(error);
      }
    }
    const temporary = temporaryNameFor(target);
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
    const fd = await guard(call<number>((done) => fs.open(temporary, flags, 0o666, done)));
    return new LocalUpload(fd, target, existing, durable, temporary);
  }

  async commit(size?: number): Promise<Stat> {
    this.#finish();
    try {
      // Belt and braces before the rename makes it visible: the file holds exactly what was sent.
      const uploaded = await fstat(this.fd);
      if (size !== undefined && Number(uploaded.size) !== size)
        throw new StorageError('EIO', `upload is ${uploaded.size} bytes, ${size} were sent`);
      await this.#inheritFromTarget(uploaded);
      // fdatasync, link (O_TMPFILE) and rename in one threadpool job: off the event loop, so
      // concurrent uploads commit in parallel.
      const link = this.#temporaryPath === null;
      const temporary = this.#temporaryPath ?? temporaryNameFor(this.#target);
      await commitUpload(this.fd, temporary, { link, target: this.#target, durable: this.#durable });
      this.#temporaryPath = null;
      return toStat(await fstat(this.fd));
    } catch (error) {
      throw storageError(error);
    } finally {
      this.#cleanUp();
    }
  }

  async abort(): Promise<void> {
    if (this.#finished) return;
    this.#finish();
    this.#cleanUp();
  }

  /** A replaced file keeps its permission bits, group and dead properties (a 0600 file stays 0600). */
  async #inheritFromTarget(uploaded: fs.BigIntStats): Promise<void> {
    const current = await statOrNull(this.#target);
    if (current === null) return;
    refuseNonFile(current);
    // Set-id bits are dropped, as the kernel drops them when anyone writes to such a file. Only
    // when they differ: a chmod is a journalled inode update, and most uploads replace a file
    // that has the default mode.
    const mode = Number(current.mode) & 0o1777;
    if ((Number(uploaded.mode) & 0o7777) !== mode) fs.fchmodSync(this.fd, mode);
    if (uploaded.gid !== current.gid) {
      try {
        fs.fchownSync(this.fd, -1, Number(current.gid));
      } catch {
        // Possible when the user is in that group; otherwise the file keeps the user's group.
      }
    }
    copyUserXattrs(this.#target, this.#temporaryPath ?? `/proc/self/fd/${this.fd}`);
  }

  #finish(): void {
    if (this.#finished) throw new StorageError('INTERNAL', 'upload already committed or aborted');
    this.#finished = true;
  }

  /** Closes our descriptor and removes a temporary name that was not renamed into place. */
  #cleanUp(): void {
    closeQuietly(this.fd);
    if (this.#temporaryPath !== null) {
      try {
        fs.unlinkSync(this.#temporaryPath);
      } catch {
        // Already gone, or the directory went away: nothing is left behind either way.
      }
      this.#temporaryPath = null;
    }
  }
}

// ---- listing ---------------------------------------------------------------------------------

interface ListedMember {
  entry: Entry;
  fsPath: string;
  /** dev:ino of a directory (to enter each once); '' for anything else. */
  identity: string;
  isSymlink: boolean;
}

/**
 * The members of one directory read by the addon in one threadpool call (readdir, stat and the
 * dead-property xattrs of each member), or null when the directory has more than `room` members
 * (or NATIVE_LIST_MAX_MEMBERS): the caller then streams it with listMembers, which counts exactly
 * and holds little memory. Same members, entries and errors as listMembers.
 */
async function listMembersNatively(
  dirPath: DavPath,
  dirFsPath: string,
  props: PropSelection,
  unreadableIsEmpty: boolean,
  room: number,
): Promise<Iterable<ListedMember> | null> {
  let listed: Iterable<NativeMember>;
  try {
    listed = await listDirectoryLazily(dirFsPath, {
      xattrs: xattrsFor(props),
      maxMembers: Math.max(0, Math.min(room, NATIVE_LIST_MAX_MEMBERS)),
    });
  } catch (error) {
    if (errnoOf(error) === 'E2BIG') return null;
    if (unreadableIsEmpty && (error as NodeJS.ErrnoException).syscall === 'opendir') return [];
    throw storageError(error);
  }
  return listedMembers(listed, dirPath, dirFsPath, props);
}

/** Entries made as they are iterated, so only those in hand are JavaScript objects. */
function* listedMembers(
  listed: Iterable<NativeMember>,
  dirPath: DavPath,
  dirFsPath: string,
  props: PropSelection,
): Generator<ListedMember> {
  const pathBytes = Buffer.byteLength(dirPath, 'utf8');
  for (const member of listed) {
    const listedOne = listedMember(member, dirPath, dirFsPath, props, pathBytes);
    if (listedOne !== null) yield listedOne;
  }
}

/** The entry of one member the addon listed, or null when its name cannot be a DavPath segment. */
function listedMember(
  member: NativeMember,
  dirPath: DavPath,
  dirFsPath: string,
  props: PropSelection,
  pathBytes: number,
): ListedMember | null {
  const name = addressableName(member.name, pathBytes);
  if (name === null) return null;
  const fsPath = (dirFsPath === '/' ? '' : dirFsPath) + '/' + name;
  const stat = statOfListed(member.numbers);
  const entry: Entry = { path: childDavPath(dirPath, name), stat };
  if (props !== 'none') entry.props = propsOfListed(member, props);
  // The exact (BigInt) dev:ino only where it is needed: directories, for Depth: infinity walks.
  const identity = stat.kind === 'directory' ? identityOf(member.stat) : '';
  return { entry, fsPath, identity, isSymlink: member.isSymlink };
}

/** Which xattrs the addon must read for `props`: values only where a property's content is wanted. */
function xattrsFor(props: PropSelection): ListDirectoryOptions['xattrs'] {
  if (props === 'none' || (Array.isArray(props) && props.length === 0)) return 'none';
  return props === 'names' ? 'names' : 'values';
}

/** The member's dead properties from the attributes the addon read, decoded as readDeadProps does. */
function propsOfListed(member: NativeMember, props: PropSelection): DeadProps {
  if (member.xattrs.length === 0) return {};
  const values = new Map<string, Buffer | null>();
  for (const { name, value } of member.xattrs) {
    // Attribute names that are not UTF-8 cannot be named by a DavPath property: they are skipped.
    let attr: string;
    try {
      attr = strictUtf8.decode(name);
    } catch {
      values.set(name.toString('utf8'), null);
      continue;
    }
    values.set(attr, value);
  }
  try {
    return selectDeadProps([...values.keys()], props, (attr) => values.get(attr) ?? null);
  } catch {
    return {}; // an unreadable attribute must not hide the resource
  }
}

/**
 * The members of one directory, stat'ed with bounded concurrency, yielded in directory order.
 * With `unreadableIsEmpty`, a directory that cannot be opened has no members instead of failing.
 */
async function* listMembers(
  dirPath: DavPath,
  dirFsPath: string,
  props: PropSelection,
  unreadableIsEmpty: boolean,
): AsyncGenerator<ListedMember> {
  const pathBytes = Buffer.byteLength(dirPath, 'utf8');
  let dir: fs.Dir;
  try {
    // latin1 maps every byte to one character, so the raw name survives and can be checked.
    dir = await fsp.opendir(dirFsPath, { encoding: 'latin1', bufferSize: 128 });
  } catch (error) {
    if (unreadableIsEmpty) return;
    throw storageError(error);
  }
  const inFlight: Array<Promise<ListedMember | null>> = [];
  try {
    for await (const dirent of dir) {
      const name = addressableName(Buffer.from(dirent.name, 'latin1'), pathBytes);
      if (name === null) continue;
      inFlight.push(statMember(dirPath, dirFsPath, name, dirent.isSymbolicLink(), props));
      if (inFlight.length >= LIST_CONCURRENCY) {
        const member = await inFlight.shift()!;
        if (member !== null) yield member;
      }
    }
    while (inFlight.length > 0) {
      const member = await inFlight.shift()!;
      if (member !== null) yield member;
    }
  } catch (error) {
    throw storageError(error);
  }
}

/** Never rejects: a member that vanished or cannot be stat'ed is left out of the listing. */
async function statMember(
  dirPath: DavPath,
  dirFsPath: string,
  name: string,
  isSymlink: boolean,
  props: PropSelection,
): Promise<ListedMember | null> {
  const fsPath = (dirFsPath === '/' ? '' : dirFsPath) + '/' + name;
  try {
    const stats = fs.statSync(fsPath, { bigint: true });
    const entry = makeEntry(childDavPath(dirPath, name), fsPath, stats, props);
    const identity = entry.stat.kind === 'directory' ? identityOf(stats) : '';
    return { entry, fsPath, identity, isSymlink };
  } catch {
    return null;
  }
}

/** A directory entry's name as a DavPath segment, or null when no DavPath could name it. */
function addressableName(raw: Buffer, parentBytes: number): string | null {
  if (parentBytes + 1 + raw.length > MAX_PATH_BYTES) return null;
  let name: string;
  try {
    name = strictUtf8.decode(raw);
  } catch {
    return null; // not UTF-8: would come back as a different name
  }
  return isValidSegment(name) ? name : null;
}

function makeEntry(path: DavPath, fsPath: string, stats: StatFields, props: PropSelection): Entry {
  const entry: Entry = { path, stat: toStat(stats) };
  if (props !== 'none') {
    try {
      entry.props = readDeadProps(fsPath, props);
    } catch {
      entry.props = {}; // an unreadable attribute must not hide the resource
    }
  }
  return entry;
}

function checkListArguments(depth: Depth, options: ListOptions): void {
  if (depth !== 0 && depth !== 1 && depth !== 'infinity') throw protocolError('bad depth');
  if (!Number.isSafeInteger(options?.limit) || options.limit < 1) throw protocolError('bad limit');
  checkSelection(options.props);
}

function checkSelection(selection: PropSelection): void {
  if (selection === 'none' || selection === 'names' || selection === 'all') return;
  if (Array.isArray(selection) && selection.every((name) => typeof name === 'string')) return;
  throw protocolError('bad property selection');
}

// ---- trees: remove and copy ------------------------------------------------------------------
// These work on Buffer paths so that members whose names are not UTF-8 are removed and copied too.

const SLASH = Buffer.from('/');

function joinBuffer(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

/** A member's DavPath for an error report (lossy for names that are not UTF-8). */
function memberPath(parent: DavPath, name: Buffer): DavPath {
  return childDavPath(parent, name.toString('utf8'));
}

async function readMembers(fsPath: Buffer): Promise<fs.Dirent<Buffer>[]> {
  return fsp.readdir(fsPath, { withFileTypes: true, encoding: 'buffer' });
}

/**
 * Removes everything inside the directory `fsPath`, depth first, going on past failures. Returns
 * the deepest failures only: a member that failed keeps its ancestors, which are then not
 * reported themselves (RFC 4918 §9.6.1).
 */
async function removeMembers(path: DavPath, fsPath: Buffer): Promise<MemberError[]> {
  let members: fs.Dirent<Buffer>[];
  try {
    members = await readMembers(fsPath);
  } catch (error) {
    return [{ path, code: storageError(error).code }];
  }
  const results = await mapBounded(members, TREE_CONCURRENCY, async (member): Promise<MemberError[]> => {
    const childPath = memberPath(path, member.name);
    const childFsPath = joinBuffer(fsPath, member.name);
    try {
      if (member.isDirectory()) {
        const errors = await removeMembers(childPath, childFsPath);
        if (errors.length > 0) return errors;
        await fsp.rmdir(childFsPath);
      } else {
        await fsp.unlink(childFsPath);
      }
      return [];
    } catch (error) {
      return errnoOf(error) === 'ENOENT' ? [] : [{ path: childPath, code: storageError(error).code }];
    }
  });
  return results.flat();
}

/**
 * Copies the resource at `source` (described by `stats`) to the new name `destination`, with its
 * mode and user xattrs. Collections copy their members when depth is 'infinity'; symlinks inside a
 * tree are copied as symlinks (never followed, so a tree copy cannot loop or pull in outside data).
 * Returns the members that could not be copied; throws when the resource itself could not be.
 */
async function copyResource(
  source: string,
  stats: fs.BigIntStats,
  destination: string,
  to: DavPath,
  depth: 0 | 'infinity',
): Promise<MemberError[]> {
  if (stats.isSymbolicLink()) {
    await guard(copySymlink(Buffer.from(source), Buffer.from(destination)));
    return [];
  }
  if (stats.isFile()) {
    await guard(copyFile(Buffer.from(source), Buffer.from(destination)));
    return [];
  }
  if (!stats.isDirectory()) throw new StorageError('EPERM', 'only files and collections can be copied');
  await guard(fsp.mkdir(destination, 0o700));
  copyUserXattrs(source, destination);
  const errors =
    depth === 'infinity' ? await copyMembers(Buffer.from(source), Buffer.from(destination), to) : [];
  await guard(fsp.chmod(destination, Number(stats.mode) & 0o7777));
  return errors;
}

async function copyMembers(source: Buffer, destination: Buffer, to: DavPath): Promise<MemberError[]> {
  let members: fs.Dirent<Buffer>[];
  try {
    members = await readMembers(source);
  } catch (error) {
    return [{ path: to, code: storageError(error).code }];
  }
  const results = await mapBounded(members, TREE_CONCURRENCY, async (member): Promise<MemberError[]> => {
    const childPath = memberPath(to, member.name);
    const from = joinBuffer(source, member.name);
    const into = joinBuffer(destination, member.name);
    try {
      if (member.isSymbolicLink()) await copySymlink(from, into);
      else if (member.isFile()) await copyFile(from, into);
      else if (member.isDirectory()) return await copyDirectory(from, into, childPath);
      else return [{ path: childPath, code: 'EPERM' }]; // FIFOs, sockets, devices are not resources
      return [];
    } catch (error) {
      return [{ path: childPath, code: storageError(error).code }];
    }
  });
  return results.flat();
}

async function copyDirectory(source: Buffer, destination: Buffer, to: DavPath): Promise<MemberError[]> {
  const stats = await fsp.stat(source);
  // Writable while its members arrive; its own mode is applied afterwards (it may be read-only).
  await fsp.mkdir(destination, 0o700);
  copyXattrsIfNamed(source, destination);
  const errors = await copyMembers(source, destination, to);
  await fsp.chmod(destination, stats.mode & 0o7777);
  return errors;
}

async function copyFile(source: Buffer, destination: Buffer): Promise<void> {
  // libuv gives the copy the source's mode; FICLONE shares blocks where the filesystem can.
  await fsp.copyFile(source, destination, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
  copyXattrsIfNamed(source, destination);
}

async function copySymlink(source: Buffer, destination: Buffer): Promise<void> {
  const target = await fsp.readlink(source, { encoding: 'buffer' });
  await fsp.symlink(target, destination);
}

/** The xattr calls take string paths: a name that is not UTF-8 keeps its content but not its xattrs. */
function copyXattrsIfNamed(source: Buffer, destination: Buffer): void {
  let from: string;
  let into: string;
  try {
    from = strictUtf8.decode(source);
    into = strictUtf8.decode(destination);
  } catch {
    return;
  }
  copyUserXattrs(from, into);
}

/** Runs `work` over `items` with at most `limit` at once; results in item order. */
async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  return results;
}

// ---- stat, errors, descriptors ---------------------------------------------------------------

/** What toStat needs: node:fs's BigIntStats, or what the addon's listing reports (same values). */
type StatFields = Pick<
  fs.BigIntStats,
  'dev' | 'ino' | 'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs' | 'ctimeNs' | 'birthtimeNs'
>;

function toStat(stats: StatFields): Stat {
  const kind = kindOf(Number(stats.mode));
  const birthtimeNs = stats.birthtimeNs !== 0n ? stats.birthtimeNs : stats.ctimeNs;
  return {
    kind,
    size: Number(stats.size),
    mtimeMs: nsToMs(stats.mtimeNs),
    birthtimeMs: nsToMs(birthtimeNs),
    etag: `"${stats.ino.toString(16)}-${stats.size.toString(16)}-${stats.mtimeNs.toString(16)}"`,
  };
}

function kindOf(mode: number): Stat['kind'] {
  const type = mode & fs.constants.S_IFMT;
  return type === fs.constants.S_IFREG ? 'file' : type === fs.constants.S_IFDIR ? 'directory' : 'other';
}

/** toStat's result from what the addon computed for a listed member (no BigInt on the way). */
function statOfListed(numbers: ListedNumbers): Stat {
  return {
    kind: kindOf(numbers.mode),
    size: numbers.size,
    mtimeMs: numbers.mtimeMs,
    birthtimeMs: numbers.birthtimeMs,
    etag: numbers.etag,
  };
}

/** Milliseconds with microsecond precision: a double cannot carry nanoseconds since 1970. */
function nsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

/** True when filesystem path `inner` is `outer` or lies below it (both absolute and resolved). */
function isSameOrBelow(outer: string, inner: string): boolean {
  return inner === outer || inner.startsWith(outer === '/' ? '/' : outer + '/');
}

function identityOf(stats: Pick<StatFields, 'dev' | 'ino'>): string {
  return `${stats.dev}:${stats.ino}`;
}

function refuseNonFile(stats: fs.BigIntStats): void {
  if (stats.isDirectory()) throw new StorageError('EISDIR');
  if (!stats.isFile()) throw new StorageError('EPERM', 'not a regular file');
}

// Metadata calls on the hot paths (stat, open, realpath, chmod/chown of an upload, listings) are synchronous on purpose:
// a worker serves one user, so a blocked loop delays only that user's other requests, and a
// local stat costs microseconds where a threadpool round trip costs tens (measured: GET of a 4 KiB
// file, 3 threadpool hops in the worker → 1; a PUT, 6 → 1). Data transfer, fdatasync, link and
// rename (commitUpload) and tree operations stay asynchronous.
async function statOrThrow(fsPath: string): Promise<fs.BigIntStats> {
  try {
    return fs.statSync(fsPath, { bigint: true });
  } catch (error) {
    throw storageError(error);
  }
}

/** null for a missing resource, including one below something that is not a directory. */
async function statOrNull(fsPath: string): Promise<fs.BigIntStats | null> {
  try {
    return fs.statSync(fsPath, { bigint: true });
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw storageError(error);
  }
}

async function lstatOrNull(fsPath: string): Promise<fs.BigIntStats | null> {
  try {
    return fs.lstatSync(fsPath, { bigint: true });
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw storageError(error);
  }
}

async function fstat(fd: number): Promise<fs.BigIntStats> {
  return fs.fstatSync(fd, { bigint: true });
}

/** Adapts a node:fs callback API; used for the descriptor calls fs.promises only offers as FileHandles. */
function call<T = void>(
  start: (done: (error: NodeJS.ErrnoException | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    start((error, value) => (error ? reject(error) : resolve(value as T))),
  );
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

/** `.<name>.privdav-<random>.tmp` beside the target: same filesystem, so rename is atomic. */
function temporaryNameFor(target: string): string {
  const name = basename(target);
  const random = randomBytes(8).toString('hex');
  const stem = Buffer.byteLength(name, 'utf8') <= 200 ? `.${name}.privdav-` : '.privdav-';
  return `${dirname(target)}/${stem}${random}.tmp`;
}

/** The resolved path (libc realpath), as a StorageError when it cannot be resolved. */
function realPathSync(fsPath: string): string {
  try {
    return fs.realpathSync.native(fsPath);
  } catch (error) {
    throw storageError(error);
  }
}

/** Awaits `operation`, turning any failure into a StorageError. */
async function guard<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    throw storageError(error);
  }
}

/**
 * A StorageError carrying only the errno name: node:fs messages contain absolute paths, which
 * must not reach the client beyond what its own request named.
 */
function storageError(error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const converted = StorageError.from(error);
  if (converted.code !== 'INTERNAL') return converted;
  return new StorageError('INTERNAL', errnoOf(error) ?? 'unexpected failure');
}

function protocolError(message: string): StorageError {
  return new StorageError('PROTOCOL', message);
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
