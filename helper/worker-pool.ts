// The monitor's worker processes: one per active user, at most server.max_workers alive at once
// (user workers, spares and workers still exiting all count), at most server.worker_starts booting
// at once, and a pool of spares started ahead of need. At the cap the least recently used idle
// worker is asked to retire; a new user waits a bounded time for room, then is told to come back.

import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Channel } from '../common/channel';
import { closeAll } from '../common/rpc';
import { Logger } from '../common/log';
import { WorkerIdentity, decodeMessage, encodeMessage } from '../common/protocol';
import { closeFd, socketpair } from '../native';

const WORKER_ENTRY = join(__dirname, 'worker.js');

/**
 * A worker's memory under PROPFIND load (10,000 members, then 1,000 x 4 connections): V8's young
 * generation may grow to 3 x 16 MiB and glibc gives each threadpool thread its own arena; with
 * these, peak private memory (RssAnon) fell from ~74 to ~35-45 MiB at no measurable cost in
 * throughput. (VmRSS also counts ~40 MiB of the node binary, shared by all processes.)
 */
const WORKER_NODE_OPTIONS = ['--max-semi-space-size=2'];
const WORKER_MEMORY_ENV = { MALLOC_ARENA_MAX: '2' };

/**
 * How long a new user waits for room while max_workers is reached and every worker is busy,
 * before the web process is told to answer 503. Waiting only for a start slot (worker_starts)
 * is not bounded by this: that start is coming, and the user gets it (within WORKER_WAIT_LIMIT_MS).
 */
export const WORKER_WAIT_MS = 10_000;
/** Nothing waits longer than this, whatever the reason (DESIGN invariant 7: every request is answered). */
const WORKER_WAIT_LIMIT_MS = 90_000;
/** After a spare is taken the next is started this much later, so it does not compete with the login that took it. */
const SPARE_DELAY_MS = 250;
const SPARE_MAX_DELAY_MS = 60_000;
/** A worker that does not say it booted within this long no longer holds back other starts. */
const BOOT_ALLOWANCE_MS = 10_000;
/** A worker that answers neither "busy" nor "exiting" within this long is passed over for now. */
const RETIRE_ANSWER_MS = 2_000;
/** A worker that said it was busy is not asked again sooner than this. */
const BUSY_RECHECK_MS = 100;
/** Starts within this window are the recent demand the spare pool grows to meet. */
const DEMAND_WINDOW_MS = 2_000;

export interface PoolLimits {
  maxWorkers: number;
  spareWorkers: number;
  workerStarts: number;
}

/** No room for another worker within WORKER_WAIT_MS: every worker is busy. */
export class PoolFullError extends Error {
  readonly code = 'POOL_FULL';
  constructor() {
    super(`every worker is busy and server.max_workers is reached (waited ${WORKER_WAIT_MS} ms)`);
    this.name = 'PoolFullError';
  }
}

/** One worker process: a spare (uid null) until it is given a user, then that user's worker for good. */
export class WorkerProcess {
  readonly child: ChildProcess;
  readonly control: Channel;
  uid: number | null = null;
  user = '';
  /** The supplementary groups it was given (the monitor's groupList), to notice a membership change. */
  groups = '';
  /** It said it has booted (or BOOT_ALLOWANCE_MS passed): it no longer counts against worker_starts. */
  booted = false;
  /** Told to go or going: no new channel is attached to it. */
  leaving = false;
  lastUsed = Date.now();
  readonly startedAt = Date.now();
  /** Asked to retire if idle, answer pending. */
  retireAsked = false;
  busySince = 0;
  readonly #answerWaiters: (() => void)[] = [];

  constructor(child: ChildProcess, control: Channel) {
    this.child = child;
    this.control = control;
  }

  get alive(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once a pending retire question is answered (at once when there is none). */
  answered(): Promise<void> {
    if (!this.retireAsked) return Promise.resolve();
    return new Promise((resolve) => this.#answerWaiters.push(resolve));
  }

  settleAnswer(): void {
    this.retireAsked = false;
    for (const wake of this.#answerWaiters.splice(0)) wake();
  }

  send(message: object, fds: number[] = []): void {
    this.control.send(encodeMessage(message), fds);
  }
}

interface Waiter {
  identity: WorkerIdentity;
  groups: string;
  resolve: (worker: WorkerProcess) => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
}

export interface WorkerPoolOptions {
  limits: PoolLimits;
  log: Logger;
  /** The init message (K_u and settings) for a worker that was just given its user. */
  initMessage: (uid: number) => object;
  /** Variables every worker gets besides its own (the log format). */
  environment: () => Record<string, string>;
}

export class WorkerPool {
  #limits: PoolLimits;
  readonly #log: Logger;
  readonly #initMessage: (uid: number) => object;
  readonly #environment: () => Record<string, string>;
  #starts = 0;
  /** Every process started and not yet reaped: what max_workers bounds. */
  readonly #alive = new Set<WorkerProcess>();
  readonly #spares: WorkerProcess[] = [];
  readonly #byUid = new Map<number, WorkerProcess>();
  readonly #starting = new Map<number, Promise<WorkerProcess>>();
  readonly #waiters: Waiter[] = [];
  readonly #recentStarts: number[] = [];
  #retryTimer: NodeJS.Timeout | null = null;
  #spareTimer: NodeJS.Timeout | null = null;
  #spareDelayMs = SPARE_DELAY_MS;
  #stopping = false;

  constructor(options: WorkerPoolOptions) {
    this.#limits = options.limits;
    this.#log = options.log;
    this.#initMessage = options.initMessage;
    this.#environment = options.environment;
  }

  start(): void {
    this.#refillSpares();
  }

  setLimits(limits: PoolLimits): void {
    this.#limits = limits;
    this.#pump();
  }

  /** Processes alive by kind, for logs and status. */
  get counts(): { alive: number; workers: number; spares: number; waiting: number } {
    return {
      alive: this.#alive.size,
      workers: this.#byUid.size,
      spares: this.#spares.length,
      waiting: this.#waiters.length,
    };
  }

  /** Workers given a user since the start (for metrics). */
  get starts(): number {
    return this.#starts;
  }

  /** Every worker process alive (for memory figures). */
  pids(): number[] {
    return [...this.#alive].flatMap((worker) => (worker.child.pid === undefined ? [] : [worker.child.pid]));
  }

  /** The user's running worker, or a new one once there is room; PoolFullError after WORKER_WAIT_MS. */
  async workerFor(identity: WorkerIdentity, groups: string): Promise<WorkerProcess> {
    for (;;) {
      const existing = this.#byUid.get(identity.uid);
      if (existing === undefined || existing.leaving || !existing.alive) break;
      // Asked to make room just now: whether it stays decides whether it can be used.
      if (!existing.retireAsked) {
        existing.lastUsed = Date.now();
        return existing;
      }
      await existing.answered();
    }
    let starting = this.#starting.get(identity.uid);
    if (starting === undefined) {
      const since = Date.now();
      starting = new Promise<WorkerProcess>((resolve, reject) => {
        const waiter: Waiter = { identity, groups, resolve, reject };
        const expire = (): void => {
          // Below the cap the wait is for a start slot: a start is coming, keep the place in line.
          if (this.#alive.size < this.#limits.maxWorkers && Date.now() - since < WORKER_WAIT_LIMIT_MS) {
            waiter.timer = setTimeout(expire, 1000);
            return;
          }
          const index = this.#waiters.indexOf(waiter);
          if (index >= 0) this.#waiters.splice(index, 1);
          reject(new PoolFullError());
        };
        waiter.timer = setTimeout(expire, WORKER_WAIT_MS);
        this.#waiters.push(waiter);
      });
      this.#starting.set(identity.uid, starting);
      const forget = (): void => void this.#starting.delete(identity.uid);
      starting.then(forget, forget);
      this.#pump();
    }
    return starting;
  }

  /** After a reload changed the workers' settings: running workers finish their calls and go. */
  retireAll(): void {
    for (const worker of this.#byUid.values()) {
      worker.leaving = true;
      try {
        worker.send({ t: 'retire' });
      } catch {
        worker.child.kill('SIGTERM');
      }
    }
    this.#byUid.clear();
  }

  /**
   * The user's groups are now `groups`: a running worker started with others finishes its calls
   * and goes (the next request starts one with the new groups). Returns the old groups when it did.
   */
  retireIfGroupsDiffer(uid: number, groups: string): string | null {
    const worker = this.#byUid.get(uid);
    if (worker === undefined || worker.leaving || worker.groups === groups) return null;
    this.#leaving(worker);
    try {
      worker.send({ t: 'retire' });
    } catch {
      worker.child.kill('SIGTERM');
    }
    return worker.groups;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of [this.#retryTimer, this.#spareTimer]) if (timer !== null) clearTimeout(timer);
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error('stopping'));
    }
    await Promise.all(
      [...this.#alive].map(async (worker) => {
        worker.control.destroy();
        worker.child.kill('SIGTERM');
        if (!(await waitForExit(worker.child, 2000))) worker.child.kill('SIGKILL');
      }),
    );
  }

  // ---- granting room ---------------------------------------------------------------------

  #canSpawn(): boolean {
    let booting = 0;
    for (const worker of this.#alive) if (!worker.booted) booting++;
    return this.#alive.size < this.#limits.maxWorkers && booting < this.#limits.workerStarts;
  }

  /** Gives waiting users a spare or a new process while there is room, and asks for room when there is none. */
  #pump(): void {
    if (this.#stopping) return;
    while (this.#waiters.length > 0) {
      const spare = this.#takeSpare();
      if (spare === null && !this.#canSpawn()) break;
      const waiter = this.#waiters.shift()!;
      clearTimeout(waiter.timer);
      try {
        waiter.resolve(this.#assign(waiter.identity, waiter.groups, spare));
      } catch (error) {
        waiter.reject(error as Error);
      }
    }
    if (this.#waiters.length > 0 && this.#alive.size >= this.#limits.maxWorkers) {
      this.#makeRoom(this.#waiters.length);
    }
    this.#scheduleSpares();
  }

  #takeSpare(): WorkerProcess | null {
    while (this.#spares.length > 0) {
      const spare = this.#spares.shift()!;
      if (spare.alive) return spare;
    }
    return null;
  }

  #assign(identity: WorkerIdentity, groups: string, spare: WorkerProcess | null): WorkerProcess {
    let worker: WorkerProcess;
    if (spare !== null) {
      worker = spare;
      worker.send(identity);
      this.#spareDelayMs = SPARE_DELAY_MS;
    } else {
      worker = this.#spawn({ PRIVDAV_WORKER: JSON.stringify(identity) }, []);
    }
    worker.uid = identity.uid;
    worker.user = identity.user;
    worker.groups = groups;
    worker.lastUsed = Date.now();
    this.#byUid.set(identity.uid, worker);
    worker.send(this.#initMessage(identity.uid));
    this.#starts++;
    this.#noteStart();
    this.#log.info('worker started', {
      user: identity.user,
      pid: worker.child.pid,
      from: spare === null ? 'new process' : 'spare',
    });
    return worker;
  }

  /**
   * Asks the least recently used workers to retire if they are idle, as many as there are users
   * waiting beyond the room already being freed. A busy one says so and is passed over.
   */
  #makeRoom(needed: number): void {
    let freeing = 0;
    for (const worker of this.#alive) if (worker.leaving || worker.retireAsked) freeing++;
    let wanted = needed - freeing;
    if (wanted <= 0) return;
    const now = Date.now();
    const candidates = [...this.#byUid.values()]
      .filter((w) => !w.leaving && !w.retireAsked && w.booted && now - w.busySince >= BUSY_RECHECK_MS)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const worker of candidates) {
      if (wanted-- <= 0) break;
      worker.retireAsked = true;
      try {
        worker.send({ t: 'retire-idle' });
      } catch {
        worker.settleAnswer();
        continue;
      }
      setTimeout(() => {
        if (worker.retireAsked && !worker.leaving) {
          worker.busySince = Date.now();
          worker.settleAnswer();
          this.#pump();
        }
      }, RETIRE_ANSWER_MS).unref();
    }
    // Everyone is busy (or was a moment ago): look again shortly.
    if (wanted > 0 && this.#retryTimer === null) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = null;
        this.#pump();
      }, BUSY_RECHECK_MS);
    }
  }

  // ---- processes -------------------------------------------------------------------------

  /**
   * Spawned as root on purpose: the worker calls initgroups itself (spawn's uid/gid would drop
   * every supplementary group), then setgid and setuid, before it reads anything but its identity.
   */
  #spawn(env: Record<string, string>, args: string[]): WorkerProcess {
    const [monitorEnd, workerEnd] = socketpair();
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...WORKER_NODE_OPTIONS, WORKER_ENTRY, ...args], {
        stdio: ['ignore', 'inherit', 'inherit', workerEnd],
        env: { PATH: '/usr/bin:/bin', ...WORKER_MEMORY_ENV, ...this.#environment(), ...env },
        cwd: '/',
      });
    } catch (error) {
      closeAll([monitorEnd]);
      throw error;
    } finally {
      closeFd(workerEnd);
    }
    const worker = new WorkerProcess(child, new Channel(monitorEnd));
    this.#alive.add(worker);
    const bootTimer = setTimeout(() => this.#booted(worker), BOOT_ALLOWANCE_MS);
    bootTimer.unref();
    // Its death is handled on 'exit'; a channel that ends first (kill -9: EOF) already means it is
    // gone for new users, and an error alone must not be an unhandled 'error'.
    worker.control.on('error', () => this.#leaving(worker));
    worker.control.on('close', () => this.#leaving(worker));
    worker.control.on('message', (payload: Buffer, fds: number[]) => {
      closeAll(fds);
      this.#onMessage(worker, decodeMessage(payload)?.t);
    });
    let gone = false;
    const reap = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (gone) return;
      gone = true;
      clearTimeout(bootTimer);
      worker.control.destroy();
      this.#leaving(worker);
      this.#alive.delete(worker);
      const spareIndex = this.#spares.indexOf(worker);
      if (spareIndex >= 0) {
        this.#spares.splice(spareIndex, 1);
        this.#spareDied(worker, code, signal);
      } else if (worker.uid !== null) {
        const level = code === 0 || this.#stopping ? 'info' : 'warn';
        this.#log[level]('worker exited', { user: worker.user, code, signal });
      }
      this.#pump();
    };
    child.on('exit', reap);
    // A process that could not be started (EAGAIN, ENOMEM) is reported here, not thrown: without a
    // listener it would take the monitor down.
    child.on('error', (error) => {
      this.#log.error('cannot start a worker process', { error: error.message });
      if (child.pid === undefined) reap(null, null);
    });
    return worker;
  }

  /**
   * Messages a worker may send; it runs as its user, who may ptrace it, so each can only affect
   * that worker's own slot: "ready" (booted), "active" (recently used), "busy" (stays), "exiting".
   */
  #onMessage(worker: WorkerProcess, type: unknown): void {
    switch (type) {
      case 'ready':
        return this.#booted(worker);
      case 'active':
        worker.lastUsed = Date.now();
        return;
      case 'busy':
        worker.busySince = Date.now();
        worker.settleAnswer();
        return this.#pump();
      case 'exiting':
        return this.#leaving(worker);
      default:
        this.#log.warn('unexpected message from a worker ignored', { user: worker.user });
    }
  }

  #booted(worker: WorkerProcess): void {
    if (worker.booted) return;
    worker.booted = true;
    this.#pump();
  }

  #leaving(worker: WorkerProcess): void {
    worker.leaving = true;
    if (worker.uid !== null && this.#byUid.get(worker.uid) === worker) this.#byUid.delete(worker.uid);
    worker.settleAnswer();
  }

  // ---- spares ----------------------------------------------------------------------------

  #noteStart(): void {
    const now = Date.now();
    this.#recentStarts.push(now);
    while (this.#recentStarts.length > 0 && now - this.#recentStarts[0]! > DEMAND_WINDOW_MS)
      this.#recentStarts.shift();
  }

  /** server.spare_workers, more while users arrive faster (bounded by a few rounds of parallel starts). */
  #spareTarget(): number {
    const now = Date.now();
    const recent = this.#recentStarts.filter((at) => now - at <= DEMAND_WINDOW_MS).length;
    const { spareWorkers, workerStarts } = this.#limits;
    if (spareWorkers === 0) return 0;
    return Math.min(Math.max(spareWorkers, recent), spareWorkers + 4 * workerStarts);
  }

  #scheduleSpares(): void {
    if (this.#stopping || this.#spareTimer !== null) return;
    if (this.#spares.length >= this.#spareTarget()) return;
    this.#spareTimer = setTimeout(() => {
      this.#spareTimer = null;
      this.#refillSpares();
    }, this.#spareDelayMs);
  }

  #refillSpares(): void {
    // Waiting users come first: a slot goes to them, not to a spare.
    while (!this.#stopping && this.#waiters.length === 0 && this.#spares.length < this.#spareTarget()) {
      if (!this.#canSpawn()) return;
      try {
        const spare = this.#spawn({}, ['--spare']);
        this.#spares.push(spare);
      } catch (error) {
        this.#log.error('cannot start a spare worker', { error: (error as Error).message });
        this.#spareDelayMs = SPARE_MAX_DELAY_MS;
        this.#scheduleSpares();
        return;
      }
    }
  }

  /** A spare only ever dies of something outside us: wait longer each time it happens early. */
  #spareDied(spare: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#stopping) return;
    this.#spareDelayMs =
      Date.now() - spare.startedAt < 10_000
        ? Math.min(this.#spareDelayMs * 2, SPARE_MAX_DELAY_MS)
        : SPARE_DELAY_MS;
    this.#log.warn('spare worker exited', { code, signal, restartInMs: this.#spareDelayMs });
  }
}

/** True when the child exited within `ms`. */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
