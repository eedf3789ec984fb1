// LocalStorage: the Storage interface done with node:fs in the calling process. The worker runs it
// as the authenticated user (the kernel enforces permissions); non-root mode and the protocol core's
// tests use it directly. Every DavPath goes through resolvePath (helper/layout.ts) first.

import * as fs from 'node:fs';
import { basename } from 'node:path';
import {
  StorageError,
  type DavPath,
  type Depth,
  type Entry,
  type ListOptions,
  type MemberError,
  type OpenedFile,
  type PropPatchOp,
  type PutResult,
  type Space,
  type Stat,
  type Storage,
  type Times,
  type TransferOptions,
  type TransferResult,
  type Upload,
} from '../common/storage';
import { listDirectoryAsWire, openForRead } from '../native/index';
import { MAX_INLINE_BYTES } from '../common/storage-protocol';
import { patchDeadProps } from './dead-props';
import { errnoOf, guard, protocolError, storageError } from './errno';
import {
  identityOf,
  lstatOrNull,
  nsToMs,
  realPathOf,
  realPathSync,
  refuseNonFile,
  statOrNull,
  statOrThrow,
  toStat,
} from './file-stat';
import {
  batchMembersFor,
  checkListArguments,
  listedMember,
  listMembers,
  makeEntry,
  mayListAtOnce,
  SMALL_DIRECTORY_BYTES,
  SMALL_DIRECTORY_MEMBERS,
  xattrsFor,
} from './listing';
import { spaceOf } from './space';
import { removeTemporary, releaseTemporary, replaceWith, temporaryBeside } from './replace';
import { copyResource, removeMembers } from './trees';
import { mayHaveOtherSpelling, storedSpelling } from './unicode-names';
import { LocalUpload } from './upload';
import {
  childDavPath,
  isSameOrInside,
  MAX_PATH_BYTES,
  MAX_SEGMENT_BYTES,
  osPath,
  osPathBytes,
  parentDavPath,
  resolvePath,
  shareRootOf,
  type LayoutConfig,
} from './layout';
import { wireRunOf, type WireRun } from '../common/protocol';
import { nameByteLength } from '../common/name-bytes';
import { CONTENT_TYPE_PAIRS } from '../common/content-types';

export type { LayoutConfig } from './layout';
export { isRemoteFilesystem, mayListAtOnce } from './listing';

export interface LocalStorageOptions {
  layout: LayoutConfig;
  /** fdatasync an upload before it replaces the target (default true). */
  durable?: boolean;
}

const fsp = fs.promises;

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
      return await realPathOf(fsPath);
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
      for await (const member of listMembers(dir.path, dir.fsPath, props, next > 0, options.limit - count)) {
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
    const pathBytes = nameByteLength(path);
    const room = options.limit - count;
    const wireOptions = {
      xattrs: xattrsFor(props),
      batchMembers: batchMembersFor(room),
      // A small directory on a local filesystem is read here and now (two thread wake-ups cost
      // more than its listing); if it turns out bigger than its size said, the rest comes in
      // batches from the threadpool.
      firstBatchNow:
        root.size <= SMALL_DIRECTORY_BYTES && mayListAtOnce(fsPath)
          ? batchMembersFor(room, SMALL_DIRECTORY_MEMBERS)
          : 0,
      prefix: JSON.stringify(childDavPath(path, '')).slice(0, -1),
      maxNameBytes: Math.max(0, Math.min(MAX_SEGMENT_BYTES, MAX_PATH_BYTES - pathBytes - 1)),
      props: props !== 'none',
      maxRunEntries: bounds.entries,
      maxRunBytes: bounds.bytes,
      xml:
        options.render === undefined || props === 'names'
          ? undefined
          : {
              file: options.render.file,
              directory: options.render.directory,
              hide: options.render.hide,
              types: [...CONTENT_TYPE_PAIRS],
            },
    };
    const xml = wireOptions.xml !== undefined;
    try {
      for await (const batch of listDirectoryAsWire(osPath(fsPath), wireOptions)) {
        for (const item of batch) {
          if (item.member === undefined) {
            counted(item.count);
            yield xml ? { text: item.text, count: item.count, xml } : item;
            continue;
          }
          const member = listedMember(item.member, path, fsPath, props, pathBytes);
          if (member === null) continue;
          counted(1);
          yield wireRunOf(member.entry);
        }
      }
    } catch (error) {
      throw storageError(error);
    }
  }

  async openRead(path: DavPath): Promise<OpenedFile> {
    const fsPath = this.#resolve(path);
    // One addon call: the path stat'ed first so that a FIFO or a device is never opened (opening
    // a FIFO blocks), then opened, then the descriptor checked, since that is what the caller reads.
    let opened;
    try {
      opened = openForRead(osPath(fsPath));
    } catch (error) {
      throw storageError(error);
    }
    if (opened.kind === 'directory') throw new StorageError('EISDIR');
    if (opened.kind !== 'file') throw new StorageError('EPERM', 'not a regular file');
    const { fd, size, mtimeMs, birthtimeMs, etag } = opened;
    return { fd, stat: { kind: 'file', size, mtimeMs, birthtimeMs, etag } };
  }

  async openWrite(path: DavPath): Promise<Upload> {
    return this.#openUpload(path, false);
  }

  async putSmall(path: DavPath, content: Buffer, options: { mtimeMs?: number }): Promise<PutResult> {
    if (content.length > MAX_INLINE_BYTES) throw protocolError('putSmall content too large');
    const { mtimeMs } = options;
    if (mtimeMs !== undefined && !Number.isFinite(mtimeMs))
      throw protocolError('mtime must be a finite number');
    const upload = await this.#openUpload(path, true);
    try {
      // Synchronous: at most 64 KiB into the page cache costs less than a threadpool trip, and the
      // fdatasync that may wait for the disk runs in commit's threadpool job.
      writeAllSync(upload.fd, content);
      if (mtimeMs !== undefined) fs.futimesSync(upload.fd, Date.now() / 1000, mtimeMs / 1000);
    } catch (error) {
      await upload.abort();
      throw storageError(error);
    }
    const stat = await upload.commit(content.length);
    return { stat, created: upload.existing === null };
  }

  /**
   * `inOneCall`: the upload is written and committed within this call (putSmall). An upload that
   * streams (openWrite) replaces the file its preconditions and locks were judged on, so an
   * existing target is pinned to its real path at open: a symlinked folder re-pointed during the
   * transfer must not move the replace elsewhere.
   */
  async #openUpload(path: DavPath, inOneCall: boolean): Promise<LocalUpload> {
    const fsPath = this.#resolve(path);
    if (inOneCall) {
      // Most targets are no symlink: one lstat (not stat + realpath), and the path as it is. The
      // web process sends putSmall without conditional headers, and judged locks (as for every
      // write) before this call: a symlinked folder re-pointed within it is the same as one
      // re-pointed just before it.
      const own = await lstatOrNull(fsPath);
      if (own !== null && !own.isSymbolicLink()) {
        refuseNonFile(own);
        return LocalUpload.open(fsPath, toStat(own), this.#durable);
      }
    }
    const existing = await statOrNull(fsPath);
    if (existing !== null) refuseNonFile(existing);
    // Writing through the user's symlink replaces the file it points to, not the link (a dangling
    // link is replaced itself).
    const target = existing === null ? fsPath : realPathSync(fsPath);
    return LocalUpload.open(target, existing === null ? null : toStat(existing), this.#durable);
  }

  async mkcol(path: DavPath): Promise<void> {
    const fsPath = this.#resolve(path);
    await guard(fsp.mkdir(osPath(fsPath), 0o777));
  }

  async remove(path: DavPath): Promise<MemberError[]> {
    const fsPath = this.#resolve(path);
    if (this.#isShareRoot(path)) throw new StorageError('EPERM', 'a share root cannot be removed');
    const stats = await guard(fsp.lstat(osPath(fsPath), { bigint: true }));
    if (!stats.isDirectory()) {
      await guard(fsp.unlink(osPath(fsPath)));
      return [];
    }
    const errors = await removeMembers(path, osPathBytes(fsPath));
    if (errors.length === 0) await guard(fsp.rmdir(osPath(fsPath)));
    return errors;
  }

  async copy(from: DavPath, to: DavPath, options: TransferOptions): Promise<TransferResult> {
    const source = this.#resolve(from);
    const destination = this.#resolve(to);
    if (options?.depth !== 0 && options?.depth !== 'infinity') throw protocolError('bad copy depth');
    const stats = await statOrThrow(source); // a symlink copies what it points to
    await this.#refuseOverlap(from, to, stats, await guard(realPathOf(source)));
    const existing = await lstatOrNull(destination);
    if (existing !== null) {
      // RFC 4918 §9.8.4: replaced only with Overwrite: T.
      if (options.overwrite !== true) throw new StorageError('EEXIST');
      if (this.#isShareRoot(to)) throw new StorageError('EPERM', 'a share root cannot be replaced');
    }
    // Built under a reserved name beside the destination and put in place at once (helper/replace.ts):
    // a crash midway leaves the old destination (or none) and a hidden leftover, never a half copy.
    const temporary = temporaryBeside(destination, 'new');
    try {
      const errors = await copyResource(source, stats, temporary, to, options.depth);
      errors.push(...(await guard(replaceWith(temporary, destination, existing, stats.isDirectory(), to))));
      return { created: existing === null, errors };
    } catch (error) {
      await removeTemporary(temporary);
      throw error;
    } finally {
      releaseTemporary(temporary);
    }
  }

  async move(from: DavPath, to: DavPath, options: Omit<TransferOptions, 'depth'>): Promise<TransferResult> {
    const source = this.#resolve(from);
    const destination = this.#resolve(to);
    if (this.#isShareRoot(from) || this.#isShareRoot(to)) {
      throw new StorageError('EPERM', 'a share root cannot be moved or replaced');
    }
    const stats = await guard(fsp.lstat(osPath(source), { bigint: true })); // a symlink moves as itself
    await this.#refuseOverlap(from, to, stats, await this.#entryLocation(from));
    const destinationStats = await lstatOrNull(destination);
    if (destinationStats !== null && options?.overwrite !== true) throw new StorageError('EEXIST');
    const created = destinationStats === null;
    try {
      // rename(2) replaces a file atomically; a collection on either side is set aside first.
      const errors = await replaceWith(source, destination, destinationStats, stats.isDirectory(), to);
      // rename(2) between two hard links of one file does nothing: finish the move by hand.
      if (destinationStats !== null && identityOf(destinationStats) === identityOf(stats)) {
        await guard(fsp.unlink(osPath(source)));
      }
      return { created, errors };
    } catch (error) {
      if (errnoOf(error) === 'EINVAL')
        throw new StorageError('BAD_PATH', 'cannot move a collection into itself');
      if (errnoOf(error) !== 'EXDEV') throw storageError(error);
    }
    // Another filesystem: copy as the user under a reserved name beside the destination, put it in
    // place once every member arrived, and only then delete the source.
    const temporary = temporaryBeside(destination, 'new');
    try {
      const errors = await copyResource(source, stats, temporary, to, 'infinity');
      if (errors.length > 0) {
        await removeTemporary(temporary);
        return { created, errors };
      }
      const current = await lstatOrNull(destination);
      const left = await guard(replaceWith(temporary, destination, current, stats.isDirectory(), to));
      // The new resource is in place: the move is finished, and the 207 names what was not removed.
      left.push(...(await this.remove(from)));
      return { created, errors: left };
    } catch (error) {
      await removeTemporary(temporary);
      throw error;
    } finally {
      releaseTemporary(temporary);
    }
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
      fs.accessSync(osPath(this.#resolve(path)), fs.constants.W_OK);
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
    await guard(fsp.utimes(osPath(fsPath), atime / 1000, mtime / 1000));
  }

  async space(path: DavPath): Promise<Space> {
    return spaceOf(this.#resolve(path));
  }

  #resolve(path: DavPath): string {
    const fsPath = resolvePath(this.#layout, path);
    if (!mayHaveOtherSpelling(path)) return fsPath;
    return storedSpelling(fsPath, resolvePath(this.#layout, shareRootOf(this.#layout, path)));
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
    if (this.#isShareRoot(path)) return guard(realPathOf(this.#resolve(path)));
    const parent = await this.realPath(parentDavPath(path));
    return (parent === '/' ? '' : parent) + '/' + basename(this.#resolve(path));
  }
}

/** True when filesystem path `inner` is `outer` or lies below it (both absolute and resolved). */
function isSameOrBelow(outer: string, inner: string): boolean {
  return inner === outer || inner.startsWith(outer === '/' ? '/' : outer + '/');
}

/** Writes all of `content` at offset 0; a short write continues where it stopped. */
function writeAllSync(fd: number, content: Buffer): void {
  let written = 0;
  while (written < content.length) {
    const bytes = fs.writeSync(fd, content, written, content.length - written, written);
    if (bytes === 0) throw new StorageError('EIO', 'write made no progress');
    written += bytes;
  }
}
