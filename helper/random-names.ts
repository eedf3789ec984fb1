// Random parts of temporary names, drawn from the CSPRNG in blocks: randomBytes(8) per name cost a
// small PUT ~3 µs of the worker's time (a call into the crypto library each), a slice of a block ~0.3.

import { randomFillSync } from 'node:crypto';

const NAME_BYTES = 8;
const block = Buffer.alloc(NAME_BYTES * 64);
let used = block.length;

/**
 * 16 hex digits no other caller gets: unpredictable to other users who may share the directory,
 * so none can make a name in advance to make our link or rename fail.
 */
export function randomNamePart(): string {
  if (used === block.length) {
    randomFillSync(block);
    used = 0;
  }
  const part = block.toString('hex', used, used + NAME_BYTES);
  used += NAME_BYTES;
  return part;
}
