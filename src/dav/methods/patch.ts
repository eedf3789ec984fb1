// Partial updates: SabreDAV's PATCH (application/x-sabredav-partialupdate with X-Update-Range) and
// Apache mod_dav's PUT with Content-Range. Atomic like a whole PUT: the new content is built in the
// upload's temporary file (a clone or copy of the current file, then the body written over the
// range) and renamed into place, so readers see the old file or the new one, never a mix.
import type * as http from 'node:http';
import { StorageError, type Stat, type Upload } from '../../../common/storage';
import { closeLater, cloneFile } from '../../../native';
import { checkPreconditions } from '../conditional';
import { DavError } from '../errors';
import { authorizeWrite } from '../locks';
import { headerValue, sendEmpty, type DavRequest } from '../request';
import { ignoreError, putOpenError, writeBody } from '../upload-body';

export const PARTIAL_UPDATE_TYPE = 'application/x-sabredav-partialupdate';

/** Where the body goes, decided once the current size is known; null length: whatever arrives. */
type Placement = (size: number) => { offset: number; length: number | null };

export async function handlePatch(request: DavRequest): Promise<void> {
  const { req } = request;
  const type = (headerValue(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== PARTIAL_UPDATE_TYPE)
    throw new DavError(415, `PATCH takes Content-Type ${PARTIAL_UPDATE_TYPE}`);
  const declared = declaredLength(req);
  if (declared === null) throw new DavError(411, 'PATCH needs a Content-Length');
  const placement = parseUpdateRange(headerValue(req, 'x-update-range'), declared);
  await updatePart(request, placement, declared, false);
}

/** PUT with Content-Range: bytes a-b/total (or /*), as Apache mod_dav accepts it. */
export async function handleContentRangePut(request: DavRequest): Promise<void> {
  const { req } = request;
  const match = /^\s*bytes\s+(\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)\s*$/i.exec(
    headerValue(req, 'content-range') ?? '',
  );
  if (match === null)
    throw new DavError(400, 'Content-Range must be "bytes first-last/total" or "bytes first-last/*"');
  const first = Number(match[1]);
  const last = Number(match[2]);
  if (last < first) throw new DavError(400, 'Content-Range ends before it starts');
  if (match[3] !== '*' && Number(match[3]) <= last)
    throw new DavError(400, 'Content-Range goes past its total');
  const declared = declaredLength(req);
  const length = last - first + 1;
  if (declared !== null && declared !== length)
    throw new DavError(400, 'Content-Length does not match Content-Range');
  await updatePart(request, () => ({ offset: first, length }), length, true);
}

function declaredLength(req: http.IncomingMessage): number | null {
  const header = req.headers['content-length'];
  return header === undefined ? null : Number(header);
}

/**
 * X-Update-Range (SabreDAV): "bytes=a-b" (exactly those bytes), "bytes=a-" (from a on), "bytes=-n"
 * (starting n bytes before the end), "append". A start past the end of the file is refused (416)
 * rather than leaving a hole.
 */
function parseUpdateRange(header: string | undefined, declared: number): Placement {
  const value = (header ?? '').trim();
  if (value.toLowerCase() === 'append') return (size) => ({ offset: size, length: null });
  const match = /^bytes=(\d{1,16})?-(\d{1,16})?$/i.exec(value);
  if (match === null || (match[1] === undefined && match[2] === undefined))
    throw new DavError(400, 'X-Update-Range must be bytes=a-b, bytes=a-, bytes=-n or append');
  if (match[1] === undefined) {
    const fromEnd = Number(match[2]);
    return (size) => {
      if (fromEnd > size) throw new DavError(416, 'X-Update-Range starts before the file');
      return { offset: size - fromEnd, length: null };
    };
  }
  const first = Number(match[1]);
  if (match[2] === undefined) return () => ({ offset: first, length: null });
  const last = Number(match[2]);
  if (last < first || last - first + 1 !== declared)
    throw new DavError(416, 'the body length does not match X-Update-Range');
  return () => ({ offset: first, length: declared });
}

/**
 * The shared path: open the upload (its `existing` is what If:, ETags and locks are judged on),
 * copy the current content into it from a descriptor whose ETag must be the same, write the body at
 * its offset, commit. `mayCreate`: a Content-Range PUT may create the file (mod_dav does); PATCH
 * may not (404).
 */
async function updatePart(
  request: DavRequest,
  placement: Placement,
  declared: number,
  mayCreate: boolean,
): Promise<void> {
  const { req, res, target } = request;
  const maxBytes = request.limits.maxUploadBytes;
  if (target.path === '/') throw new DavError(405, 'cannot update a collection');
  let upload: Upload;
  try {
    upload = await request.storage.openWrite(target.path);
  } catch (error) {
    throw putOpenError(error);
  }
  let expectedSize: number;
  try {
    const existing = upload.existing;
    if (existing !== null && existing.kind === 'directory')
      throw new DavError(405, 'cannot update a collection');
    if (existing === null && !mayCreate) throw new DavError(404, 'no such file to update');
    checkPreconditions(req, existing, false);
    await authorizeWrite(request, [{ path: target.path, membership: existing === null, tree: false }]);
    const size = existing?.size ?? 0;
    const { offset, length } = placement(size);
    if (offset > size) throw new DavError(416, 'the update starts past the end of the file');
    if (maxBytes > 0 && offset + (length ?? declared) > maxBytes)
      throw new DavError(413, 'the file would grow past the configured maximum');
    if (existing !== null) await copyCurrentContent(request, upload, existing);
    const written = await writeBody(req, upload, maxBytes, offset);
    if ((length ?? declared) !== written) throw new DavError(400, 'request body incomplete');
    expectedSize = Math.max(size, offset + written);
  } catch (error) {
    await upload.abort().catch(ignoreError);
    throw error;
  }
  let stat: Stat;
  try {
    stat = await upload.commit(expectedSize);
  } catch (error) {
    await upload.abort().catch(ignoreError);
    throw error;
  }
  sendEmpty(res, upload.existing === null ? 201 : 204, { ETag: stat.etag });
}

/** The current file into the upload (FICLONE where the filesystem shares blocks, else a kernel copy). */
async function copyCurrentContent(request: DavRequest, upload: Upload, existing: Stat): Promise<void> {
  const opened = await request.storage.openRead(request.target.path);
  try {
    // The file checked above and the one read must be the same version, or the update would
    // apply to content no precondition was evaluated on.
    if (opened.stat.etag !== existing.etag)
      throw new DavError(409, 'the file changed during the update; retry');
    await cloneFile(upload.fd, opened.fd, existing.size).catch((error: unknown) => {
      throw StorageError.from(error);
    });
  } finally {
    closeLater(opened.fd);
  }
}
