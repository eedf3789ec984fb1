// UNLOCK: removes the lock named by Lock-Token (204), if it covers the request URI (else 409
// lock-token-matches-request-uri) and belongs to the requesting principal (else 403).
import { DavError } from '../errors';
import { ancestorsOf } from '../lock-store';
import { checkIfHeader, realPathIfParentExists } from '../locks';
import { headerValue, sendEmpty, type DavRequest } from '../request';

export async function handleUnlock(request: DavRequest): Promise<void> {
  const header = headerValue(request.req, 'lock-token');
  const match = header === undefined ? null : /^\s*<([^<>\s]+)>\s*$/.exec(header);
  if (match === null) throw new DavError(400, 'UNLOCK needs a Lock-Token header: <token>');
  const token = match[1];
  const lock = await request.lockStore.get(token, request.nowMs);
  const real = await realPathIfParentExists(request, request.target.path);
  const covers =
    lock !== null &&
    real !== null &&
    (lock.root === real || (lock.depth === 'infinity' && ancestorsOf(real).includes(lock.root)));
  if (lock === null || !covers) {
    throw DavError.lockTokenMatchesRequestUri();
  }
  if (lock.principal !== request.principal) throw new DavError(403, 'the lock belongs to another principal');
  await checkIfHeader(request);
  await request.lockStore.remove(token);
  sendEmpty(request.res, 204);
}
