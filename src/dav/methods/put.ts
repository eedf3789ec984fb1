// PUT: the body is streamed into the temporary file storage opened and committed atomically;
// any failure on the way (client gone, too large, a refused precondition) aborts the upload.
import type * as http from 'node:http';
import type { Upload } from '../../../common/storage';
import { checkPreconditions } from '../conditional';
import { DavError } from '../errors';
import { authorizeWrite } from '../locks';
import { parentPath } from '../paths';
import { headerValue, sendEmpty, type DavRequest } from '../request';
import { ignoreError, putOpenError, writeBody } from '../upload-body';
import { handleContentRangePut } from './patch';

export async function handlePut(request: DavRequest): Promise<void> {
  const { req, res, target } = request;
  // Apache mod_dav's partial PUT: the body replaces the bytes Content-Range names.
  if (req.headers['content-range'] !== undefined) return handleContentRangePut(request);
  const maxBytes = request.limits.maxUploadBytes;
  const declared = req.headers['content-length'];
  if (maxBytes > 0 && declared !== undefined && Number(declared) > maxBytes) {
    throw new DavError(413, 'upload larger than the configured maximum');
  }
  if (target.path === '/') throw new DavError(405, 'cannot PUT onto a collection');
  const mtimeMs = clientMtimeMs(req);
  await refuseWhatCannotFit(request);

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
    written = await writeBody(req, upload, maxBytes, 0);
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
  const headers: Record<string, string> = {};
  if (mtimeMs !== null) {
    // After the commit: only the file's owner may set an arbitrary time, and that is the worker.
    await request.storage.setTimes(target.path, { mtimeMs });
    stat = (await request.storage.stat(target.path)) ?? stat;
    headers['X-OC-Mtime'] = 'accepted';
  }
  headers.ETag = stat.etag;
  sendEmpty(res, upload.existing === null ? 201 : 204, headers);
}

/**
 * X-OC-Mtime (ownCloud/Nextcloud, sent by rclone's owncloud and nextcloud vendors and by desktop
 * sync clients): the file's modification time in Unix seconds, possibly with a fraction.
 */
function clientMtimeMs(req: http.IncomingMessage): number | null {
  const header = headerValue(req, 'x-oc-mtime');
  if (header === undefined) return null;
  const value = header.trim();
  if (!/^\d{1,12}(?:\.\d{1,9})?$/.test(value)) throw new DavError(400, 'X-OC-Mtime must be Unix seconds');
  return Number(value) * 1000;
}

/**
 * Finder sends uploads chunked, announcing the size in X-Expected-Entity-Length: when that
 * cannot fit in the space (or quota) left, 507 goes out before a byte of the body is read, rather
 * than after the client sent gigabytes. One extra round trip, only for requests that carry it.
 */
async function refuseWhatCannotFit(request: DavRequest): Promise<void> {
  const header = headerValue(request.req, 'x-expected-entity-length');
  if (header === undefined) return;
  if (!/^\s*\d{1,16}\s*$/.test(header))
    throw new DavError(400, 'X-Expected-Entity-Length must be a byte count');
  const expected = Number(header);
  const maxBytes = request.limits.maxUploadBytes;
  if (maxBytes > 0 && expected > maxBytes)
    throw new DavError(413, 'upload larger than the configured maximum');
  const space = await request.storage.space(parentPath(request.target.path)).catch(() => null);
  if (space !== null && expected > space.availableBytes)
    throw new DavError(507, 'the upload is larger than the space left');
}
