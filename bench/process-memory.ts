// Samples the resident memory (VmRSS, and RssAnon: the part that is the process's own, not pages
// of the node binary shared with every other node process) of a server's process tree every 100 ms
// during a workload and keeps each process's peaks, labelled with its role (privdav: monitor / web
// / worker).
import * as fs from 'node:fs';
import { descendantPids } from './bench-server';

export interface ProcessPeak {
  pid: number;
  role: string;
  uid: number;
  command: string;
  peakRssBytes: number;
  /** Peak RssAnon: memory only this process holds. */
  peakPrivateBytes: number;
}

/** Decides a process's role from what /proc says about it. */
export type RoleOfProcess = (facts: { isRoot: boolean; uid: number; command: string }) => string;

const sampleIntervalMs = 100;
// Walking all of /proc costs a few ms; the tree changes rarely (a worker spawning), so it is
// re-walked less often than RSS is read.
const treeRefreshMs = 500;

export class ProcessMemorySampler {
  private readonly peaks = new Map<number, ProcessPeak>();
  private timer: NodeJS.Timeout | null = null;
  private tree: number[] = [];
  private treeRoot: number | null = null;
  private treeReadAt = 0;

  /** `rootPid` is asked on every sample because a cold-start turn restarts the server under us. */
  constructor(
    private readonly rootPid: () => number | null,
    private readonly roleOf: RoleOfProcess,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), sampleIntervalMs);
  }

  stop(): ProcessPeak[] {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // Re-walk the tree once more: a process born since the last walk (the worker of a cold-start
    // turn, which ends within a few hundred ms of the restart) is counted too.
    this.treeReadAt = 0;
    this.sample();
    return [...this.peaks.values()].sort((a, b) => a.pid - b.pid);
  }

  private sample(): void {
    const root = this.rootPid();
    if (root === null) return;
    const now = Date.now();
    // A restarted server (cold-start turn) is a new tree: the old one's peaks were taken under the
    // previous workload and would only blur this one's.
    if (root !== this.treeRoot && this.treeRoot !== null) this.peaks.clear();
    if (root !== this.treeRoot || now - this.treeReadAt >= treeRefreshMs) {
      this.tree = [root, ...descendantPids(root)];
      this.treeRoot = root;
      this.treeReadAt = now;
    }
    for (const pid of this.tree) {
      const facts = readStatus(pid);
      if (facts === null) continue;
      const known = this.peaks.get(pid);
      // A process that changed identity (privdav's spare worker becoming a user's) is looked at anew.
      if (known !== undefined && known.uid === facts.uid) {
        known.peakRssBytes = Math.max(known.peakRssBytes, facts.rssBytes);
        known.peakPrivateBytes = Math.max(known.peakPrivateBytes, facts.privateBytes);
        continue;
      }
      const command = readCommand(pid);
      this.peaks.set(pid, {
        pid,
        uid: facts.uid,
        command,
        role: this.roleOf({ isRoot: pid === root, uid: facts.uid, command }),
        peakRssBytes: facts.rssBytes,
        peakPrivateBytes: facts.privateBytes,
      });
    }
  }
}

export function readStatus(pid: number): { rssBytes: number; privateBytes: number; uid: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const anon = /^RssAnon:\s+(\d+) kB/m.exec(status);
    const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
    if (rss === null || uid === null) return null; // a zombie has no VmRSS
    return {
      rssBytes: Number(rss[1]) * 1024,
      privateBytes: Number(anon?.[1] ?? 0) * 1024,
      uid: Number(uid[1]),
    };
  } catch {
    return null;
  }
}

export function readCommand(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** The largest peak per role, e.g. { monitor: ..., web: ..., worker: ... }: VmRSS, or RssAnon. */
export function peakByRole(peaks: ProcessPeak[], of: 'rss' | 'private' = 'rss'): Record<string, number> {
  const result: Record<string, number> = {};
  for (const peak of peaks) {
    const bytes = of === 'rss' ? peak.peakRssBytes : peak.peakPrivateBytes;
    result[peak.role] = Math.max(result[peak.role] ?? 0, bytes);
  }
  return result;
}

/** Sum of RssAnon over a process and all its descendants right now. */
export function totalPrivateBytes(rootPid: number): number {
  let total = 0;
  for (const pid of [rootPid, ...descendantPids(rootPid)]) total += readStatus(pid)?.privateBytes ?? 0;
  return total;
}
