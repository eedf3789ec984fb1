// PUT: the body is streamed into the temporary file storage opened and committed atomically;
// any failure on the way (client gone, too large, a refused precondition) aborts the upload.
import * as fs from 'node:fs';
import type * as http from 'node:http';
import { StorageError, type Upload } from '../../../common/storage';
import { checkPreconditions } from '../conditional';
import { DavError } from '../errors';
import { authorizeWrite } from '../locks';
import { sendEmpty, type DavRequest } from '../request';

export async function handlePut(request: DavRequest): Promise<void> {
  const { req, res, target } = request;
  // A partial PUT would be taken for the whole new content (RFC 9110 §14.5): refuse it.
  if (req.headers['content-range'] !== undefined)
    throw new DavError(400, 'Content-Range is not allowed on PUT');
  const maxBytes = request.limits.maxUploadBytes;
  const declared = req.headers['content-length'];
  if (maxBytes > 0 && declared !== undefined && Number(declared) > maxBytes) {
    throw new DavError(413, 'upload larger than the configured maximum');
  }
  if (target.path === '/') throw new DavError(405, 'cannot PUT onto a collection');

  let upload: Upload;
  let written: number;
  try {
    upload = await request.storage.openWrite(target.path);
  } catch (error) {
    throw putOpenError(error);
  }
  try {
    const existing = upload.existing;
    if (existing !== null && existing.kind === 'directory')
      throw new DavError(405, 'cannot PUT onto a collection');
    checkPreconditions(req, existing, false);
    await authorizeWrite(request, [{ path: target.path, membership: existing === null, tree: false }]);
    written = await writeBody(req, upload.fd, maxBytes);
  } catch (error) {
    await upload.abort().catch(ignoreError);
    throw error;
  }
  let stat;
  try {
    // Storage checks that the file holds exactly the bytes sent before it replaces the target.
    stat = await upload.commit(written);
  } catch (error) {
    await upload.abort().catch(ignoreError);
    throw error;
  }
  sendEmpty(res, upload.existing === null ? 201 : 204, { ETag: stat.etag });
}

function ignoreError(): void {}

function putOpenError(error: unknown): unknown {
  if (error instanceof StorageError) {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') {
      return new DavError(409, 'the parent collection does not exist');
    }
    if (error.code === 'EISDIR') return new DavError(405, 'cannot PUT onto a collection');
  }
  return error;
}

/** Streams the request body into fd (positional writes from 0); the fd stays open for commit. */
/**
 * Streams the request body into the temporary file with explicit positions, batching what
 * arrives while a write is in flight into one writev. Every short write is continued at the
 * right offset — Node 20's WriteStream with `start` retries a short write at the wrong position,
 * which near a full disk left holes and let a PUT that should get 507 succeed. Resolves to the
 * number of bytes written.
 */
function writeBody(req: http.IncomingMessage, fd: number, maxBytes: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let position = 0;
    let received = 0;
    let queued: Buffer[] = [];
    let queuedBytes = 0;
    let writing = false;
    let ended = false;
    let failed = false;
    const fail = (error: unknown): void => {
      if (failed) return;
      failed = true;
      req.off('data', onData);
      // Drain what is left so the connection stays usable for the error response.
      req.resume();
      reject(error instanceof DavError ? error : StorageError.from(error));
    };
    const flush = (): void => {
      if (writing || failed) return;
      if (queued.length === 0) {
        if (ended) resolve(position);
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
