// Reads /proc/PID/stat: the parent, the CPU times (own and of reaped children) and the start time
// of a process, for the process-tree walk and the CPU figures of the bench.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

/** The fields of /proc/PID/stat the bench uses; times in clock ticks. */
export interface ProcStat {
  command: string;
  state: string;
  ppid: number;
  utime: number;
  stime: number;
  /** Times of children that exited and were waited for (recursively: their own reaped children too). */
  cutime: number;
  cstime: number;
  /** Ticks after boot: with the PID, names one process (PIDs are reused). */
  startTime: number;
}

/**
 * Parses one /proc/PID/stat line. The command (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so the fixed fields are counted from after the last ')'.
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  // fields[0] is field 3 (state); field N is fields[N - 3].
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  if (fields.length < 20) return null;
  const number = (field: number): number => Number(fields[field - 3]);
  const parsed: ProcStat = {
    command: text.slice(open + 1, close),
    state: fields[0],
    ppid: number(4),
    utime: number(14),
    stime: number(15),
    cutime: number(16),
    cstime: number(17),
    startTime: number(22),
  };
  const numbers = [parsed.ppid, parsed.utime, parsed.stime, parsed.cutime, parsed.cstime, parsed.startTime];
  return numbers.every(Number.isFinite) ? parsed : null;
}

export function readProcStat(pid: number | 'self'): ProcStat | null {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null; // gone
  }
}

let ticksPerSecond: number | null = null;

/** USER_HZ, the unit of /proc/PID/stat times (100 on Linux almost always: 10 ms resolution). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === null) {
    const answer = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    ticksPerSecond = Number.isInteger(answer) && answer > 0 ? answer : 100;
  }
  return ticksPerSecond;
}
