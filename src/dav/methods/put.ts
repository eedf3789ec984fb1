// PUT: the body is streamed into the temporary file storage opened and committed atomically;
// any failure on the way (client gone, too large, a refused precondition) aborts the upload. A
// small body that has already arrived in full is stored in one call (putSmall) instead.
import type * as http from 'node:http';
import type { PutResult, Upload } from '../../../common/storage';
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
  if (await putInOneCall(request, mtimeMs)) return;

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
 * Bodies up to this size (at most MAX_INLINE_BYTES of common/storage-protocol.ts) with a
 * Content-Length, already received in full, are sent with the one call that stores them.
 */
export const INLINE_PUT_BYTES = 64 * 1024;

/**
 * The small-upload path: one call that writes, syncs and renames, instead of an open, writes
 * into the passed descriptor and a commit. Taken only for a body the HTTP parser has already
 * received in full (a slow upload is opened at its start, as any other: it holds no memory here,
 * and it finishes with the permissions it started with), and where the usual path's decisions
 * need no knowledge of the existing file — no If-Match, If-None-Match or If-Unmodified-Since, and
 * no lock whose verdict depends on whether the file is new — so every answer stays what the usual
 * path would give. False when the usual path must run (nothing was read or changed then).
 */
async function putInOneCall(request: DavRequest, mtimeMs: number | null): Promise<boolean> {
  const { req, res, target } = request;
  const length = smallDeclaredLength(req);
  if (length === null || hasPreconditions(req) || !(await bodyCameWithHead(req))) return false;
  try {
    // As if the file were new: that also checks the parent's depth-0 locks, a superset of the
    // locks a replacement must hold the tokens of.
    await authorizeWrite(request, [{ path: target.path, membership: true, tree: false }]);
  } catch (error) {
    if (error instanceof DavError && error.status === 423) return false;
    throw error;
  }
  const content = await readWholeBody(req, length);
  let result: PutResult;
  try {
    result = await request.storage.putSmall(target.path, content, mtimeMs === null ? {} : { mtimeMs });
  } catch (error) {
    throw putOpenError(error);
  }
  const headers: Record<string, string> = {};
  if (mtimeMs !== null) headers['X-OC-Mtime'] = 'accepted';
  headers.ETag = result.stat.etag;
  sendEmpty(res, result.created ? 201 : 204, headers);
  return true;
}

/**
 * Whether the parser has the whole body by the end of this event-loop turn: a body that came in
 * the same read as the request head (Node announces the request before it parses the rest of
 * that read). A body still on its way is left unread for the usual path.
 */
async function bodyCameWithHead(req: http.IncomingMessage): Promise<boolean> {
  if (req.complete) return true;
  await new Promise<void>((resolve) => setImmediate(resolve));
  return req.complete;
}

/** The body's declared length when it is small enough for putSmall, else null. */
function smallDeclaredLength(req: http.IncomingMessage): number | null {
  const declared = req.headers['content-length'];
  if (declared === undefined || req.headers['transfer-encoding'] !== undefined) return null;
  if (!/^\d{1,6}$/.test(declared)) return null;
  const length = Number(declared);
  return length <= INLINE_PUT_BYTES ? length : null;
}

/** Preconditions judged on the existing file, which only the usual path knows before it writes. */
function hasPreconditions(req: http.IncomingMessage): boolean {
  const headers = req.headers;
  return (
    headers['if-match'] !== undefined ||
    headers['if-none-match'] !== undefined ||
    headers['if-unmodified-since'] !== undefined
  );
}

/** The whole body, `length` bytes (bounded by INLINE_PUT_BYTES); 400 when the client stops short. */
function readWholeBody(req: http.IncomingMessage, length: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const incomplete = (): void => reject(new DavError(400, 'request body incomplete'));
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received <= length) chunks.push(chunk);
    });
    req.on('end', () => {
      if (received !== length) return incomplete();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    });
    req.on('error', incomplete);
    req.on('close', () => {
      if (!req.complete) incomplete();
    });
  });
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
