// Enforcement of locks and of the If: header for every method that changes state, and the XML of
// active locks.
import { escapedBytesAsPrivateUse, privateUseAsEscapedBytes } from '../../common/name-bytes';
import { StorageError, type DavPath } from '../../common/storage';
import { DavError } from './errors';
import { evaluateIfHeader, submittedTokens, type IfList, type IfResourceState } from './if-header';
import { ancestorsOf, LockStoreUnavailableError, type LockRecord } from './lock-store';
import { encodeHref, resolveUrlOnThisServer } from './paths';
import { realPathOf, serverNames, statOf, type DavRequest } from './request';
import { escapeXml } from './xml';

/** What a method is about to do to one resource. */
export interface WriteIntent {
  path: DavPath;
  /** It adds the resource to its parent collection or removes it from there. */
  membership: boolean;
  /** It replaces or removes everything below the resource as well. */
  tree: boolean;
}

/**
 * Refuses the request with 412 when the If: header is false (RFC 4918 §10.4.1), then with 423
 * when a lock protects what it would change and the client did not submit that lock's token as
 * its own principal. A true If: that names a wrong token is still 423 (litmus
 * cond_put_corrupt_token); a false one is 412 even on a locked resource (fail_cond_put).
 */
export async function authorizeWrite(request: DavRequest, intents: WriteIntent[]): Promise<void> {
  await checkIfHeader(request);
  if (!(await request.lockStore.hasLocks(request.nowMs))) return;
  const submitted = request.ifHeader === null ? [] : submittedTokens(request.ifHeader);
  const blocking = new Set<string>();
  for (const intent of intents) {
    for (const lock of await locksAffecting(request, intent)) {
      if (!(lock.principal === request.principal && submitted.includes(lock.token))) {
        blocking.add(lockRootHref(lock));
      }
    }
  }
  if (blocking.size > 0) {
    throw DavError.lockTokenSubmitted([...blocking]);
  }
}

/** The locks a write to `intent.path` must hold the tokens of. */
export async function locksAffecting(request: DavRequest, intent: WriteIntent): Promise<LockRecord[]> {
  const store = request.lockStore;
  const real = await realPathIfParentExists(request, intent.path);
  // Without a parent there is nothing to lock, and the method itself answers 409.
  if (real === null) return [];
  const locks = await store.covering(real, request.nowMs);
  if (intent.membership && intent.path !== '/') {
    // A lock on the parent collection (even depth 0) protects its list of members.
    const parentReal = ancestorsOf(real)[0];
    if (parentReal !== undefined) {
      for (const lock of await store.covering(parentReal, request.nowMs)) {
        if (lock.root === parentReal && lock.depth === 0) locks.push(lock);
      }
    }
  }
  if (intent.tree) locks.push(...(await store.below(real, request.nowMs)));
  return locks;
}

/** 412 unless the If: header (when present) is true. Reads and writes alike call this. */
export async function checkIfHeader(request: DavRequest): Promise<void> {
  const header = request.ifHeader;
  if (header === null) return;
  const states = new Map<string, IfResourceState | null>();
  for (const list of header.lists) {
    const key = list.resourceTag ?? '';
    if (!states.has(key)) states.set(key, await resourceStateFor(request, list));
  }
  const holds = evaluateIfHeader(header, (list) => states.get(list.resourceTag ?? '') ?? null);
  if (!holds) throw new DavError(412, 'If header condition failed');
}

async function resourceStateFor(request: DavRequest, list: IfList): Promise<IfResourceState | null> {
  let path: DavPath;
  if (list.resourceTag === null) {
    path = request.target.path;
  } else {
    try {
      path = resolveUrlOnThisServer(list.resourceTag, serverNames(request), 400).path;
    } catch {
      return null; // another server's resource: its list cannot hold here
    }
  }
  const needsEtag = list.conditions.some((condition) => condition.kind === 'etag');
  const needsTokens = list.conditions.some((condition) => condition.kind === 'token');
  let etag: string | null = null;
  if (needsEtag) {
    const stat = await statOf(request, path).catch(() => null);
    etag = stat?.etag ?? null;
  }
  const lockTokens = new Set<string>();
  if (needsTokens && (await request.lockStore.hasLocks(request.nowMs))) {
    const real = await realPathOf(request, path).catch(() => null);
    if (real !== null)
      for (const lock of await request.lockStore.covering(real, request.nowMs)) lockTokens.add(lock.token);
  }
  return { etag, lockTokens };
}

/** Storage.realPath, or null when the resource's parent does not exist. */
export async function realPathIfParentExists(request: DavRequest, path: DavPath): Promise<string | null> {
  try {
    return await realPathOf(request, path);
  } catch (error) {
    if (error instanceof StorageError && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return null;
    throw error;
  }
}

/**
 * For a listing below `rootPath`: every lock that may cover an entry, and a way to pick an
 * entry's locks without asking storage for each entry's real path. The locks are indexed by their
 * root, so an entry costs one look-up per ancestor: a listing costs members + locks, not their
 * product (10,000 locks under a 1,000-member directory would otherwise be 10 million comparisons).
 */
export async function lockIndexFor(
  request: DavRequest,
  rootPath: DavPath,
  depth: 0 | 1 | 'infinity',
): Promise<((path: DavPath) => LockRecord[]) | null> {
  let locks: LockRecord[];
  let rootReal: string;
  try {
    if (!(await request.lockStore.hasLocks(request.nowMs))) return null;
    rootReal = await realPathOf(request, rootPath);
    locks = await request.lockStore.covering(rootReal, request.nowMs);
    if (depth === 1) locks.push(...(await request.lockStore.atMembers(rootReal, request.nowMs)));
    if (depth === 'infinity') locks.push(...(await request.lockStore.below(rootReal, request.nowMs)));
  } catch (error) {
    // Reads go on while the lock database is down; only writes need its answer.
    if (error instanceof LockStoreUnavailableError) return null;
    throw error;
  }
  if (locks.length === 0) return null;
  const byRoot = new Map<string, LockRecord[]>();
  for (const lock of locks) {
    const atRoot = byRoot.get(lock.root);
    if (atRoot === undefined) byRoot.set(lock.root, [lock]);
    else atRoot.push(lock);
  }
  return (path: DavPath): LockRecord[] => {
    // Entries are the root's members; their real paths follow the root's (symlinked members aside).
    const real =
      path === rootPath ? rootReal : joinReal(rootReal, path.slice(rootPath === '/' ? 0 : rootPath.length));
    const result = [...(byRoot.get(real) ?? [])];
    for (const ancestor of ancestorsOf(real)) {
      for (const lock of byRoot.get(ancestor) ?? []) if (lock.depth === 'infinity') result.push(lock);
    }
    return result;
  };
}

function joinReal(base: string, suffix: string): string {
  const key = escapedBytesAsPrivateUse(suffix); // in realPathOf's form
  return base.endsWith('/') ? base + key.slice(1) : base + key;
}

/** The href of the resource a lock was taken on (DAV:lockroot); rootPath is stored in realPathOf's form. */
export function lockRootHref(lock: LockRecord): string {
  return encodeHref(privateUseAsEscapedBytes(lock.rootPath), false);
}

/** DAV:activelock for one lock (RFC 4918 §14.1). */
export function activeLockXml(lock: LockRecord, nowMs: number): string {
  const remainingS = Math.max(0, Math.ceil((lock.expiresMs - nowMs) / 1000));
  return (
    '<D:activelock><D:locktype><D:write/></D:locktype>' +
    `<D:lockscope><D:${lock.scope}/></D:lockscope>` +
    `<D:depth>${lock.depth === 0 ? '0' : 'infinity'}</D:depth>` +
    lock.ownerXml +
    `<D:timeout>Second-${remainingS}</D:timeout>` +
    `<D:locktoken><D:href>${escapeXml(lock.token)}</D:href></D:locktoken>` +
    `<D:lockroot><D:href>${escapeXml(lockRootHref(lock))}</D:href></D:lockroot>` +
    '</D:activelock>'
  );
}

export const SUPPORTED_LOCK_XML =
  '<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>' +
  '<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>';

/**
 * The timeout to grant for a `Timeout:` header (RFC 4918 §10.7): the first value we understand,
 * capped by the configured maximum; "Infinite" gets the maximum.
 */
export function grantedTimeoutS(header: string | undefined, maxS: number): number {
  const fallback = Math.min(3600, maxS);
  if (header === undefined) return fallback;
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value === 'Infinite') return maxS;
    const match = /^Second-(\d{1,12})$/i.exec(value);
    if (match !== null) return Math.max(1, Math.min(Number(match[1]), maxS));
  }
  return fallback;
}

/** Locks rooted below `path` whose tokens the client did not submit (DELETE reports them per member). */
export async function unsubmittedLocksBelow(request: DavRequest, path: DavPath): Promise<LockRecord[]> {
  if (!(await request.lockStore.hasLocks(request.nowMs))) return [];
  const submitted = request.ifHeader === null ? [] : submittedTokens(request.ifHeader);
  const below = await request.lockStore.below(await realPathOf(request, path), request.nowMs);
  return below.filter((lock) => !(lock.principal === request.principal && submitted.includes(lock.token)));
}
