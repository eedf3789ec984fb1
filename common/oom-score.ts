// oom_score_adj per process role: when memory runs out, the kernel's OOM killer should take a
// spare, then a user's worker (one user's in-flight requests; the next request starts another),
// and the web process (everyone's connections, restarted cheaply) only after ordinary processes,
// and the monitor (everything) last. README "Memory" argues the numbers.

import { readFileSync, writeFileSync } from 'node:fs';

export const OOM_SCORE_ADJ = {
  /** Holds the listen sockets, the keys and every child: losing it stops the service. */
  monitor: -900,
  /** Shared by every user; the monitor restarts it and logins come back without PAM, but connections drop. */
  web: -100,
  /** One user's process, replaced on that user's next request. */
  worker: 800,
  /** Nobody's yet: the cheapest process to lose. */
  spare: 1000,
} as const;

/**
 * Sets this process's oom_score_adj; null when done, else why not. Raising it is always allowed;
 * lowering it needs CAP_SYS_RESOURCE (a root monitor; systemd's OOMScoreAdjust= does it otherwise).
 */
export function setOomScoreAdj(value: number): string | null {
  try {
    // Already there (systemd's OOMScoreAdjust= for the monitor): writing needs no right then, but skip it.
    if (Number(readFileSync('/proc/self/oom_score_adj', 'utf8')) === value) return null;
    writeFileSync('/proc/self/oom_score_adj', String(value));
    return null;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}
