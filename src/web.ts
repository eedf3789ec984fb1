// The web process: speaks HTTP and WebDAV on the listen sockets the monitor hands it (fds 4...),
// asks the monitor (fd 3) for logins and worker channels, and never opens a user's file itself.
// Started as root by the monitor only so that it can lock itself in: it loads all its code,
// chroots into state_dir (where nothing but its lock database lives), drops every group and
// becomes server.user — all before it accepts a connection.

import { closeSync, openSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Server } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { dropProblem, readProcStatus } from '../common/proc-status';
import { Logger } from '../common/log';
import { OOM_SCORE_ADJ, setOomScoreAdj } from '../common/oom-score';
import type { WebInit } from '../common/protocol';
import { observeRequest } from './http/access-log';
import { Drain } from './http/drain';
import { SiteMetrics } from './http/metrics';
import { setNoNewPrivs } from '../native';
import { MonitorClient } from './monitor-client';
import { Authenticator } from './http/auth';
import { DavHandler, createPipeline } from './http/server';
import { ConnectionGuard, ConnectionLimits } from './http/connections';
import { WorkerChannels } from './storage/privsep-storage';
import { createDavHandler } from './dav/handler';
import { SqliteLockStore, type LockStore } from './dav/lock-store';
import { PostgresLockStore } from './dav/postgres-lock-store';
import { lookup } from 'node:dns/promises';
import posix from 'posix';
import Database from 'better-sqlite3';

const MONITOR_FD = 3;
const FIRST_LISTEN_FD = 4;
const HEADERS_TIMEOUT_SLACK_MS = 5000;

const log = new Logger('web');
const servers: Server[] = [];
const drain = new Drain();
let metrics: SiteMetrics | null = null;
let dav: DavHandler | null = null;
let lockStore: LockStore | null = null;
let stopping = false;

function fatal(message: string): never {
  log.error(message);
  process.exit(70);
}

/** chroot + drop, when started as root. In non-root mode there is nothing to drop. */
function confine(stateDir: string): string {
  const target = process.env.PRIVDAV_WEB_USER;
  if (process.getuid!() !== 0) return stateDir;
  if (target === undefined) fatal('started as root without PRIVDAV_WEB_USER');
  const account = posix.getpwnam(target);
  if (account.uid === 0) fatal('refusing to serve HTTP as root');
  // Everything loaded lazily must be loaded now: after the chroot there is no node_modules.
  // better-sqlite3 loads its native addon on first use.
  new Database(':memory:').close();
  // /proc is not inside the chroot: keep a window onto our own status to verify the drop.
  const statusFd = openSync('/proc/self/status', 'r');
  posix.chroot(stateDir);
  process.chdir('/');
  process.setgroups!([]);
  process.setgid!(account.gid);
  process.setuid!(account.uid);
  const status = readProcStatus({ fd: statusFd });
  closeSync(statusFd);
  const problem = dropProblem(status, account.uid, account.gid);
  if (problem !== null) fatal(problem);
  if (status.groups.length !== 0) fatal('supplementary groups remain');
  return '/';
}

let current: WebInit | null = null;
let channels: WorkerChannels | null = null;
let connections: ConnectionGuard | null = null;

function connectionLimits(init: WebInit): ConnectionLimits {
  const { maxConnections, maxConnectionsPerAddress, headerTimeoutMs, headerTimeoutMaxMs, headerMinRate } =
    init.limits;
  return {
    maxConnections,
    maxConnectionsPerAddress,
    headerTimeoutMs,
    headerTimeoutMaxMs,
    headerMinRate,
    ipv6Prefix: init.ipv6Prefix,
  };
}

function configure(init: WebInit): void {
  log.setLevel(init.logLevel);
  if (current !== null && init.tls !== null && JSON.stringify(current.tls) !== JSON.stringify(init.tls)) {
    replaceCertificate(init.tls);
  }
  if (current !== null && current.workerGeneration !== init.workerGeneration) channels?.retireAll();
  current = init;
  if (connections !== null) connections.limits = connectionLimits(init);
  for (const server of servers) {
    (server as http.Server).timeout = init.limits.requestTimeoutMs;
    (server as http.Server).headersTimeout = init.limits.headerTimeoutMaxMs + HEADERS_TIMEOUT_SLACK_MS;
  }
  if (lockStore === null) throw new Error('not started');
  dav = createDavHandler({
    lockStore,
    maxXmlBytes: init.limits.maxXmlBytes,
    maxInfinityEntries: init.limits.maxInfinityEntries,
    maxPropfindProperties: init.limits.maxPropfindProperties,
    contentOrigin: init.contentOrigin,
    maxLockTimeoutS: init.limits.maxLockTimeoutS,
    maxLockOwnerBytes: init.limits.maxLockOwnerBytes,
    lockBounds: {
      maxPerPrincipal: init.limits.maxLocksPerUser,
      maxPerResource: init.limits.maxLocksPerResource,
      maxStoreBytes: init.limits.maxLockDbBytes,
    },
    maxUploadBytes: init.limits.maxUploadBytes,
    publicUrl: init.publicUrl,
    hide: init.hide,
    log: (level, message, fields) => log.log(level, message, fields),
  });
}

/**
 * The database host's address, looked up before the chroot (which has no /etc/hosts or
 * resolv.conf); null for the SQLite store.
 */
async function lockDatabaseAddress(database: string): Promise<string | null> {
  if (database === 'sqlite') return null;
  const host = new URL(database).hostname.replace(/^\[(.*)\]$/, '$1');
  return (await lookup(host)).address;
}

async function openLockStore(database: string, root: string, address: string | null): Promise<LockStore> {
  if (database === 'sqlite') return new SqliteLockStore(`${root.replace(/\/$/, '')}/locks.sqlite`);
  const store = new PostgresLockStore({
    url: database,
    hostAddress: address ?? undefined,
    log: (level, message, fields) => log.log(level, message, fields),
  });
  const host = new URL(database).host;
  await store.ensureSchema().then(
    () => log.info('locks in PostgreSQL', { host }),
    (error: Error) =>
      log.error('lock database unreachable: LOCK and writes get 503 until it answers', {
        host,
        error: error.message,
      }),
  );
  return store;
}

/**
 * New connections get the new pair, connections already open finish on the old one (Node keeps
 * each connection's context). The monitor checked the pair; should Node still refuse it, the old
 * one stays and the log says why.
 */
function replaceCertificate(tls: SecureContextOptions): void {
  try {
    for (const server of servers) (server as https.Server).setSecureContext(tls);
    log.info('certificate replaced: new connections get the new one');
  } catch (error) {
    log.error('new certificate refused; keeping the old one', { error: (error as Error).message });
  }
}

async function start(init: WebInit, monitor: MonitorClient): Promise<void> {
  const address = await lockDatabaseAddress(init.lockDatabase);
  const root = confine(init.stateDir);
  setNoNewPrivs();
  lockStore = await openLockStore(init.lockDatabase, root, address);
  configure(init);
  const siteMetrics = new SiteMetrics({
    connections: () => Promise.resolve(drain.connections),
    locks: () => lockStore!.liveLocks(Date.now()),
  });
  metrics = siteMetrics;
  monitor.observeCall = (op, seconds) => siteMetrics.observeChannelCall(op, seconds);
  channels = new WorkerChannels(
    monitor,
    () => {
      const limits = current?.limits ?? init.limits;
      return { callMs: limits.workerCallTimeoutMs, treeMs: limits.workerTreeTimeoutMs };
    },
    (op, seconds) => siteMetrics.observeChannelCall(op, seconds),
  );
  const workerChannels = channels;
  monitor.onWorkerRetired = (uid) => workerChannels.retire(uid);
  const observer = { log, accessLog: () => current!.accessLog, metrics: siteMetrics };
  const guard = new ConnectionGuard(connectionLimits(init), log);
  connections = guard;
  const davPipeline = createPipeline({
    onAuthenticated: (req) => guard.markAuthenticated(req),
    authenticator: new Authenticator(monitor),
    channels,
    realm: () => current!.realm,
    log,
    dav: () => dav!,
  });
  const pipeline = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    observeRequest(req, res, observer);
    drain.request(req, res);
    davPipeline(req, res);
  };
  // request_timeout is an idle timeout (a slow but moving upload is fine), so Node's whole-request
  // timer is off and the socket's inactivity timer does the job.
  const options: http.ServerOptions = { maxHeaderSize: init.limits.maxHeaderBytes, requestTimeout: 0 };
  let listening = 0;
  init.listeners.forEach((address, index) => {
    const server: Server =
      init.tls === null
        ? http.createServer(options, pipeline)
        : https.createServer(
            {
              ...options,
              cert: init.tls.cert,
              key: init.tls.key,
              // TLS 1.2 with the configured (ECDHE + AEAD) suites only; TLS 1.3's suites are all AEAD.
              minVersion: init.tls.minVersion,
              ciphers: init.tls.ciphers,
              honorCipherOrder: true,
            },
            pipeline,
          );
    const httpServer = server as http.Server;
    httpServer.on('checkContinue', pipeline);
    httpServer.keepAliveTimeout = 30_000;
    // The guard enforces the head deadline (checked every second); Node's own, checked only every
    // 30 s, stays as a backstop. So does max_connections: the guard makes room instead of refusing.
    httpServer.headersTimeout = init.limits.headerTimeoutMaxMs + HEADERS_TIMEOUT_SLACK_MS;
    httpServer.timeout = init.limits.requestTimeoutMs;
    guard.attach(server);
    server.on('error', (error) => fatal(`cannot serve ${address}: ${error.message}`));
    drain.watch(server, init.tls !== null);
    server.listen({ fd: FIRST_LISTEN_FD + index }, () => {
      if (++listening === init.listeners.length) {
        monitor.ready();
        log.info('serving', { on: init.listeners.join(' '), tls: init.tls !== null });
      }
    });
    servers.push(server);
  });
  init.metricsListeners.forEach((address, index) => {
    const server = siteMetrics.createServer();
    server.on('error', (error) => log.error(`cannot serve metrics on ${address}`, { error: error.message }));
    server.listen({ fd: FIRST_LISTEN_FD + init.listeners.length + index }, () =>
      log.info('serving metrics', { on: address }),
    );
  });
  process.on('SIGTERM', () => stop(init.shutdownGraceMs));
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
}

/** Stop accepting, let in-flight requests finish (bounded by the grace period), leave. */
function stop(graceMs: number): void {
  if (stopping) return;
  stopping = true;
  drain.start(servers, graceMs, () => process.exit(0));
}

function main(): void {
  // Above the monitor's (inherited) value: under memory pressure workers go first, then this, the monitor last.
  setOomScoreAdj(OOM_SCORE_ADJ.web);
  let started = false;
  const monitor = new MonitorClient(
    MONITOR_FD,
    (init) => {
      try {
        if (!started) {
          started = true;
          start(init, monitor).catch((error: Error) => fatal(`cannot start: ${error.message}`));
        } else {
          configure(init);
          log.info('configuration reloaded');
        }
      } catch (error) {
        fatal(`cannot start: ${(error as Error).message}`);
      }
    },
    () => {
      // Without the monitor there are no logins and no workers: leave, systemd restarts the unit.
      log.error('monitor channel lost; exiting');
      process.exit(1);
    },
    (ping) => {
      metrics?.setMonitorStats(ping.stats);
      return metrics?.answered ?? 0;
    },
  );
}

main();
