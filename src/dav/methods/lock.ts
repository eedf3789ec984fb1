// LOCK: new exclusive or shared write locks (Depth 0 or infinity; an unmapped URL gets an empty
// file, 201), and refreshes of existing ones named in the If: header.
import { randomUUID } from 'node:crypto';
import { escapedBytesAsPrivateUse } from '../../../common/name-bytes';
import { StorageError } from '../../../common/storage';
import { DavError } from '../errors';
import { submittedTokens } from '../if-header';
import { LockLimitError, type LockLimit, type LockRecord, type LockScope } from '../lock-store';
import {
  activeLockXml,
  authorizeWrite,
  checkIfHeader,
  grantedTimeoutS,
  lockRootHref,
  realPathIfParentExists,
} from '../locks';
import { headerValue, forgetPath, realPathOf, sendXml, statOf, type DavRequest } from '../request';
import {
  childElements,
  isDavElement,
  parseXml,
  readBoundedBody,
  serializeElement,
  type XmlElement,
} from '../xml';

interface LockInfo {
  scope: LockScope;
  ownerXml: string;
}

export async function handleLock(request: DavRequest): Promise<void> {
  const { req, target } = request;
  const body = await readBoundedBody(req, request.limits.maxXmlBytes);
  const timeoutHeader = headerValue(req, 'timeout');
  if (body.length === 0) return refreshLocks(request, timeoutHeader);
  const timeoutS = grantedTimeoutS(timeoutHeader, request.limits.maxLockTimeoutS);
  const info = parseLockInfo(parseXml(body));
  // Every lockdiscovery of the resource (and of a listing of its parent) repeats the owner.
  if (Buffer.byteLength(info.ownerXml) > request.limits.maxLockOwnerBytes) {
    throw new DavError(
      403,
      `DAV:owner is larger than this server keeps (limits.max_lock_owner_bytes = ${request.limits.maxLockOwnerBytes})`,
    );
  }
  const depth = parseLockDepth(headerValue(req, 'depth'));

  const path = target.path;
  const stat = await statOf(request, path);
  if (stat === null) {
    // Creating the empty resource adds a member to the parent: its locks apply.
    await authorizeWrite(request, [{ path, membership: true, tree: false }]);
  } else {
    // Other locks are not "tokens to submit" here but conflicts, which acquire() judges.
    await checkIfHeader(request);
    // Locks are keyed by the real file: without this, a symlink to someone else's readable file
    // would let a user lock it and keep its owner from writing it.
    await request.storage.checkWritable(path);
  }

  const root = await realPathIfParentExists(request, path);
  if (root === null) throw new DavError(409, 'the parent collection does not exist');
  const lock: LockRecord = {
    token: `opaquelocktoken:${randomUUID()}`,
    root,
    rootPath: escapedBytesAsPrivateUse(path),
    principal: request.principal,
    scope: info.scope,
    depth,
    ownerXml: info.ownerXml,
    timeoutS,
    expiresMs: request.nowMs + timeoutS * 1000,
  };
  const conflicts = await acquireWithinBounds(request, lock);
  if (conflicts.length > 0) {
    const hrefs = [...new Set(conflicts.map(lockRootHref))];
    throw DavError.noConflictingLock(hrefs);
  }
  if (stat === null) {
    try {
      await createEmptyResource(request, path);
    } catch (error) {
      await request.lockStore.remove(lock.token);
      throw error;
    }
  }
  sendXml(
    request.res,
    stat === null ? 201 : 200,
    `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLockXml(lock, request.nowMs)}</D:lockdiscovery></D:prop>`,
    { 'Lock-Token': `<${lock.token}>` },
  );
}

const LIMIT_REASONS: Record<LockLimit, string> = {
  'locks-per-principal':
    'you hold as many locks as one user may (limits.max_locks_per_user); unlock some first',
  'locks-per-resource': 'this resource has as many locks as it may hold (limits.max_locks_per_resource)',
  'store-full': 'the lock database is full (limits.max_lock_db_bytes)',
};

/** acquire(), with a bound exceeded answered 507 (RFC 4918 §11.5: the server cannot record the lock). */
async function acquireWithinBounds(request: DavRequest, lock: LockRecord): Promise<LockRecord[]> {
  try {
    return await request.lockStore.acquire(lock, request.nowMs, request.limits.lockBounds);
  } catch (error) {
    if (error instanceof LockLimitError) throw new DavError(507, LIMIT_REASONS[error.limit]);
    throw error;
  }
}

/** RFC 4918 §7.3: a LOCK on an unmapped URL creates an empty, locked resource. */
async function createEmptyResource(request: DavRequest, path: string): Promise<void> {
  let upload;
  try {
    upload = await request.storage.openWrite(path);
  } catch (error) {
    if (error instanceof StorageError && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) {
      throw new DavError(409, 'the parent collection does not exist');
    }
    throw error;
  }
  try {
    await upload.commit();
  } catch (error) {
    await upload.abort().catch(() => undefined);
    throw error;
  }
  forgetPath(request, path);
}

/**
 * RFC 4918 §9.10.2: a refresh resets the timeout. Without a Timeout header it is the lock's own
 * timeout again (not a default hour), and never more than the configured maximum, which a reload
 * may have lowered since the lock was granted.
 */
async function refreshLocks(request: DavRequest, timeoutHeader: string | undefined): Promise<void> {
  const maxS = request.limits.maxLockTimeoutS;
  const header = request.ifHeader;
  if (header === null)
    throw new DavError(400, 'a LOCK without a body refreshes locks and needs an If header');
  const tokens = submittedTokens(header);
  const real = await realPathOf(request, request.target.path);
  const covering = await request.lockStore.covering(real, request.nowMs);
  const mine = covering.filter((lock) => tokens.includes(lock.token) && lock.principal === request.principal);
  if (mine.length === 0) throw new DavError(412, 'no submitted lock token applies to this resource');
  await checkIfHeader(request);
  let discovery = '';
  for (const lock of mine) {
    const timeoutS =
      timeoutHeader === undefined ? Math.min(lock.timeoutS, maxS) : grantedTimeoutS(timeoutHeader, maxS);
    const refreshed = await request.lockStore.refresh(lock.token, timeoutS, request.nowMs);
    if (refreshed !== null) discovery += activeLockXml(refreshed, request.nowMs);
  }
  sendXml(
    request.res,
    200,
    `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${discovery}</D:lockdiscovery></D:prop>`,
  );
}

function parseLockInfo(root: XmlElement): LockInfo {
  if (!isDavElement(root, 'lockinfo')) throw new DavError(400, 'expected a DAV:lockinfo body');
  let scope: LockScope | null = null;
  let isWrite = false;
  let ownerXml = '';
  for (const child of childElements(root)) {
    if (isDavElement(child, 'lockscope')) {
      for (const value of childElements(child)) {
        if (isDavElement(value, 'exclusive')) scope = 'exclusive';
        else if (isDavElement(value, 'shared')) scope = 'shared';
      }
    } else if (isDavElement(child, 'locktype')) {
      isWrite = childElements(child).some((value) => isDavElement(value, 'write'));
    } else if (isDavElement(child, 'owner')) {
      ownerXml = serializeElement(child);
    }
  }
  if (scope === null) throw new DavError(400, 'lockinfo needs DAV:exclusive or DAV:shared');
  if (!isWrite) throw new DavError(400, 'only DAV:write locks exist');
  return { scope, ownerXml };
}

function parseLockDepth(header: string | undefined): 0 | 'infinity' {
  if (header === undefined) return 'infinity';
  const value = header.trim().toLowerCase();
  if (value === '0') return 0;
  if (value === 'infinity') return 'infinity';
  throw new DavError(400, 'LOCK takes Depth 0 or infinity');
}
