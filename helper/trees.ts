// Trees for LocalStorage: removing and copying a collection member by member, going on past failures
// and reporting the members that failed. Paths are Buffers so that names that are not UTF-8 are handled too.

import * as fs from 'node:fs';
import { StorageError, type DavPath, type MemberError } from '../common/storage';
import { copyUserXattrs } from './dead-props';
import { errnoOf, guard, storageError } from './errno';
import { childDavPath, fromOsPath, osPath, osPathBytes } from './layout';

const fsp = fs.promises;

/** Members removed or copied at once inside one collection. */
const TREE_CONCURRENCY = 16;

const SLASH = Buffer.from('/');

function joinBuffer(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

/** A member's DavPath for an error report (escaped bytes for a name that is not UTF-8). */
function memberPath(parent: DavPath, name: Buffer): DavPath {
  return childDavPath(parent, fromOsPath(name));
}

async function readMembers(fsPath: Buffer): Promise<fs.Dirent<Buffer>[]> {
  return fsp.readdir(fsPath, { withFileTypes: true, encoding: 'buffer' });
}

/**
 * Removes everything inside the directory `fsPath`, depth first, going on past failures. Returns
 * the deepest failures only: a member that failed keeps its ancestors, which are then not
 * reported themselves (RFC 4918 §9.6.1).
 */
export async function removeMembers(path: DavPath, fsPath: Buffer): Promise<MemberError[]> {
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
export async function copyResource(
  source: string,
  stats: fs.BigIntStats,
  destination: string,
  to: DavPath,
  depth: 0 | 'infinity',
): Promise<MemberError[]> {
  if (stats.isSymbolicLink()) {
    await guard(copySymlink(osPathBytes(source), osPathBytes(destination)));
    return [];
  }
  if (stats.isFile()) {
    await guard(copyFile(osPathBytes(source), osPathBytes(destination)));
    return [];
  }
  if (!stats.isDirectory()) throw new StorageError('EPERM', 'only files and collections can be copied');
  await guard(fsp.mkdir(osPath(destination), 0o700));
  copyUserXattrs(source, destination);
  const errors =
    depth === 'infinity' ? await copyMembers(osPathBytes(source), osPathBytes(destination), to) : [];
  await guard(fsp.chmod(osPath(destination), Number(stats.mode) & 0o7777));
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
  copyXattrsBetween(source, destination);
  const errors = await copyMembers(source, destination, to);
  await fsp.chmod(destination, stats.mode & 0o7777);
  return errors;
}

async function copyFile(source: Buffer, destination: Buffer): Promise<void> {
  // libuv gives the copy the source's mode; FICLONE shares blocks where the filesystem can.
  await fsp.copyFile(source, destination, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
  copyXattrsBetween(source, destination);
}

async function copySymlink(source: Buffer, destination: Buffer): Promise<void> {
  const target = await fsp.readlink(source, { encoding: 'buffer' });
  await fsp.symlink(target, destination);
}

/** copyUserXattrs for Buffer paths (dead-props.ts takes paths in the escaped form). */
function copyXattrsBetween(source: Buffer, destination: Buffer): void {
  copyUserXattrs(fromOsPath(source), fromOsPath(destination));
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
