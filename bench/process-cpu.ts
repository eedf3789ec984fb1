// The CPU time a server's process tree spends over the load part of a turn (utime + stime from
// /proc/PID/stat), split by role, beside what the load generator and the rest of the machine used.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { descendantPids } from './bench-server';
import { ProcStat, clockTicksPerSecond, readProcStat } from './proc-stat';
import { RoleOfProcess, readCommand, readStatus } from './process-memory';

/** Busy CPU time of the whole machine, all CPUs (first line of /proc/stat), in ticks. */
function machineBusyTicks(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  // cpu user nice system idle iowait irq softirq steal (guest time is already in user): all but idle and iowait.
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return values.reduce((sum, value) => sum + value, 0) - values[3] - values[4];
}

/**
 * Context switches on the whole machine since boot (the `ctxt` line of /proc/stat): every time a
 * CPU went from one task to another, a process or a thread going to sleep or being woken included.
 */
function machineContextSwitches(): number {
  const match = /^ctxt (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
  return match === null ? 0 : Number(match[1]);
}

/** What one turn's load cost, in microseconds. */
export interface CpuSpan {
  wallSeconds: number;
  /** All of the server's processes, including those that exited during the turn. */
  serverMicros: number;
  /** The same in clock ticks: each process's figure is truncated to a tick, so few ticks are a coarse figure. */
  serverTicks: number;
  /** Of serverMicros, the time spent in the kernel (stime): system calls, the network stack, page faults. */
  serverSystemMicros: number;
  /**
   * By role, from each process's own times (the last value read for one that exited between two
   * samples); serverMicros minus their sum is what exited processes spent after their last sample.
   */
  byRoleMicros: Record<string, number>;
  /** Of byRoleMicros, the kernel's part (stime), by role. */
  byRoleSystemMicros: Record<string, number>;
  /** The load generator (wrk, curl: reaped children of the bench) and the bench process itself. */
  clientMicros: number;
  /** Busy time of the whole machine (all CPUs): what is not server or client is other work. */
  machineBusyMicros: number;
  /** CPUs × wall time. */
  machineCapacityMicros: number;
  /**
   * Context switches on the whole machine (server, load generator and anything else): each hop of a
   * request from one process or thread to another that was asleep costs one or two.
   */
  machineContextSwitches: number;
}

interface SeenProcess {
  role: string;
  /** utime + stime when first seen in the window (0 for a process born during it). */
  first: number;
  last: number;
  /** The same for stime alone. */
  firstSystem: number;
  lastSystem: number;
}

/** Σ over a tree of utime + stime + cutime + cstime (`all`), and of stime + cstime (`system`). */
interface TreeTicks {
  all: number;
  system: number;
}

const sampleIntervalMs = 250;

/**
 * Measures a server's tree over a window (begin() ... end()). The total is exact over processes
 * that exit during the window as long as their parent, in the tree, waits for them (privdav's
 * monitor reaps its web processes and workers, Apache's parent its children): a reaped child's
 * times move into its parent's cutime/cstime, so Σ over the live tree of (utime + stime + cutime
 * + cstime) only grows by what the tree ran. Roles come from sampling every 250 ms.
 */
export class ProcessCpuMeter {
  private readonly seen = new Map<string, SeenProcess>();
  private timer: NodeJS.Timeout | null = null;
  private root: number | null = null;
  private startTree: TreeTicks = { all: 0, system: 0 };
  private startClientTicks = 0;
  private startSelf: NodeJS.CpuUsage = { user: 0, system: 0 };
  private startMachineTicks = 0;
  private startContextSwitches = 0;
  private startedAt = 0n;
  private span: CpuSpan | null = null;
  private broken = false;

  constructor(
    private readonly rootPid: () => number | null,
    private readonly roleOf: RoleOfProcess,
  ) {}

  begin(): void {
    this.root = this.rootPid();
    if (this.root === null) return;
    this.startedAt = process.hrtime.bigint();
    this.startMachineTicks = machineBusyTicks();
    this.startContextSwitches = machineContextSwitches();
    this.startSelf = process.cpuUsage();
    this.startClientTicks = childTicks(readProcStat('self'));
    this.startTree = this.sample(true);
    this.timer = setInterval(() => this.sample(false), sampleIntervalMs);
  }

  end(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.root === null) return;
    const endTree = this.sample(false);
    const ticks = clockTicksPerSecond();
    const microsOf = (tickCount: number): number => (tickCount * 1e6) / ticks;
    const self = process.cpuUsage(this.startSelf);
    const machineTicks = machineBusyTicks();
    const contextSwitches = machineContextSwitches();
    const wallSeconds = Number(process.hrtime.bigint() - this.startedAt) / 1e9;
    const byRoleMicros: Record<string, number> = {};
    const byRoleSystemMicros: Record<string, number> = {};
    for (const entry of this.seen.values()) {
      byRoleMicros[entry.role] = (byRoleMicros[entry.role] ?? 0) + microsOf(entry.last - entry.first);
      byRoleSystemMicros[entry.role] =
        (byRoleSystemMicros[entry.role] ?? 0) + microsOf(entry.lastSystem - entry.firstSystem);
    }
    // A restarted server (its root gone) is another tree: its figures would mean nothing.
    if (this.broken || this.rootPid() !== this.root) return;
    this.span = {
      wallSeconds,
      serverMicros: microsOf(endTree.all - this.startTree.all),
      serverTicks: endTree.all - this.startTree.all,
      serverSystemMicros: microsOf(endTree.system - this.startTree.system),
      byRoleMicros,
      byRoleSystemMicros,
      clientMicros:
        microsOf(childTicks(readProcStat('self')) - this.startClientTicks) + self.user + self.system,
      machineBusyMicros: microsOf(machineTicks - this.startMachineTicks),
      machineCapacityMicros: wallSeconds * 1e6 * os.cpus().length,
      machineContextSwitches: contextSwitches - this.startContextSwitches,
    };
  }

  /** The window's figures; null when it was never begun or the server restarted within it. */
  result(): CpuSpan | null {
    return this.span;
  }

  /** Reads the tree, updates each process's last values; returns Σ (own + reaped children) ticks. */
  private sample(initial: boolean): TreeTicks {
    const root = this.root as number;
    if (this.rootPid() !== root) {
      this.broken = true;
      return { all: 0, system: 0 };
    }
    let treeTicks = 0;
    let systemTicks = 0;
    for (const pid of [root, ...descendantPids(root)]) {
      const stat = readProcStat(pid);
      if (stat === null) continue;
      treeTicks += ownTicks(stat) + childTicks(stat);
      systemTicks += stat.stime + stat.cstime;
      const key = `${pid}:${stat.startTime}`;
      const known = this.seen.get(key);
      if (known !== undefined) {
        known.last = ownTicks(stat);
        known.lastSystem = stat.stime;
        continue;
      }
      this.seen.set(key, {
        role: this.roleOf({
          isRoot: pid === root,
          uid: readStatus(pid)?.uid ?? -1,
          command: readCommand(pid),
        }),
        first: initial ? ownTicks(stat) : 0,
        last: ownTicks(stat),
        firstSystem: initial ? stat.stime : 0,
        lastSystem: stat.stime,
      });
    }
    return { all: treeTicks, system: systemTicks };
  }
}

function ownTicks(stat: ProcStat): number {
  return stat.utime + stat.stime;
}

function childTicks(stat: ProcStat | null): number {
  return stat === null ? 0 : stat.cutime + stat.cstime;
}
