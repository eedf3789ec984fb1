// What COPY and MOVE share: Destination, Overwrite and Depth, the checks on both ends, and the
// answer (201 created, 204 replaced, 207 with the members that failed).
import { StorageError, type DavPath, type TransferResult } from '../../../common/storage';
import { checkPreconditions } from '../conditional';
import { DavError, storageStatus } from '../errors';
import { authorizeWrite, type WriteIntent } from '../locks';
import { MultistatusWriter } from '../multistatus';
import { encodeHref, isSameOrBelow, parentPath, parseDestination } from '../paths';
import { isReservedPath } from '../hide';
import { headerValue, realPathOf, serverNames, sendEmpty, statOf, type DavRequest } from '../request';

export interface TransferPlan {
  source: DavPath;
  destination: DavPath;
  overwrite: boolean;
  depth: 0 | 'infinity';
  /** Real path of the source, known only when locks exist (MOVE must drop the source's locks). */
  sourceReal: string | null;
}

export async function planTransfer(request: DavRequest, isMove: boolean): Promise<TransferPlan> {
  const { req } = request;
  const source = request.target.path;
  const destination = parseDestination(headerValue(req, 'destination'), serverNames(request));
  if (isReservedPath(destination) || request.hide.hidesPath(destination))
    throw new DavError(403, 'this name is reserved on this server');
  const overwrite = parseOverwrite(headerValue(req, 'overwrite'));
  const depth = parseTransferDepth(headerValue(req, 'depth'), isMove);

  const sourceStat = await statOf(request, source);
  if (sourceStat === null) throw new DavError(404, 'source not found');
  if (destination === source) throw new DavError(403, 'source and destination are the same resource');
  if (isSameOrBelow(destination, source) && sourceStat.kind === 'directory') {
    throw new DavError(403, 'destination lies inside the source collection');
  }
  if (isMove && source === '/') throw new DavError(403, 'the root collection cannot be moved');
  if (destination === '/') throw new DavError(403, 'the root collection cannot be replaced');
  checkPreconditions(req, sourceStat, false);

  const destinationStat = await statOf(request, destination);
  if (destinationStat !== null && !overwrite)
    throw new DavError(412, 'destination exists and Overwrite is F');
  if (destinationStat === null) {
    const parent = await statOf(request, parentPath(destination));
    if (parent === null || parent.kind !== 'directory')
      throw new DavError(409, 'destination parent does not exist');
  }

  const intents: WriteIntent[] = [{ path: destination, membership: true, tree: true }];
  if (isMove) intents.push({ path: source, membership: true, tree: true });
  await authorizeWrite(request, intents);
  const sourceReal =
    isMove && (await request.lockStore.hasLocks(request.nowMs)) ? await realPathOf(request, source) : null;
  return { source, destination, overwrite, depth, sourceReal };
}

function parseOverwrite(header: string | undefined): boolean {
  if (header === undefined) return true;
  const value = header.trim().toUpperCase();
  if (value === 'T') return true;
  if (value === 'F') return false;
  throw new DavError(400, 'Overwrite must be T or F');
}

function parseTransferDepth(header: string | undefined, isMove: boolean): 0 | 'infinity' {
  if (header === undefined) return 'infinity';
  const value = header.trim().toLowerCase();
  if (value === 'infinity') return 'infinity';
  // RFC 4918 §9.9.2: MOVE of a collection acts as Depth: infinity, nothing else.
  if (value === '0' && !isMove) return 0;
  throw new DavError(400, isMove ? 'MOVE requires Depth: infinity' : 'COPY takes Depth 0 or infinity');
}

export async function answerTransfer(request: DavRequest, result: TransferResult): Promise<void> {
  if (result.errors.length === 0) return sendEmpty(request.res, result.created ? 201 : 204);
  const multistatus = new MultistatusWriter(request.res);
  for (const error of result.errors) {
    await multistatus.addStatus(encodeHref(error.path, false), storageStatus(error.code).status);
  }
  await multistatus.end();
}

/** Storage failures of the transfer itself, in COPY/MOVE terms. */
export function transferError(error: unknown): never {
  if (error instanceof StorageError) {
    if (error.code === 'EEXIST') throw new DavError(412, 'destination exists');
    if (error.code === 'ENOTDIR') throw new DavError(409, 'destination parent is not a collection');
  }
  throw error;
}
