// What PUT, PATCH and partial PUT share: streaming the request body into the upload's temporary
// file, and the statuses for an upload that cannot be opened.
import * as fs from 'node:fs';
import type * as http from 'node:http';
import { StorageError, type Upload } from '../../common/storage';
import { DavError } from './errors';

export function ignoreError(): void {}

/** openWrite failures in PUT terms. */
export function putOpenError(error: unknown): unknown {
  if (error instanceof StorageError) {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') {
      return new DavError(409, 'the parent collection does not exist');
    }
    if (error.code === 'EISDIR') return new DavError(405, 'cannot PUT onto a collection');
  }
  return error;
}

/**
 * Streams the request body into the temporary file with explicit positions, batching what
 * arrives while a write is in flight into one writev. Every short write is continued at the
 * right offset — Node 20's WriteStream with `start` retries a short write at the wrong position,
 * which near a full disk left holes and let a PUT that should get 507 succeed. Writes from
 * `start`; the fd stays open for commit. Resolves to the number of bytes written. When the upload
 * is lost (its worker died) it fails at once with 503 and reads no more of the body: the caller's
 * error response closes the connection instead of draining what may be gigabytes.
 */
export function writeBody(
  req: http.IncomingMessage,
  upload: Pick<Upload, 'fd' | 'lost'>,
  maxBytes: number,
  start: number,
): Promise<number> {
  const { fd, lost } = upload;
  return new Promise<number>((resolve, reject) => {
    let position = start;
    let received = 0;
    let queued: Buffer[] = [];
    let queuedBytes = 0;
    let writing = false;
    let ended = false;
    let failed = false;
    const fail = (error: unknown, drain = true): void => {
      if (failed) return;
      failed = true;
      req.off('data', onData);
      lost?.removeEventListener('abort', onLost);
      // Drain what is left so the connection stays usable for the error response.
      if (drain) req.resume();
      else req.pause();
      reject(error instanceof DavError ? error : StorageError.from(error));
    };
    const onLost = (): void => fail(DavError.unavailable('the storage holding the upload went away'), false);
    const flush = (): void => {
      if (writing || failed) return;
      if (queued.length === 0) {
        if (ended) {
          lost?.removeEventListener('abort', onLost);
          resolve(position - start);
        }
        return;
      }
      const buffers = queued;
      const bytes = queuedBytes;
      queued = [];
      queuedBytes = 0;
      writing = true;
      writeFully(fd, buffers, position).then(() => {
        position += bytes;
        writing = false;
        if (req.isPaused() && !failed) req.resume();
        flush();
      }, fail);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (maxBytes > 0 && received > maxBytes) {
        fail(new DavError(413, 'upload larger than the configured maximum'));
        return;
      }
      queued.push(chunk);
      queuedBytes += chunk.length;
      if (queuedBytes >= MAX_QUEUED_BYTES) req.pause();
      flush();
    };
    if (lost?.aborted === true) return onLost();
    lost?.addEventListener('abort', onLost, { once: true });
    req.on('data', onData);
    req.on('end', () => {
      ended = true;
      flush();
    });
    req.on('error', () => fail(new DavError(400, 'request body incomplete')));
    req.on('close', () => {
      if (!req.complete) fail(new DavError(400, 'request body incomplete'));
    });
  });
}

const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/** writev until every byte is on disk at `position`; a short write continues where it stopped. */
async function writeFully(fd: number, buffers: Buffer[], position: number): Promise<void> {
  let remaining = buffers;
  while (remaining.length > 0) {
    const written = await new Promise<number>((resolve, reject) =>
      fs.writev(fd, remaining, position, (error, bytes) => (error ? reject(error) : resolve(bytes))),
    );
    if (written === 0) throw new StorageError('EIO', 'write made no progress');
    position += written;
    remaining = skipBytes(remaining, written);
  }
}

function skipBytes(buffers: Buffer[], count: number): Buffer[] {
  let index = 0;
  while (index < buffers.length && count >= buffers[index]!.length) count -= buffers[index++]!.length;
  const rest = buffers.slice(index);
  if (count > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(count);
  return rest;
}
