// Listing for LocalStorage: the members of one directory, read by the addon in batches over one open
// directory, as Entries; which directories are listed on the worker's own thread.

import * as fs from 'node:fs';
import {
  type DavPath,
  type DeadProps,
  type Depth,
  type Entry,
  type ListOptions,
  type PropSelection,
} from '../common/storage';
import { listDirectory, type ListDirectoryOptions, type ListedMember as NativeMember } from '../native/index';
import { readDeadProps, selectDeadProps } from './dead-props';
import { protocolError, storageError } from './errno';
import { identityOf, statOfListed, toStat, type StatFields } from './file-stat';
import { childDavPath, fromOsPath, isValidSegment, MAX_PATH_BYTES, osPath } from './layout';
import { nameByteLength, strictUtf8 } from '../common/name-bytes';

/**
 * The most members the addon reads in one batch (a batch also ends at 4 MiB): few enough that a
 * listing's memory stays small and its first entries go out early, enough that the threadpool
 * round trips cost nothing beside the reading.
 */
const LIST_BATCH_MEMBERS = 4096;
/**
 * Directories up to this size (st_size; on ext4 about 300 short names) are listed by the worker's
 * own thread, up to SMALL_DIRECTORY_MEMBERS members; bigger ones on the threadpool, where several
 * listings proceed in parallel and the worker keeps answering meanwhile.
 */
export const SMALL_DIRECTORY_BYTES = 12_288n;
export const SMALL_DIRECTORY_MEMBERS = 512;
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
    return !isRemoteFilesystem(fs.statfsSync(osPath(fsPath)).type);
  } catch {
    return false;
  }
}

/**
 * Members per batch for a listing with `room` entries left under its limit: past room + 1 the
 * listing fails anyway (the limit is counted exactly, over addressable names, as they are made).
 */
export function batchMembersFor(room: number, batchMembers = LIST_BATCH_MEMBERS): number {
  return Math.max(1, Math.min(batchMembers, room + 1));
}

export interface ListedMember {
  entry: Entry;
  fsPath: string;
  /** dev:ino of a directory (to enter each once); '' for anything else. */
  identity: string;
  isSymlink: boolean;
}

/**
 * The members of one directory, read by the addon in batches on the threadpool (readdir, stat and
 * the dead-property xattrs of each member), in directory order; names no DavPath can carry are
 * left out. With `unreadableIsEmpty`, a directory that cannot be opened has no members instead of
 * failing. `room`: how many entries the listing may still take (it reads little past that).
 */
export async function* listMembers(
  dirPath: DavPath,
  dirFsPath: string,
  props: PropSelection,
  unreadableIsEmpty: boolean,
  room: number,
): AsyncGenerator<ListedMember> {
  const pathBytes = nameByteLength(dirPath);
  const listed = listDirectory(osPath(dirFsPath), {
    xattrs: xattrsFor(props),
    batchMembers: batchMembersFor(room),
  });
  try {
    for await (const batch of listed) {
      for (const member of batch) {
        const listedOne = listedMember(member, dirPath, dirFsPath, props, pathBytes);
        if (listedOne !== null) yield listedOne;
      }
    }
  } catch (error) {
    if (unreadableIsEmpty && (error as NodeJS.ErrnoException).syscall === 'opendir') return;
    throw storageError(error);
  }
}

/** The entry of one member the addon listed, or null when its name cannot be a DavPath segment. */
export function listedMember(
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
export function xattrsFor(props: PropSelection): ListDirectoryOptions['xattrs'] {
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
 * A directory entry's name as a DavPath segment (bytes that are not UTF-8 escaped, so the href
 * names exactly these bytes), or null when no DavPath could name it.
 */
function addressableName(raw: Buffer, parentBytes: number): string | null {
  if (parentBytes + 1 + raw.length > MAX_PATH_BYTES) return null;
  const name = fromOsPath(raw);
  return isValidSegment(name) ? name : null;
}

export function makeEntry(path: DavPath, fsPath: string, stats: StatFields, props: PropSelection): Entry {
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

export function checkListArguments(depth: Depth, options: ListOptions): void {
  if (depth !== 0 && depth !== 1 && depth !== 'infinity') throw protocolError('bad depth');
  if (!Number.isSafeInteger(options?.limit) || options.limit < 1) throw protocolError('bad limit');
  checkSelection(options.props);
}

export function checkSelection(selection: PropSelection): void {
  if (selection === 'none' || selection === 'names' || selection === 'all') return;
  if (Array.isArray(selection) && selection.every((name) => typeof name === 'string')) return;
  throw protocolError('bad property selection');
}
