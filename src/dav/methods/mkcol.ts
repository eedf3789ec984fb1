// MKCOL: creates a collection (201); 405 when something exists there, 409 without a parent,
// 415 for a body, since we support no MKCOL request bodies (RFC 4918 §9.3).
import { StorageError } from '../../../common/storage';
import { DavError } from '../errors';
import { authorizeWrite } from '../locks';
import { sendEmpty, type DavRequest } from '../request';
import { hasRequestBody } from '../xml';

export async function handleMkcol(request: DavRequest): Promise<void> {
  if (hasRequestBody(request.req)) throw new DavError(415, 'MKCOL does not take a request body');
  const path = request.target.path;
  if (path === '/') throw new DavError(405, 'the root collection exists');
  await authorizeWrite(request, [{ path, membership: true, tree: false }]);
  try {
    await request.storage.mkcol(path);
  } catch (error) {
    if (error instanceof StorageError) {
      if (error.code === 'EEXIST') throw new DavError(405, 'a resource exists at this URL');
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') {
        throw new DavError(409, 'the parent collection does not exist');
      }
    }
    throw error;
  }
  sendEmpty(request.res, 201);
}
