// The monitor's side of being supervised: it pings each web process over its channel (the ping
// carries the monitor's counters for /metrics), sends systemd WATCHDOG=1 only while every web
// process answers — so a hung web process stops the keep-alives and systemd restarts the unit —
// and keeps STATUS= current (users, workers, requests per second).

import { readFileSync } from 'node:fs';
import { notifySystemd } from './sd-notify';

/** How often the web processes are pinged when no watchdog asks for more. */
const PING_MS = 2_000;

export interface WatchedWeb {
  /** False until the web process said it is ready. */
  ready: boolean;
  /** When it last answered a ping (ms since the epoch; 0: never). */
  lastPongAt: number;
  /** Requests it has answered since it started, as its last pong said. */
  requests: number;
}

export interface WatchdogOptions {
  /** One entry per web-process slot; null while that slot's process is being restarted. */
  webs: () => (WatchedWeb | null)[];
  ping: (web: WatchedWeb, seq: number) => void;
  /** Users with a worker, and worker processes (spare included). */
  counts: () => { users: number; workers: number };
}

/** Half of $WATCHDOG_USEC in ms when systemd asks this process for keep-alives, else null. */
export function keepAliveIntervalMs(env: NodeJS.ProcessEnv = process.env): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  // WATCHDOG_PID names the process systemd expects the keep-alives from.
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== String(process.pid)) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

export class Watchdog {
  readonly #options: WatchdogOptions;
  readonly #keepAliveMs: number | null;
  #seq = 0;
  #timers: NodeJS.Timeout[] = [];
  #status = '';
  #lastCount: { at: number; requests: number } | null = null;

  constructor(options: WatchdogOptions) {
    this.#options = options;
    this.#keepAliveMs = keepAliveIntervalMs();
  }

  start(): void {
    // Pinged at least twice per keep-alive interval, so one late answer does not miss a keep-alive.
    const pingMs = this.#keepAliveMs === null ? PING_MS : Math.min(PING_MS, this.#keepAliveMs / 2);
    this.#timers.push(setInterval(() => this.#pingAll(), pingMs));
    if (this.#keepAliveMs !== null) {
      const interval = this.#keepAliveMs;
      this.#timers.push(setInterval(() => this.#keepAlive(interval), interval));
    }
    for (const timer of this.#timers) timer.unref();
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  /** A web process that just became ready is pinged at once, so /metrics and /healthz need not wait. */
  greet(web: WatchedWeb): void {
    this.#options.ping(web, this.#seq);
  }

  /** A pong: `seq` must be the latest ping's, or it proves nothing about the present. */
  pong(web: WatchedWeb, seq: number, requests: number): void {
    if (seq !== this.#seq) return;
    web.lastPongAt = Date.now();
    web.requests = requests;
  }

  #pingAll(): void {
    this.#seq++;
    for (const web of this.#options.webs()) if (web?.ready) this.#options.ping(web, this.#seq);
    this.#updateStatus();
  }

  #keepAlive(intervalMs: number): void {
    const now = Date.now();
    const webs = this.#options.webs();
    const answering =
      webs.length > 0 && webs.every((web) => web !== null && now - web.lastPongAt <= intervalMs);
    if (answering) notifySystemd('WATCHDOG=1');
  }

  #updateStatus(): void {
    const now = Date.now();
    const requests = this.#options.webs().reduce((sum, web) => sum + (web?.requests ?? 0), 0);
    const previous = this.#lastCount;
    this.#lastCount = { at: now, requests };
    // A restarted web process counts from 0 again: that interval shows no rate rather than a negative one.
    const rate =
      previous === null || requests < previous.requests || now <= previous.at
        ? 0
        : ((requests - previous.requests) * 1000) / (now - previous.at);
    const { users, workers } = this.#options.counts();
    const status = `STATUS=serving: ${users} users, ${workers} workers, ${rate.toFixed(1)} requests/s`;
    if (status === this.#status) return;
    this.#status = status;
    notifySystemd(status);
  }
}

/** VmRSS of a process in bytes, 0 when it is gone. */
export function residentBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it in MONOTONIC_USEC. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}
