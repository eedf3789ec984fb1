// OPTIONS: advertises WebDAV class 1 and 2, SabreDAV partial updates, and the methods the resource at the URL allows.
import { sendEmpty, statOf, type DavRequest } from '../request';

const FILE_METHODS = 'OPTIONS, GET, HEAD, PUT, PATCH, DELETE, PROPFIND, PROPPATCH, COPY, MOVE, LOCK, UNLOCK';
const COLLECTION_METHODS = 'OPTIONS, GET, HEAD, DELETE, PROPFIND, PROPPATCH, COPY, MOVE, LOCK, UNLOCK';
const UNMAPPED_METHODS = 'OPTIONS, PUT, MKCOL, LOCK';

export async function handleOptions(request: DavRequest): Promise<void> {
  let allow = UNMAPPED_METHODS;
  if (request.req.url === '*') {
    allow = FILE_METHODS + ', MKCOL';
  } else {
    // Clients probe OPTIONS on URLs that may not be resources (the tilde layout's "/"): the DAV
    // header must come back whatever the resource is.
    const stat = await statOf(request, request.target.path).catch(() => null);
    if (stat !== null) allow = stat.kind === 'directory' ? COLLECTION_METHODS : FILE_METHODS;
  }
  sendEmpty(request.res, 200, {
    // sabredav-partialupdate: PATCH with X-Update-Range (webdavfs mounts read-write only with it).
    DAV: '1, 2, sabredav-partialupdate',
    'MS-Author-Via': 'DAV',
    Allow: allow,
    'Accept-Ranges': 'bytes',
  });
}
