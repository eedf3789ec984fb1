// Reads the identity the kernel holds for a process from /proc/PID/status: the real, effective,
// saved and filesystem uids and gids, and the supplementary groups. Used by the worker to check
// its own drop, and by the tests to prove each process runs as what DESIGN.md says.

import { readFileSync } from 'node:fs';

export interface ProcIdentity {
  uids: number[];
  gids: number[];
  groups: number[];
}

export function readProcStatus(pid: number | 'self' = 'self'): ProcIdentity {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number[] => {
    const line = status.split('\n').find((candidate) => candidate.startsWith(`${name}:`)) ?? `${name}:`;
    return line
      .slice(name.length + 1)
      .trim()
      .split(/\s+/)
      .filter((part) => part !== '')
      .map(Number);
  };
  return { uids: field('Uid'), gids: field('Gid'), groups: field('Groups') };
}
