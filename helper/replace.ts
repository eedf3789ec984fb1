// Atomic replace for COPY and MOVE with Overwrite: T: the old destination is renamed aside under a
// reserved name (common/names.ts) and removed only once the new resource is in its place, so a
// crash leaves the old or the new, never a mix; leftovers of a crash are removed at the next replace.

import * as fs from 'node:fs';
import { basename, dirname } from 'node:path';
import { TRANSFER_TEMPORARY_NAME } from '../common/names';
import type { DavPath, MemberError } from '../common/storage';
import { osPath, osPathBytes } from './layout';
import { randomNamePart } from './random-names';
import { removeMembers } from './trees';

const fsp = fs.promises;

/**
 * Temporaries this worker is using right now: a sweep of the directory must not remove the copy
 * another request is still building, or the old destination another replace is about to remove.
 */
const inUse = new Set<string>();

/** A fresh reserved name beside `fsPath` (same directory, so renames stay on one filesystem). */
export function temporaryBeside(fsPath: string, kind: 'old' | 'new'): string {
  const temporary = `${dirname(fsPath)}/.privdav-${kind}-${randomNamePart()}`;
  inUse.add(temporary);
  return temporary;
}

/** Ends the use of a temporary name (after it was renamed away or removed). */
export function releaseTemporary(temporary: string): void {
  inUse.delete(temporary);
}

/**
 * Puts `replacement` (a temporary or the source of a MOVE) at `destination`. An existing
 * destination that rename(2) cannot replace by itself in one step (a collection on either side) is
 * renamed aside first and put back if the rename fails. Once the new resource is in place, the old
 * one and any leftover temporaries in the directory are removed. Returns the old destination's
 * members that could not be removed, named under `reportAs` (the destination's DavPath) for the
 * 207: they stay hidden for the next sweep. Throws what rename(2) threw (an errno error).
 */
export async function replaceWith(
  replacement: string,
  destination: string,
  destinationStats: fs.BigIntStats | null,
  replacementIsDirectory: boolean,
  reportAs: DavPath,
): Promise<MemberError[]> {
  const needsAside = destinationStats !== null && (destinationStats.isDirectory() || replacementIsDirectory);
  if (!needsAside) {
    await fsp.rename(osPath(replacement), osPath(destination));
    return [];
  }
  const aside = temporaryBeside(destination, 'old');
  try {
    await fsp.rename(osPath(destination), osPath(aside));
    try {
      await fsp.rename(osPath(replacement), osPath(destination));
    } catch (error) {
      await fsp.rename(osPath(aside), osPath(destination)).catch(() => undefined);
      throw error;
    }
  } catch (error) {
    releaseTemporary(aside);
    throw error;
  }
  const errors = await removeTemporary(aside, reportAs);
  releaseTemporary(aside);
  await sweepTemporaries(dirname(destination));
  return errors;
}

/**
 * Removes the reserved temporaries in `directory` that no request of this worker is using: the old
 * destination just set aside, and what a killed worker left. Bounded by one listing of the
 * directory, done only when a collection was replaced in it.
 */
export async function sweepTemporaries(directory: string): Promise<void> {
  let names: string[];
  try {
    // Reserved names are ASCII: a name that is not UTF-8 (read as U+FFFD here) is never one.
    names = await fsp.readdir(osPath(directory));
  } catch {
    return;
  }
  for (const name of names) {
    const fsPath = `${directory}/${name}`;
    if (!TRANSFER_TEMPORARY_NAME.test(name) || inUse.has(fsPath)) continue;
    await removeTemporary(fsPath);
  }
}

/**
 * Removes a temporary tree (or file) as far as possible and returns the members that could not be
 * removed (named below `reportAs`); they stay for the next sweep, reserved, so never listed meanwhile.
 */
export async function removeTemporary(
  fsPath: string,
  reportAs: DavPath = '/' + basename(fsPath),
): Promise<MemberError[]> {
  try {
    const stats = await fsp.lstat(osPath(fsPath));
    if (!stats.isDirectory()) {
      await fsp.unlink(osPath(fsPath));
      return [];
    }
    const errors = await removeMembers(reportAs, osPathBytes(fsPath));
    if (errors.length === 0) await fsp.rmdir(osPath(fsPath));
    return errors;
  } catch {
    return [];
  }
}
