// Stat helpers for LocalStorage: node:fs stats (or the addon's listed numbers) as the protocol's Stat,
// and the stat calls that turn failures into StorageErrors.

import * as fs from 'node:fs';
import { StorageError, type Stat } from '../common/storage';
import { type ListedNumbers } from '../native/index';
import { errnoOf, storageError } from './errno';
import { fromOsPath, osPath } from './layout';

/** What toStat needs: node:fs's BigIntStats, or what the addon's listing reports (same values). */
export type StatFields = Pick<
  fs.BigIntStats,
  'dev' | 'ino' | 'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs' | 'ctimeNs' | 'birthtimeNs'
>;

export function toStat(stats: StatFields): Stat {
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

export function kindOf(mode: number): Stat['kind'] {
  const type = mode & fs.constants.S_IFMT;
  return type === fs.constants.S_IFREG ? 'file' : type === fs.constants.S_IFDIR ? 'directory' : 'other';
}

/** toStat's result from what the addon computed for a listed member (no BigInt on the way). */
export function statOfListed(numbers: ListedNumbers): Stat {
  return {
    kind: kindOf(numbers.mode),
    size: numbers.size,
    mtimeMs: numbers.mtimeMs,
    birthtimeMs: numbers.birthtimeMs,
    etag: numbers.etag,
  };
}

/** Milliseconds with microsecond precision: a double cannot carry nanoseconds since 1970. */
export function nsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

export function identityOf(stats: Pick<StatFields, 'dev' | 'ino'>): string {
  return `${stats.dev}:${stats.ino}`;
}

export function refuseNonFile(stats: fs.BigIntStats): void {
  if (stats.isDirectory()) throw new StorageError('EISDIR');
  if (!stats.isFile()) throw new StorageError('EPERM', 'not a regular file');
}

// Metadata calls on the hot paths (stat, open, realpath, chmod/chown of an upload, listings) are synchronous on purpose:
// a worker serves one user, so a blocked loop delays only that user's other requests, and a
// local stat costs microseconds where a threadpool round trip costs tens (measured: GET of a 4 KiB
// file, 3 threadpool hops in the worker → 1; a PUT, 6 → 1). Data transfer, fdatasync, link and
// rename (commitUpload) and tree operations stay asynchronous.
export async function statOrThrow(fsPath: string): Promise<fs.BigIntStats> {
  try {
    return fs.statSync(osPath(fsPath), { bigint: true });
  } catch (error) {
    throw storageError(error);
  }
}

/** null for a missing resource, including one below something that is not a directory. */
export async function statOrNull(fsPath: string): Promise<fs.BigIntStats | null> {
  try {
    return fs.statSync(osPath(fsPath), { bigint: true });
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw storageError(error);
  }
}

export async function lstatOrNull(fsPath: string): Promise<fs.BigIntStats | null> {
  try {
    return fs.lstatSync(osPath(fsPath), { bigint: true });
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw storageError(error);
  }
}

export async function fstat(fd: number): Promise<fs.BigIntStats> {
  return fs.fstatSync(fd, { bigint: true });
}

/** realpath(3) of `fsPath`, in the escaped form (a string answer would turn those bytes into U+FFFD). */
export async function realPathOf(fsPath: string): Promise<string> {
  return fromOsPath(await fs.promises.realpath(osPath(fsPath), { encoding: 'buffer' }));
}

/** The resolved path (libc realpath), as a StorageError when it cannot be resolved. */
export function realPathSync(fsPath: string): string {
  try {
    return fromOsPath(fs.realpathSync.native(osPath(fsPath), { encoding: 'buffer' }));
  } catch (error) {
    throw storageError(error);
  }
}
