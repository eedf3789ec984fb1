// DELETE: removes a resource, collections recursively. Members storage could not remove, and
// locked members whose token was not submitted (423), are reported in a 207; the rest goes.
import type { DavPath, MemberError } from '../../../common/storage';
import { checkPreconditions } from '../conditional';
import { DavError, storageStatus } from '../errors';
import { authorizeWrite, unsubmittedLocksBelow } from '../locks';
import { MultistatusWriter } from '../multistatus';
import { encodeHref, isSameOrBelow } from '../paths';
import { realPathOf, sendEmpty, statOf, type DavRequest } from '../request';

export async function handleDelete(request: DavRequest): Promise<void> {
  const path = request.target.path;
  if (path === '/') throw new DavError(403, 'the root collection cannot be deleted');
  const stat = await statOf(request, path);
  if (stat === null) throw new DavError(404, 'not found');
  checkPreconditions(request.req, stat, false);
  await authorizeWrite(request, [{ path, membership: true, tree: false }]);

  const hasLocks = await request.lockStore.hasLocks(request.nowMs);
  const real = hasLocks ? await realPathOf(request, path) : null;
  const lockedBelow = stat.kind === 'directory' ? await unsubmittedLocksBelow(request, path) : [];
  if (lockedBelow.length === 0) {
    const errors = await request.storage.remove(path);
    if (real !== null) await request.lockStore.removeTree(real);
    if (errors.length === 0) return sendEmpty(request.res, 204);
    const multistatus = new MultistatusWriter(request.res);
    await reportMemberErrors(multistatus, errors);
    return multistatus.end();
  }
  // Locked members stay (with their ancestors); everything else is removed around them.
  const lockedPaths = lockedBelow.map((lock) => path + lock.root.slice((real as string).length));
  const multistatus = new MultistatusWriter(request.res);
  await removeAround(request, path, lockedPaths, multistatus);
  await multistatus.end();
}

async function removeAround(
  request: DavRequest,
  collection: DavPath,
  lockedPaths: DavPath[],
  multistatus: MultistatusWriter,
): Promise<void> {
  const members: { path: DavPath; isCollection: boolean }[] = [];
  for await (const entry of request.storage.list(collection, 1, {
    props: 'none',
    limit: Number.MAX_SAFE_INTEGER,
  })) {
    if (entry.path !== collection)
      members.push({ path: entry.path, isCollection: entry.stat.kind === 'directory' });
  }
  for (const member of members) {
    if (lockedPaths.includes(member.path)) {
      await multistatus.addStatus(encodeHref(member.path, member.isCollection), 423, 'lock-token-submitted');
    } else if (lockedPaths.some((locked) => isSameOrBelow(locked, member.path))) {
      await removeAround(request, member.path, lockedPaths, multistatus);
    } else {
      const memberReal = await realPathOf(request, member.path);
      const errors = await request.storage.remove(member.path);
      await request.lockStore.removeTree(memberReal);
      await reportMemberErrors(multistatus, errors);
    }
  }
}

async function reportMemberErrors(multistatus: MultistatusWriter, errors: MemberError[]): Promise<void> {
  for (const error of errors) {
    await multistatus.addStatus(encodeHref(error.path, false), storageStatus(error.code).status);
  }
}
