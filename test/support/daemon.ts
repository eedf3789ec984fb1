// Starts the real privdav daemon (monitor, web process, workers) for a test: a generated config
// on a free loopback port, a temp state_dir, output collected for assertions, and a clean stop.
// Also a small authenticated HTTP client for talking to it.

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestUser } from './users';

const ROOT = join(__dirname, '..', '..', '..');
export const MAIN = join(ROOT, 'dist', 'helper', 'main.js');

export interface DaemonOptions {
  layout?: 'home' | 'tilde';
  subdir?: string;
  /** Listen on this port (e.g. one a proxy in front was already pointed at); default: a free one. */
  port?: number;
  /** Extra TOML lines appended to the named sections: { auth: ['min_uid = 1000'] }. */
  extra?: Partial<
    Record<'server' | 'auth' | 'shares' | 'limits' | 'storage' | 'locks' | 'log' | 'metrics', string[]>
  >;
  /** Start through bash with these redirections after the command, e.g. "30</etc/shadow". */
  redirections?: string;
  /** The config sets tls_cert and tls_key: readiness is checked over TLS. */
  tls?: boolean;
}

export interface Daemon {
  port: number;
  url: string;
  pid: number;
  dir: string;
  output(): string;
  /** Pids of the monitor's children by role; `spares`: the spare worker, waiting, not yet anyone's. */
  processes(): { web: number[]; workers: number[]; spares: number[] };
  stop(): Promise<number | null>;
  /** Stops and starts again on the same config, port and state_dir. */
  restart(): Promise<Daemon>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export async function startDaemon(options: DaemonOptions = {}): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-test-'));
  const port = options.port ?? (await freePort());
  const extra = options.extra ?? {};
  // An extra line replaces a default one for the same key.
  const keyOf = (line: string): string => line.split('=')[0]!.trim();
  const section = (name: keyof NonNullable<DaemonOptions['extra']>, lines: string[]): string => {
    const added = extra[name] ?? [];
    const kept = lines.filter((line) => !added.some((other) => keyOf(other) === keyOf(line)));
    return `[${name}]\n${[...kept, ...added].join('\n')}\n`;
  };
  const config = [
    section('server', [
      `listen = ["127.0.0.1:${port}"]`,
      'user = "privdav"',
      `state_dir = "${join(dir, 'state')}"`,
    ]),
    section('auth', ['pam_service = "privdav"', 'min_uid = 1000']),
    section('shares', [`layout = "${options.layout ?? 'home'}"`, `subdir = "${options.subdir ?? ''}"`]),
    section('limits', []),
    section('storage', []),
    section('locks', []),
    section('log', ['level = "info"']),
    ...(extra.metrics === undefined ? [] : [section('metrics', [])]),
  ].join('\n');
  const configPath = join(dir, 'privdav.toml');
  // 0600: a [locks] database URL may carry a password (check-config refuses it world-readable).
  writeFileSync(configPath, config, { mode: 0o600 });
  return startDaemonWithConfig(configPath, port, dir, {
    redirections: options.redirections,
    tls: options.tls,
  });
}

export interface StartOptions {
  /** Added to the daemon's environment (NOTIFY_SOCKET, WATCHDOG_USEC, ...). */
  env?: Record<string, string>;
  /** The port speaks HTTPS (readiness is checked with an unverified TLS request). */
  tls?: boolean;
  /** Start through bash with these redirections after the command, e.g. "30</etc/shadow". */
  redirections?: string;
}

/** Starts the daemon on a config file the test wrote itself; `dir` is removed on stop. */
export async function startDaemonWithConfig(
  configPath: string,
  port: number,
  dir?: string,
  options: StartOptions = {},
): Promise<Daemon> {
  const workDir = dir ?? mkdtempSync(join(tmpdir(), 'privdav-test-'));
  const command = [process.execPath, MAIN, 'serve', '--config', configPath];
  const spawnOptions = {
    stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[],
    env: { ...process.env, ...options.env },
  };
  // `exec`: the shell becomes the monitor, holding what the redirections opened.
  const child: ChildProcess =
    options.redirections === undefined
      ? spawn(command[0]!, command.slice(1), spawnOptions)
      : spawn(
          '/bin/bash',
          ['-c', `exec ${command.map((word) => `'${word}'`).join(' ')} ${options.redirections}`],
          spawnOptions,
        );
  const output = await untilReady(child, port, options.tls ?? false);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    dir: workDir,
    output,
    processes: () => childrenByRole(child.pid!),
    async stop() {
      const code = await halt(child);
      rmSync(workDir, { recursive: true, force: true });
      return code;
    },
    async restart() {
      await halt(child);
      return startDaemonWithConfig(configPath, port, workDir, options);
    },
  };
}

/** SIGTERM, and SIGKILL if it has not exited 15 s later. Resolves to the exit code. */
async function halt(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/**
 * Collects a just-started daemon's output and waits (15 s at most) until its web process says it
 * is ready and `port` answers HTTP; throws with the output if it exits or never gets there.
 */
export async function untilReady(child: ChildProcess, port: number, tls = false): Promise<() => string> {
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`daemon exited at start:\n${output}`);
    if (/web process ready/.test(output) && (await answers(port, tls))) return () => output;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`daemon did not become ready:\n${output}`);
    }
    await sleep(50);
  }
}

async function answers(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const options = { port, host: '127.0.0.1', method: 'OPTIONS', path: '/', rejectUnauthorized: false };
    const req = (tls ? https : http).request(options, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

export function childrenByRole(monitorPid: number): { web: number[]; workers: number[]; spares: number[] } {
  const web: number[] = [];
  const workers: number[] = [];
  const spares: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== monitorPid) continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.includes('web.js')) web.push(Number(name));
      else if (cmdline.includes('worker.js')) {
        // A spare given its user keeps its command line, but then sets no_new_privs (every
        // serving worker has it; a waiting spare has not, as the monitor has not).
        const waiting =
          cmdline.includes('--spare') &&
          /^NoNewPrivs:\s+0$/m.test(readFileSync(`/proc/${name}/status`, 'utf8'));
        (waiting ? spares : workers).push(Number(name));
      }
    } catch {
      // The process went away while we looked.
    }
  }
  return { web, workers, spares };
}

/** A plain GET of `path` from a listener on 127.0.0.1 (the metrics listener): status, body, Content-Type. */
export function getPlain(
  port: number,
  path: string,
): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode!, text, type: String(res.headers['content-type']) }),
        );
      })
      .on('error', reject);
  });
}

/**
 * One series' value in a Prometheus exposition (`series` as it is written: name and labels),
 * `absent` when it has no line (NaN by default, which no comparison accepts).
 */
export function metricValue(text: string, series: string, absent = Number.NaN): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? absent : Number(line.slice(series.length + 1));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
  user?: TestUser | { name: string; password: string } | null;
  agent?: http.Agent | false;
  /** Source address (a loopback one, "127.0.0.2" ...), to play a client at another address. */
  from?: string;
}

/**
 * A PUT of `parts` bytes as `user` whose head goes first and whose body follows one byte a second
 * (a streamed upload, never the one-call path); resolves to its status.
 */
export function slowPut(
  daemon: { port: number },
  path: string,
  user: { name: string; password: string },
  parts: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: daemon.port,
      path,
      method: 'PUT',
      agent: false,
      headers: {
        Authorization: `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`,
        'Content-Length': parts,
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    let sent = 0;
    const timer = setInterval(() => {
      req.write('x');
      if (++sent === parts) {
        clearInterval(timer);
        req.end();
      }
    }, 1000);
  });
}

/** One HTTP request with Basic auth as `user`. */
export function request(
  daemon: { port: number },
  path: string,
  options: RequestOptions = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(options.headers ?? {}) };
    if (options.user) {
      headers.Authorization = `Basic ${Buffer.from(`${options.user.name}:${options.user.password}`).toString('base64')}`;
    }
    if (options.body !== undefined) headers['Content-Length'] = Buffer.byteLength(options.body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: daemon.port,
        path,
        method: options.method ?? 'GET',
        headers,
        agent: options.agent,
        localAddress: options.from,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** True when a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function processOwner(pid: number): string {
  return execFileSync('ps', ['-o', 'user=', '-p', String(pid)], { encoding: 'utf8' }).trim();
}
