// COPY: duplicates a resource (collections at Depth 0 or infinity) with its dead properties;
// locks stay with the source (RFC 4918 §9.8).
import { answerTransfer, planTransfer, transferError } from './transfer';
import type { DavRequest } from '../request';

export async function handleCopy(request: DavRequest): Promise<void> {
  const plan = await planTransfer(request, false);
  const result = await request.storage
    .copy(plan.source, plan.destination, { depth: plan.depth, overwrite: plan.overwrite })
    .catch(transferError);
  await answerTransfer(request, result);
}
