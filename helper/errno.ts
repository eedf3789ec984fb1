// node:fs failures as StorageErrors for LocalStorage: the errno name only (never a message with a
// path), and the quiet close of a descriptor nobody will use again.

import * as fs from 'node:fs';
import { StorageError } from '../common/storage';

export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

/** Awaits `operation`, turning any failure into a StorageError. */
export async function guard<T>(operation: Promise<T>): Promise<T> {
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
export function storageError(error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const converted = StorageError.from(error);
  if (converted.code !== 'INTERNAL') return converted;
  return new StorageError('INTERNAL', errnoOf(error) ?? 'unexpected failure');
}

export function protocolError(message: string): StorageError {
  return new StorageError('PROTOCOL', message);
}

export function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
