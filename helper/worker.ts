// A user worker: spawned as root by the monitor for one user, it drops to that user for good
// before it reads a single request (DESIGN invariant 2), then serves that user's file operations
// with LocalStorage on every channel the monitor attaches. Its only secret is K_u.
//
// This file loads nothing that touches the outside world until the identity is dropped and verified.
// A spare worker (`--spare`) is started before it is needed and waits for the monitor to name its
// user on the control channel; it reads nothing else before it drops.

import { readSync, writeSync } from 'node:fs';
import { OOM_SCORE_ADJ, setOomScoreAdj } from '../common/oom-score';
import { dropProblem, readProcStatus } from '../common/proc-status';
import type { WorkerIdentity } from '../common/protocol';

function fatal(message: string): never {
  process.stderr.write(`privdav worker: ${message}\n`);
  process.exit(70);
}

function parseIdentity(text: string | undefined): WorkerIdentity {
  let value: Partial<WorkerIdentity>;
  try {
    value = JSON.parse(text ?? '') as Partial<WorkerIdentity>;
  } catch {
    fatal('no identity in PRIVDAV_WORKER');
  }
  const { user, uid, gid, home, umask } = value;
  if (
    typeof user !== 'string' ||
    !Number.isSafeInteger(uid) ||
    !Number.isSafeInteger(gid) ||
    typeof home !== 'string' ||
    !home.startsWith('/') ||
    !Number.isSafeInteger(umask)
  ) {
    fatal('malformed identity');
  }
  return { user, uid: uid as number, gid: gid as number, home, umask: umask as number };
}

function dropIdentity(identity: WorkerIdentity): void {
  const { uid, gid, user } = identity;
  if (uid === 0 || gid === 0) fatal('refusing to run as root');
  if (process.getuid!() === 0) {
    // Order matters: groups and gid while we still may, uid last (it removes the right to the others).
    (process as NodeJS.Process & { initgroups(user: string, extraGroup: number): void }).initgroups(
      user,
      gid,
    );
    process.setgid!(gid);
    process.setuid!(uid);
  } else if (process.getuid!() !== uid) {
    fatal(`started as uid ${process.getuid!()} to serve uid ${uid}: only root can switch users`);
  }
  const status = readProcStatus();
  const problem = dropProblem(status, uid, gid);
  if (problem !== null) fatal(problem);
  const groups = process.getgroups!().sort((a, b) => a - b);
  const kernelGroups = status.groups.sort((a, b) => a - b);
  if (groups.join(' ') !== kernelGroups.join(' ') || kernelGroups.includes(0)) {
    fatal(`unexpected supplementary groups: ${kernelGroups.join(' ')}`);
  }
}

/** The control channel from the monitor (a SEQPACKET socket: one read, one whole message). */
const CONTROL_FD = 3;

/**
 * A spare worker is started before anyone needs it, so that a user's first request does not
 * wait for Node to boot: it blocks here, as root and having loaded nothing else, until the
 * monitor names the user it is to serve, the same identity a worker otherwise finds in its
 * environment. The monitor is the only peer of this socket.
 */
function identityFromMonitor(): string {
  // Booted and loaded: the monitor may count this start as done (server.worker_starts).
  writeSync(CONTROL_FD, '{"t":"ready"}');
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    let length: number;
    try {
      length = readSync(CONTROL_FD, buffer, 0, buffer.length, null);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EINTR') continue;
      fatal(`cannot read an identity from the monitor: ${code ?? String(error)}`);
    }
    // The monitor closed the channel: it is stopping and needs no worker.
    if (length === 0) process.exit(0);
    return buffer.toString('utf8', 0, length);
  }
}

const spare = process.argv.includes('--spare');
// Before anything else allocates: under memory pressure a worker goes before the monitor and the
// web process (inherited from the monitor otherwise), a spare before any user's worker.
setOomScoreAdj(spare ? OOM_SCORE_ADJ.spare : OOM_SCORE_ADJ.worker);
// A spare also loads its code while it waits (defining modules only: nothing in them runs or
// reads anything until runWorker), so a user's first request waits for neither boot nor load.
const preloaded = spare ? (require('./worker-main') as typeof import('./worker-main')) : null;
const identity = parseIdentity(spare ? identityFromMonitor() : process.env.PRIVDAV_WORKER);
delete process.env.PRIVDAV_WORKER;
// Lowering it back from the spare's value needs root: before the drop.
if (spare) setOomScoreAdj(OOM_SCORE_ADJ.worker);
dropIdentity(identity);
process.umask(identity.umask);

// Only now load the code that talks to the outside world.
(preloaded ?? (require('./worker-main') as typeof import('./worker-main'))).runWorker(identity);
