// MOVE: renames a resource (storage copies and deletes across filesystems). The source's locks
// do not travel: they are removed once the move succeeded (RFC 4918 §7.5).
import { answerTransfer, planTransfer, transferError } from './transfer';
import type { DavRequest } from '../request';

export async function handleMove(request: DavRequest): Promise<void> {
  const plan = await planTransfer(request, true);
  const result = await request.storage
    .move(plan.source, plan.destination, { overwrite: plan.overwrite })
    .catch(transferError);
  if (plan.sourceReal !== null) await request.lockStore.removeTree(plan.sourceReal);
  await answerTransfer(request, result);
}
