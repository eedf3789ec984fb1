// PUT: the body is streamed into the temporary file storage opened and committed atomically;
// any failure on the way (client gone, too large, a refused precondition) aborts the upload.
import * as fs from 'node:fs';
import { pipeline } from 'node:stream';
import type * as http from 'node:http';
import { StorageError, type Upload } from '../../storage/storage';
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
    await writeBody(req, upload.fd, maxBytes);
  } catch (error) {
    await upload.abort().catch(ignoreError);
    throw error;
  }
  let stat;
  try {
    stat = await upload.commit();
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
function writeBody(req: http.IncomingMessage, fd: number, maxBytes: number): Promise<void> {
  const file = fs.createWriteStream('', { fd, start: 0, autoClose: false, highWaterMark: 1024 * 1024 });
  if (maxBytes > 0 && req.headers['content-length'] === undefined) {
    // A chunked body has no declared length: count as it arrives.
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes && !file.destroyed)
        file.destroy(new DavError(413, 'upload larger than the configured maximum'));
    });
  }
  let fileError: unknown = null;
  file.on('error', (error) => {
    fileError ??= error;
  });
  return new Promise<void>((resolve, reject) => {
    pipeline(req, file, (error) => {
      if (!error) resolve();
      else if (fileError instanceof DavError) reject(fileError);
      else if (fileError !== null)
        reject(StorageError.from(fileError)); // ENOSPC, EDQUOT, EIO…
      else reject(new DavError(400, 'request body incomplete'));
    });
  });
}
