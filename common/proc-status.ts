// Reads the identity the kernel holds for a process from /proc/PID/status: the real, effective,
// saved and filesystem uids and gids, and the supplementary groups. Used by the worker to check
// its own drop, and by the tests to prove each process runs as what DESIGN.md says.

import { readFileSync, readSync } from 'node:fs';

export interface ProcIdentity {
  uids: number[];
  gids: number[];
  groups: number[];
}

/**
 * `source` is a pid, 'self', or an open descriptor of /proc/self/status (for a process that
 * chroots: the file is generated at each read, so a descriptor opened before shows the present).
 */
export function readProcStatus(source: number | 'self' | { fd: number } = 'self'): ProcIdentity {
  const status =
    typeof source === 'object' ? readWhole(source.fd) : readFileSync(`/proc/${source}/status`, 'utf8');
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

function readWhole(fd: number): string {
  const buffer = Buffer.alloc(16 * 1024);
  const length = readSync(fd, buffer, 0, buffer.length, 0);
  return buffer.subarray(0, length).toString('utf8');
}

/**
 * Why a drop to `uid`/`gid` is not complete and irrevocable, or null when it is: all four uid
 * and gid slots must hold the target, and setuid(0) must fail. Shared by the worker and the web
 * process, each of which also checks its groups.
 */
export function dropProblem(status: ProcIdentity, uid: number, gid: number): string | null {
  if (status.uids.length !== 4 || !status.uids.every((value) => value === uid)) {
    return `uid not dropped: ${status.uids.join(' ')}`;
  }
  if (status.gids.length !== 4 || !status.gids.every((value) => value === gid)) {
    return `gid not dropped: ${status.gids.join(' ')}`;
  }
  try {
    process.setuid!(0);
  } catch {
    return null; // EPERM: the drop is irrevocable.
  }
  return 'setuid(0) succeeded after the drop';
}
