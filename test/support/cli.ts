// Helpers for the command-line, lifecycle and non-root tests: run `bin/privdav` and collect its
// output, write a config file the test can rewrite (SIGHUP), start the daemon as an ordinary
// user, and look at the process tree in /proc.

import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { MAIN, childrenByRole, untilReady } from './daemon';
import type { TestUser } from './users';

export const PRIVDAV_BIN = join(__dirname, '..', '..', '..', 'bin', 'privdav');

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/privdav ARGS` to completion (bounded at 15 s: a command that hangs is a failure too). */
export function runPrivdav(args: string[]): CommandResult {
  const result = spawnSync(PRIVDAV_BIN, args, { encoding: 'utf8', timeout: 15_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export type ConfigSection = 'server' | 'auth' | 'shares' | 'limits' | 'storage' | 'log' | 'metrics';

export interface ConfigOptions {
  port: number;
  stateDir: string;
  /** TOML lines per section, after the defaults below; a key given here replaces the default. */
  set?: Partial<Record<ConfigSection, string[]>>;
}

/** A complete config for a test daemon on 127.0.0.1:port. */
export function configText({ port, stateDir, set = {} }: ConfigOptions): string {
  const defaults: Record<ConfigSection, string[]> = {
    server: [`listen = ["127.0.0.1:${port}"]`, 'user = "privdav"', `state_dir = "${stateDir}"`],
    auth: ['pam_service = "privdav"', 'min_uid = 1000'],
    shares: ['layout = "home"'],
    limits: [],
    storage: [],
    log: ['level = "info"'],
    metrics: [],
  };
  const keyOf = (line: string): string => line.split('=')[0]!.trim();
  return (Object.keys(defaults) as ConfigSection[])
    .map((section) => {
      const overrides = set[section] ?? [];
      const replaced = new Set(overrides.map(keyOf));
      const lines = [...defaults[section].filter((line) => !replaced.has(keyOf(line))), ...overrides];
      return `[${section}]\n${lines.join('\n')}\n`;
    })
    .join('\n');
}

/** Writes a config file with the mode helper/config.ts accepts (0600, owned by `owner` or root). */
export function writeConfig(path: string, text: string, owner?: TestUser): void {
  writeFileSync(path, text, { mode: 0o600 });
  if (owner !== undefined) chownSync(path, owner.uid, owner.gid);
}

/** Pids whose parent is `pid`, from /proc. */
export function childrenOf(pid: number): number[] {
  return allPids().filter((candidate) => parentOf(candidate) === pid);
}

/** Every live process whose real uid is `uid` (zombies left to a non-reaping pid 1 do not count). */
export function processesOfUid(uid: number): number[] {
  return allPids().filter((pid) => {
    if (!running(pid)) return false;
    try {
      const line = readFileSync(`/proc/${pid}/status`, 'utf8')
        .split('\n')
        .find((candidate) => candidate.startsWith('Uid:'));
      return line !== undefined && Number(line.split(/\s+/)[1]) === uid;
    } catch {
      return false;
    }
  });
}

/** What the process's descriptors point at under `dir` (an upload's temporary file shows as "DIR/#123 (deleted)"). */
export function openFilesUnder(pid: number, dir: string): string[] {
  const found: string[] = [];
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith(`${dir}/`)) found.push(target);
      } catch {
        // Closed while we looked.
      }
    }
  } catch {
    // The process is gone.
  }
  return found;
}

/** True while the pid exists and is not a zombie (an exited child nobody reaped yet counts as gone). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** Resolves with the connect outcome of a fresh TCP connection: 'connected' or the error code. */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** A daemon started as an ordinary user (no restart: the tests here run it once). */
export interface UserDaemon {
  port: number;
  /** The monitor's pid. */
  pid: number;
  output(): string;
  /** Pids of the monitor's children by role. */
  processes(): ReturnType<typeof childrenByRole>;
  /** Resolves with the monitor's exit code (or signal name) once it has exited. */
  exited: Promise<number | string | null>;
  /** SIGTERM (SIGKILL 15 s later), removes `dir`; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts the daemon as `user` (non-root mode): `setpriv` switches uid, gid and groups and execs
 * node, so the pid returned is the monitor's own. `dir` (alice's) is removed on stop.
 */
/** setpriv's arguments that run `privdav serve --config configPath` as `user` (with their groups). */
export function serveAsArguments(user: TestUser, configPath: string): string[] {
  return [
    '--reuid',
    String(user.uid),
    '--regid',
    String(user.gid),
    '--init-groups',
    '--',
    process.execPath,
    MAIN,
    'serve',
    '--config',
    configPath,
  ];
}

export async function startDaemonAs(
  user: TestUser,
  configPath: string,
  port: number,
  dir: string,
): Promise<UserDaemon> {
  const child: ChildProcess = spawn('setpriv', serveAsArguments(user, configPath), {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: dir,
    env: { PATH: '/usr/bin:/bin', HOME: user.home },
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const output = await untilReady(child, port);
  return {
    port,
    pid: child.pid!,
    output,
    processes: () => childrenByRole(child.pid!),
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
      return child.exitCode;
    },
  };
}

/** A directory owned by `user` (0700) for a config and state_dir the daemon, run as that user, can use. */
export function userOwnedDir(parent: string, user: TestUser, label: string): string {
  const dir = join(parent, `privdav-${label}-${user.name}`);
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, user.uid, user.gid);
  return dir;
}
