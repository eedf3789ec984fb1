// What the bench needs from a server under test (privdav, Apache, or Apache standing in for privdav),
// plus the small process helpers both implementations share: spawning, readiness probes, stopping.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as http from 'node:http';
import { readProcStat } from './proc-stat';

export type ServerName = 'privdav' | 'apache';

export interface BenchServer {
  /** Which side of the comparison this server is. */
  readonly name: ServerName;
  /** What actually runs, for the report: "privdav", "apache 2.4 mod_dav_fs", "apache (stand-in for privdav)". */
  readonly label: string;
  readonly port: number;
  /** `Basic ...` for servers that authenticate, null for Apache (no auth). */
  readonly authorization: string | null;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Starts the server afresh and resolves when it can take requests, but before anything has
   * warmed a user's state: the moment a cold-start measurement begins.
   */
  restartCold(): Promise<void>;
  /** PID of the top process (privdav's monitor, Apache's parent); null when not running. */
  rootPid(): number | null;
  /** Names a process of this server's tree for the memory figures ("monitor", "web", "worker", ...). */
  roleOf(facts: { isRoot: boolean; uid: number; command: string }): string;
}

/**
 * What both servers share: one ServerProcess at a time, stopped the same way, and a cold restart
 * that is a stop and a start (each server's start() decides when it can take requests).
 */
export abstract class ProcessBackedServer {
  protected process: ServerProcess | null = null;

  abstract start(): Promise<void>;

  async stop(): Promise<void> {
    await this.process?.stop();
    this.process = null;
  }

  /**
   * privdav: the next authenticated request pays for PAM and for a worker for the user (the
   * spare's). Apache has no per-user state: its cold start is the first request after start.
   */
  async restartCold(): Promise<void> {
    await this.stop();
    await this.start();
  }

  rootPid(): number | null {
    return this.process?.pid ?? null;
  }
}

/** Picks a free loopback port by binding port 0 and closing again (racy in theory, fine on a bench box). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port from listen(0)'));
      });
    });
  });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once a TCP connection to the port is accepted by the kernel (the socket is bound and listening). */
export async function waitForTcp(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`server on port ${port} exited while starting`);
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (connected) return;
    await delay(20);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/**
 * Resolves once an HTTP request without credentials gets any response. For privdav that proves the
 * web process runs (the monitor binds the socket, so a TCP connect alone proves nothing) while no
 * user has logged in yet.
 */
export async function waitForHttpAnswer(
  port: number,
  timeoutMs: number,
  alive: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`server on port ${port} exited while starting`);
    const answered = await new Promise<boolean>((resolve) => {
      const request = http.request(
        { host: '127.0.0.1', port, method: 'OPTIONS', path: '/', agent: false, timeout: 1000 },
        (response) => {
          response.resume();
          response.once('end', () => resolve(true));
        },
      );
      request.once('timeout', () => request.destroy(new Error('timeout')));
      request.once('error', () => resolve(false));
      request.end();
    });
    if (answered) return;
    await delay(25);
  }
  throw new Error(`no HTTP answer on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** A spawned server process whose output goes to a log file, so a failure report can quote it. */
export class ServerProcess {
  readonly child: ChildProcess;
  private exited = false;
  private readonly exitPromise: Promise<void>;

  constructor(
    command: string,
    args: string[],
    readonly logPath: string,
  ) {
    const log = fs.openSync(logPath, 'a');
    // Its own process group: a Ctrl-C at the terminal reaches the bench, which then stops the
    // servers in order, instead of reaching the servers directly in the middle of a turn.
    this.child = spawn(command, args, { stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.exited = true;
        resolve();
      });
      this.child.once('error', () => {
        this.exited = true;
        resolve();
      });
    });
  }

  get pid(): number | null {
    return this.exited ? null : (this.child.pid ?? null);
  }

  isAlive(): boolean {
    return !this.exited;
  }

  /** SIGTERM, then SIGKILL to the process and any descendants still alive after the grace period. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    const descendants = descendantPids(this.child.pid);
    this.child.kill('SIGTERM');
    let graceTimer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exitPromise.then(() => false),
      new Promise<boolean>((resolve) => (graceTimer = setTimeout(() => resolve(true), graceMs))),
    ]);
    // A pending grace timer would keep the bench alive for the whole grace period after the end.
    clearTimeout(graceTimer);
    if (timedOut) this.child.kill('SIGKILL');
    await this.exitPromise;
    // Children that outlived their parent (a worker the monitor did not reap, say) would keep the
    // bench user busy and make `userdel` fail.
    for (const pid of descendants) killQuietly(pid);
  }

  tailOfLog(bytes = 2000): string {
    try {
      const text = fs.readFileSync(this.logPath, 'utf8');
      return text.slice(-bytes);
    } catch {
      return '';
    }
  }
}

export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** All descendants of a PID, found by reading the parent of every process in /proc. */
export function descendantPids(rootPid: number): number[] {
  const childrenOf = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = parentPid(Number(entry));
    if (parent === null) continue;
    const list = childrenOf.get(parent) ?? [];
    list.push(Number(entry));
    childrenOf.set(parent, list);
  }
  const result: number[] = [];
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    for (const child of childrenOf.get(pid) ?? []) {
      result.push(child);
      pending.push(child);
    }
  }
  return result;
}

function parentPid(pid: number): number | null {
  return readProcStat(pid)?.ppid ?? null;
}
