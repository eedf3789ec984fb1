// The worker after its identity drop: takes K_u and its settings from the monitor on the control
// channel (fd 3), serves LocalStorage on every channel the monitor attaches, and leaves when it
// has been idle for the configured time. Everything it receives is validated.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type * as Posix from 'posix';
import { Channel } from '../common/channel';
import { LocalStorage, LayoutConfig } from './local-storage';
import { StorageServerState, serveStorage } from './storage-server';
import { closeAll } from '../common/rpc';
import { Logger } from '../common/log';
import { dupFd, setNoNewPrivs } from '../native';
import {
  WorkerIdentity,
  WorkerSettings,
  decodeMessage,
  encodeMessage,
  isBoundedString,
} from '../common/protocol';
import { isUserName } from '../common/names';

const CONTROL_FD = 3;
const MAX_CHANNELS = 64;
/** The monitor learns of this worker's use at most this often: its least-recently-used order. */
const ACTIVITY_REPORT_MS = 1000;

const logger = new Logger('worker');
function log(level: 'info' | 'warn' | 'error', message: string): void {
  logger.log(level, message);
}

function checkSettings(value: unknown): WorkerSettings | null {
  const settings = value as Partial<WorkerSettings> | null;
  if (typeof settings !== 'object' || settings === null) return null;
  const { layout, subdir, idleTimeoutMs, durable, maxInfinityEntries, minUid, onlyUid } = settings;
  if (onlyUid !== null && !Number.isSafeInteger(onlyUid)) return null;
  if (layout !== 'home' && layout !== 'tilde') return null;
  if (!isBoundedString(subdir, 1024) || subdir.startsWith('/') || subdir.split('/').includes('..'))
    return null;
  if (!Number.isSafeInteger(idleTimeoutMs) || (idleTimeoutMs as number) < 100) return null;
  if (typeof durable !== 'boolean') return null;
  if (!Number.isSafeInteger(maxInfinityEntries) || !Number.isSafeInteger(minUid)) return null;
  return settings as WorkerSettings;
}

function makeLayout(identity: WorkerIdentity, settings: WorkerSettings): LayoutConfig {
  if (settings.layout === 'home') {
    const root = settings.subdir === '' ? identity.home : join(identity.home, settings.subdir);
    // A configured subdir the user has not made yet is created for them, private by default.
    if (settings.subdir !== '') mkdirSync(root, { recursive: true, mode: 0o700 });
    return { kind: 'home', root };
  }
  const homes = new Map<string, string | null>();
  return {
    kind: 'tilde',
    subdir: settings.subdir,
    homeOf(name: string): string | null {
      if (!isUserName(name)) return null;
      let home = homes.get(name);
      if (home === undefined) {
        try {
          // Loaded on first use: the home layout never needs NSS, and every ms of start-up counts.
          const posix = require('posix') as typeof Posix;
          const entry = posix.getpwnam(name);
          // System accounts have no share, whatever their home is.
          const eligible =
            entry.uid >= settings.minUid && (settings.onlyUid === null || entry.uid === settings.onlyUid);
          home = eligible && entry.dir.startsWith('/') ? entry.dir : null;
        } catch {
          home = null;
        }
        if (homes.size > 4096) homes.clear();
        homes.set(name, home);
      }
      return home;
    },
  };
}

export function runWorker(identity: WorkerIdentity): void {
  setNoNewPrivs();
  const control = new Channel(CONTROL_FD);
  const servers = new Set<StorageServerState>();
  let storage: LocalStorage | null = null;
  let userKey: Buffer | null = null;
  let settings: WorkerSettings | null = null;
  let lastActivity = Date.now();
  let lastReport = 0;
  let leaving = false;

  const tell = (message: object): void => {
    try {
      control.send(encodeMessage(message));
    } catch {
      // The monitor is gone; the control channel's close makes us leave.
    }
  };
  /** Closes every channel if all are idle (true), else none (false). */
  const closeChannelsIfIdle = (): boolean => {
    if (![...servers].every((server) => server.idle)) return false;
    for (const server of servers) server.closeIdle();
    return true;
  };

  const leave = (code: number, reason: string): void => {
    if (leaving) return;
    leaving = true;
    log(code === 0 ? 'info' : 'error', `exiting: ${reason}`);
    tell({ t: 'exiting' });
    // Let the goodbye reach the monitor, then go.
    setTimeout(() => process.exit(code), 20).unref();
  };

  const attach = (fd: number): void => {
    if (storage === null || userKey === null || settings === null || leaving) {
      closeAll([fd]);
      return;
    }
    for (const server of servers) if (!server.open) servers.delete(server);
    if (servers.size >= MAX_CHANNELS) {
      log('warn', 'too many channels; refusing another');
      closeAll([fd]);
      return;
    }
    const channel = new Channel(fd);
    servers.add(
      serveStorage(channel, {
        storage,
        userKey,
        uid: identity.uid,
        maxInfinityEntries: settings.maxInfinityEntries,
        log,
        dup: dupFd,
        onActivity: () => {
          lastActivity = Date.now();
          if (lastActivity - lastReport >= ACTIVITY_REPORT_MS) {
            lastReport = lastActivity;
            tell({ t: 'active' });
          }
        },
      }),
    );
  };

  control.on('message', (payload: Buffer, fds: number[]) => {
    const message = decodeMessage(payload);
    if (message?.t === 'init' && userKey === null && fds.length === 0) {
      const next = checkSettings(message.settings);
      const key = typeof message.key === 'string' ? Buffer.from(message.key, 'base64') : Buffer.alloc(0);
      if (next === null || key.length !== 32) return leave(70, 'malformed init from the monitor');
      userKey = key;
      settings = next;
      storage = new LocalStorage({ layout: makeLayout(identity, next), durable: next.durable });
      const timer = setInterval(
        () => {
          const busy = [...servers].some((server) => server.busy);
          if (!busy && Date.now() - lastActivity >= next.idleTimeoutMs && closeChannelsIfIdle())
            leave(0, 'idle');
        },
        Math.min(next.idleTimeoutMs, 5000),
      );
      timer.unref();
      tell({ t: 'ready' });
      return;
    }
    if (message?.t === 'retire-idle' && fds.length === 0) {
      // The monitor needs room for another user (server.max_workers): go now if nothing is in flight.
      if (leaving) return;
      if (closeChannelsIfIdle()) leave(0, 'retired to make room for another user');
      else tell({ t: 'busy' });
      return;
    }
    if (message?.t === 'attach' && fds.length === 1) {
      attach(fds[0]!);
      return;
    }
    if (message?.t === 'retire' && fds.length === 0) {
      // Our settings are stale: finish what is in flight, then go (new requests reach a new worker).
      const timer = setInterval(() => {
        if (![...servers].some((server) => server.busy)) leave(0, 'retired (settings or groups changed)');
      }, 100);
      timer.unref();
      return;
    }
    closeAll(fds);
    log('warn', 'unexpected message on the control channel refused');
  });
  // Without its monitor a worker has no reason to live.
  control.on('error', () => leave(0, 'monitor channel closed'));
  control.on('close', () => leave(0, 'monitor channel closed'));
}
