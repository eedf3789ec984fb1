// The monitor: the only root process. It binds the listen sockets, holds the cookie key K, runs
// the web process as the unprivileged account and a worker per active user, and answers the
// web process's few requests (the table below) — it never sees HTTP, XML or a WebDAV path.
// Every message from the web process is treated as hostile: bounded, validated, refused and
// logged when wrong, and the monitor goes on.

import { ChildProcess, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Channel } from '../common/channel';
import { Config, changesNeedingRestart, configWarnings, loadConfig } from './config';
import { deriveUserKey, issueCookie, newMasterKey, peekClaims, verifyCookie } from './cookie';
import { Account, lookUpAccount, refusalReason, workerIdentity } from './accounts';
import { LoginThrottle, ThrottlePolicy } from './login-throttle';
import { PamQueue, pamConcurrency } from './pam';
import { Cidr, inCidr, parseCidr, sourceKey } from '../common/source-address';
import { RecentLogins } from './recent-logins';
import { OOM_SCORE_ADJ, setOomScoreAdj } from '../common/oom-score';
import { closeAll } from '../common/rpc';
import { MAX_PASSWORD_BYTES, MAX_USER_BYTES } from '../common/names';
import { closeFd, groupList, socketpair, tcpListen } from '../native';
import { PoolFullError, WorkerPool, waitForExit } from './worker-pool';
import { LOG_FORMAT_ENV, Logger, logFormat } from '../common/log';
import { notifySystemd } from './sd-notify';
import { Watchdog, monotonicUsec, residentBytes } from './watchdog';
import {
  MAX_REMOTE_CHARS,
  LoginResult,
  MonitorStats,
  WebInit,
  WorkerSettings,
  decodeMessage,
  encodeMessage,
  isBoundedString,
  isRequestId,
} from '../common/protocol';

const WEB_ENTRY = join(__dirname, '..', 'src', 'web.js');
/**
 * V8's young generation may otherwise grow to 3 x 16 MiB. With 4 MiB semi-spaces the web process's
 * peak VmRSS over the bench's workloads fell by ~20 MiB (115-127 -> 97-106 MiB in paired two-round
 * runs) with CPU per request unchanged for 4 KiB GET and PUT and lower for PROPFIND over 1,000
 * entries (718-799 -> 690-694 us); 2 MiB saved little more and cost PROPFIND 5-15%.
 */
const WEB_NODE_OPTIONS = ['--max-semi-space-size=4'];
/** Retry-After of a 503 when PAM is saturated: a few PAM calls' time. */
const OVERLOAD_RETRY_AFTER_S = 2;
/** Longest a login waits for its address's logins in flight to be decided (then 503). */
const SOURCE_WAIT_MS = 10_000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
const STABLE_AFTER_MS = 30_000;
/** A certificate this close to its end is warned about at every start and reload. */
const CERTIFICATE_WARN_MS = 14 * 24 * 3600 * 1000;
/**
 * A recent login is reused only with more than this left: the web process renews a cookie 5 s
 * before it expires, and that renewal must reach PAM rather than get a cookie about to lapse.
 */
const RECENT_LOGIN_MIN_REMAINING_MS = 10_000;

type Reply = (message: object, fds?: number[]) => void;

/** One row per request the web process may make: who may call it when, how it is checked, what it does. */
interface RequestSpec {
  /** Allowed only once per web process (OpenSSH's MON_ONCE). */
  once: boolean;
  /** Allowed only after the web process said it is ready (it must not serve before). */
  afterReady: boolean;
  check(message: Record<string, unknown>): boolean;
  /** How a request that failed its check is answered when it has an id. */
  refuse?(id: number, reply: Reply): void;
  handle(message: Record<string, unknown>, reply: Reply, web: WebProcess): void;
}

interface WebProcess {
  /** Which of the server.web_processes slots it fills (restarts reuse the slot). */
  slot: number;
  child: ChildProcess;
  channel: Channel;
  ready: boolean;
  used: Set<string>;
  startedAt: number;
  /** The watchdog's view: when it last answered a ping, and how many requests it had answered. */
  lastPongAt: number;
  requests: number;
}

export class Monitor {
  #config: Config;
  readonly #log: Logger;
  readonly #masterKey = newMasterKey();
  readonly #throttle: LoginThrottle;
  #throttleExempt: Cidr[];
  readonly #pam: PamQueue;
  readonly #pool: WorkerPool;
  readonly #recentLogins = new RecentLogins();
  readonly #listenFds: number[] = [];
  readonly #nonRoot: boolean;
  /** One entry per slot; several web processes share the listen sockets (the kernel spreads connections). */
  readonly #webs: (WebProcess | null)[] = [];
  readonly #restartDelays: number[] = [];
  #notifiedReady = false;
  #workerGeneration = 0;
  #stopping = false;
  #webAccount: Account;
  readonly #requests: Record<string, RequestSpec>;
  readonly #logins: Record<LoginResult, number> = { ok: 0, wrong: 0, refused: 0, backoff: 0, overload: 0 };
  /** Bound for [metrics] listen; handed to the first web process only (one set of counters to scrape). */
  readonly #metricsFds: number[] = [];
  readonly #watchdog: Watchdog;
  /** The TLS pair last read successfully, and the fingerprint it was logged under. */
  #tls: { cert: string; key: string; fingerprint: string } | null = null;

  readonly #webEntry: string;
  readonly #webArgs: string[];

  /** `web` replaces the web process's program: only the tests use it, to play a hostile web process. */
  constructor(
    config: Config,
    log: Logger,
    web: { entry: string; args: string[] } = { entry: WEB_ENTRY, args: [] },
  ) {
    this.#config = config;
    this.#webEntry = web.entry;
    this.#webArgs = web.args;
    this.#log = log;
    this.#nonRoot = process.getuid!() !== 0;
    const webAccount = this.#nonRoot ? currentAccount() : lookUpAccount(config.server.user);
    if (webAccount === null) {
      throw new Error(
        `server.user "${config.server.user}" does not exist: create it with ` +
          `useradd --system --no-create-home --shell /usr/sbin/nologin ${config.server.user}`,
      );
    }
    if (!this.#nonRoot && webAccount.uid === 0) throw new Error('server.user must not be root');
    this.#webAccount = webAccount;
    this.#pool = new WorkerPool({
      limits: config.server,
      log,
      initMessage: (uid) => ({
        t: 'init',
        key: deriveUserKey(this.#masterKey, uid).toString('base64'),
        settings: this.#workerSettings(this.#config),
      }),
      environment: logEnvironment,
    });
    this.#watchdog = new Watchdog({
      webs: () => this.#webs,
      ping: (web, seq) => this.#ping(web as WebProcess, seq),
      counts: () => ({
        users: this.#pool.counts.workers,
        workers: this.#pool.counts.alive,
      }),
    });
    this.#throttle = new LoginThrottle(throttlePolicy(config));
    this.#throttleExempt = exemptNetworks(config);
    this.#pam = new PamQueue(pamConcurrency(config.auth.pamConcurrency), config.auth.pamQueue);
    this.#requests = {
      ready: {
        once: true,
        afterReady: false,
        check: () => true,
        handle: (_message, _reply, web) => {
          web.ready = true;
          this.#log.info('web process ready', { pid: web.child.pid });
          this.#watchdog.greet(web);
          if (!this.#notifiedReady) {
            this.#notifiedReady = true;
            notifySystemd('READY=1\nSTATUS=serving');
          }
        },
      },
      auth: {
        once: false,
        afterReady: true,
        check: (m) =>
          isRequestId(m.id) &&
          isBoundedString(m.user, MAX_USER_BYTES) &&
          isBoundedString(m.password, MAX_PASSWORD_BYTES) &&
          isBoundedString(m.remote, MAX_REMOTE_CHARS),
        refuse: (id, reply) => {
          setTimeout(
            () => reply({ t: 'auth', id, ok: false, reason: 'denied' }),
            this.#config.auth.failureDelayMs,
          );
        },
        handle: (m, reply) =>
          this.#auth(m.id as number, m.user as string, m.password as string, m.remote as string, reply),
      },
      connect: {
        once: false,
        afterReady: true,
        check: (m) => isRequestId(m.id) && isBoundedString(m.cookie, 512),
        refuse: (id, reply) => reply({ t: 'connect', id, ok: false, code: 'COOKIE_INVALID' }),
        handle: (m, reply) => void this.#connect(m.id as number, m.cookie as string, reply),
      },
      pong: {
        once: false,
        afterReady: true,
        check: (m) => isRequestId(m.seq) && isRequestId(m.requests),
        handle: (m, _reply, web) => this.#watchdog.pong(web, m.seq as number, m.requests as number),
      },
    };
  }

  start(): void {
    if (this.#nonRoot && /^NoNewPrivs:\s*1$/m.test(readFileSync('/proc/self/status', 'utf8'))) {
      // pam_unix checks a non-root caller's password with the setgid unix_chkpwd helper, which
      // no_new_privs disarms: every login would fail as if the password were wrong.
      this.#log.warn('started with no_new_privs in non-root mode: PAM cannot check passwords (unix_chkpwd)');
    }
    this.#prepareStateDir();
    if (!this.#nonRoot) {
      // Last to go under memory pressure; the children raise their own values (common/oom-score.ts).
      const problem = setOomScoreAdj(OOM_SCORE_ADJ.monitor);
      if (problem !== null) {
        this.#log.warn(
          'cannot lower oom_score_adj (needs CAP_SYS_RESOURCE; the shipped unit sets OOMScoreAdjust)',
          {
            to: OOM_SCORE_ADJ.monitor,
            error: problem,
          },
        );
      }
    }
    for (const address of this.#config.server.listen) {
      try {
        this.#listenFds.push(tcpListen(address.host, address.port, 511));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const hint =
          code === 'EADDRINUSE'
            ? 'another process listens there; stop it or change server.listen'
            : code === 'EACCES'
              ? 'ports below 1024 need root'
              : 'check server.listen';
        throw new Error(`cannot listen on ${address.text}: ${code ?? (error as Error).message} (${hint})`);
      }
    }
    this.#log.info('listening', { on: this.#config.server.listen.map((address) => address.text).join(' ') });
    for (const address of this.#config.metrics.listen) {
      try {
        this.#metricsFds.push(tcpListen(address.host, address.port, 64));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new Error(
          `cannot listen on ${address.text} (metrics.listen): ${code ?? (error as Error).message}`,
        );
      }
    }
    for (const warning of configWarnings(this.#config)) this.#log.warn(warning);
    for (let slot = 0; slot < this.#config.server.webProcesses; slot++) {
      this.#restartDelays[slot] = RESTART_MIN_MS;
      this.#startWeb(slot);
    }
    this.#pool.start();
    this.#watchdog.start();
    process.on('SIGTERM', () => void this.stop('SIGTERM'));
    process.on('SIGINT', () => void this.stop('SIGINT'));
    process.on('SIGHUP', () => this.#reload());
  }

  async stop(reason: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#log.info('stopping', { reason });
    notifySystemd('STOPPING=1');
    this.#watchdog.stop();
    // Stop accepting: the web process closes its listeners, we close our copies.
    for (const fd of [...this.#listenFds.splice(0), ...this.#metricsFds.splice(0)]) closeAll([fd]);
    await Promise.all(
      this.#webs.map(async (web) => {
        if (web === null || web.child.exitCode !== null) return;
        web.child.kill('SIGTERM');
        // The web process itself stops after the grace period; this is the backstop.
        const exited = await waitForExit(web.child, this.#config.server.shutdownGraceMs + 2000);
        if (!exited) {
          this.#log.warn('web process did not finish in time; killing it', { pid: web.child.pid });
          web.child.kill('SIGKILL');
          await waitForExit(web.child, 2000);
        }
      }),
    );
    await this.#pool.stop();
    this.#log.info('stopped');
    process.exit(0);
  }

  // ---- the web process -------------------------------------------------------------------

  #prepareStateDir(): void {
    const dir = this.#config.server.stateDir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!this.#nonRoot) chownSync(dir, this.#webAccount.uid, this.#webAccount.gid);
  }

  /**
   * The TLS pair, re-read at each start of a web process and each reload (certbot renews in place).
   * The key is read here, as root, and handed over: the web account need not be able to read it.
   * A pair that cannot be read or does not belong together keeps the previous one, and says why.
   */
  #tlsPair(): WebInit['tls'] {
    const { tlsCert, tlsKey } = this.#config.server;
    if (tlsCert === null || tlsKey === null) return null;
    try {
      const cert = readFileSync(tlsCert, 'utf8');
      const key = readFileSync(tlsKey, 'utf8');
      const certificate = new X509Certificate(cert);
      if (!certificate.checkPrivateKey(createPrivateKey(key)))
        throw new Error(`${tlsKey} is not the key of ${tlsCert}`);
      const fields = {
        subject: certificate.subject.replace(/\n/g, ', '),
        expires: new Date(certificate.validTo).toISOString(),
        file: tlsCert,
      };
      if (this.#tls?.fingerprint !== certificate.fingerprint256) this.#log.info('certificate loaded', fields);
      const left = Date.parse(certificate.validTo) - Date.now();
      if (left < CERTIFICATE_WARN_MS) {
        this.#log.warn(
          left < 0 ? 'the certificate has expired' : 'the certificate expires within 14 days',
          fields,
        );
      }
      this.#tls = { cert, key, fingerprint: certificate.fingerprint256 };
    } catch (error) {
      if (this.#tls === null) throw error;
      this.#log.error('new certificate not usable; keeping the old one', { error: (error as Error).message });
    }
    const { tlsMinVersion, tlsCiphers } = this.#config.server;
    return { cert: this.#tls.cert, key: this.#tls.key, minVersion: tlsMinVersion, ciphers: tlsCiphers };
  }

  #webInit(slot: number): WebInit {
    const { server, auth, limits, log } = this.#config;
    const tls = this.#tlsPair();
    return {
      t: 'init',
      listeners: server.listen.map((address) => address.text),
      tls,
      stateDir: server.stateDir,
      lockDatabase: this.#config.locks.database,
      realm: auth.realm,
      limits,
      contentOrigin: server.contentOrigin,
      logLevel: log.level,
      shutdownGraceMs: server.shutdownGraceMs,
      publicUrl: server.publicUrl,
      hide: this.#config.shares.hide,
      workerGeneration: this.#workerGeneration,
      accessLog: log.access,
      metricsListeners: slot === 0 ? this.#config.metrics.listen.map((address) => address.text) : [],
      ipv6Prefix: auth.ipv6Prefix,
    };
  }

  #ping(web: WebProcess, seq: number): void {
    try {
      web.channel.send(encodeMessage({ t: 'ping', seq, stats: this.#stats() }));
    } catch {
      // A web process that cannot be written to answers no pings: the watchdog sees to it.
    }
  }

  #stats(): MonitorStats {
    let web = 0;
    for (const process of this.#webs) web += residentBytes(process?.child.pid);
    let worker = 0;
    for (const pid of this.#pool.pids()) worker += residentBytes(pid);
    return {
      logins: { ...this.#logins },
      workers: this.#pool.counts.workers,
      workerStarts: this.#pool.starts,
      residentBytes: { monitor: residentBytes(process.pid), web, worker },
    };
  }

  #startWeb(slot: number): void {
    const [monitorEnd, webEnd] = socketpair();
    // Started as root only so that it can chroot into state_dir before it drops to server.user
    // (no groups at all); it does both before it accepts a connection (src/web.ts).
    const child = spawn(process.execPath, [...WEB_NODE_OPTIONS, this.#webEntry, ...this.#webArgs], {
      stdio: [
        'ignore',
        'inherit',
        'inherit',
        webEnd,
        ...this.#listenFds,
        ...(slot === 0 ? this.#metricsFds : []),
      ],
      env: {
        PATH: '/usr/bin:/bin',
        NODE_ENV: 'production',
        PRIVDAV_WEB_USER: this.#webAccount.user,
        ...logEnvironment(),
      },
      cwd: '/',
    });
    closeFd(webEnd);
    const channel = new Channel(monitorEnd);
    const web: WebProcess = {
      slot,
      child,
      channel,
      ready: false,
      used: new Set(),
      startedAt: Date.now(),
      lastPongAt: 0,
      requests: 0,
    };
    this.#webs[slot] = web;
    channel.on('message', (payload: Buffer, fds: number[]) => this.#onWebMessage(web, payload, fds));
    channel.on('error', (error: Error) => this.#log.debug('web channel error', { error: error.message }));
    child.on('exit', (code, signal) => this.#onWebExit(web, code, signal));
    channel.send(encodeMessage(this.#webInit(slot)));
    this.#log.info('web process started', { pid: child.pid, user: this.#webAccount.user });
  }

  #onWebExit(web: WebProcess, code: number | null, signal: NodeJS.Signals | null): void {
    web.channel.destroy();
    const { slot } = web;
    if (this.#webs[slot] === web) this.#webs[slot] = null;
    if (this.#stopping) return;
    // Back-off doubles while it keeps dying, and starts over once a process has run for a while.
    if (Date.now() - web.startedAt > STABLE_AFTER_MS) this.#restartDelays[slot] = RESTART_MIN_MS;
    const delay = this.#restartDelays[slot]!;
    this.#restartDelays[slot] = Math.min(RESTART_MAX_MS, delay * 2);
    this.#log.error('web process exited; restarting', { code, signal, inMs: delay });
    setTimeout(() => {
      if (!this.#stopping) this.#startWeb(slot);
    }, delay);
  }

  #onWebMessage(web: WebProcess, payload: Buffer, fds: number[]): void {
    // The web process never legitimately sends us descriptors.
    closeAll(fds);
    const message = decodeMessage(payload);
    const type = message?.t;
    const spec =
      typeof type === 'string' && Object.hasOwn(this.#requests, type) ? this.#requests[type] : undefined;
    const reply: Reply = (answer, replyFds = []) => {
      let payload: Buffer;
      try {
        payload = encodeMessage(answer);
      } catch (error) {
        closeAll(replyFds); // never handed to the channel: still ours
        this.#log.error('reply to the web process cannot be encoded', { error: String(error) });
        return;
      }
      try {
        // The fds are the channel's from here on: it closes them even when send throws. Closing
        // them again here could close a number a PAM thread has just been given.
        web.channel.send(payload, replyFds);
      } catch (error) {
        this.#log.warn('reply to the web process not sent', { error: String(error) });
      }
    };
    if (message === null || spec === undefined) {
      return this.#refuse(
        `unknown request ${typeof type === 'string' ? JSON.stringify(type.slice(0, 32)) : ''}`,
      );
    }
    if (!spec.check(message)) {
      this.#refuse(`malformed ${type as string} request`);
      // A caller waiting on this id gets a refusal (after the failure delay for logins), not silence.
      if (isRequestId(message.id)) spec.refuse?.(message.id, reply);
      return;
    }
    if (spec.afterReady && !web.ready) return this.#refuse(`${type as string} before ready`);
    if (spec.once && web.used.has(type as string)) return this.#refuse(`${type as string} repeated`);
    web.used.add(type as string);
    spec.handle(message, reply, web);
  }

  #refusals = { count: 0, since: 0 };
  /** Logs refused requests, rate-limited so a flood cannot fill the journal. */
  #refuse(what: string): void {
    const now = Date.now();
    if (now - this.#refusals.since > 10_000) {
      if (this.#refusals.count > 10)
        this.#log.warn('more requests refused', { count: this.#refusals.count - 10 });
      this.#refusals = { count: 0, since: now };
    }
    if (++this.#refusals.count <= 10) this.#log.warn('request from the web process refused', { what });
  }

  // ---- AUTH ------------------------------------------------------------------------------

  #auth(
    id: number,
    user: string,
    password: string,
    remote: string,
    reply: Reply,
    received = Date.now(),
    mayWait = true,
  ): void {
    // Every failure is answered no sooner than failure_delay after receipt, whatever its cause,
    // so the timing tells an attacker nothing about which check failed.
    const deny = (why: string): void => {
      this.#log.info('login refused', { user: printable(user), remote: printable(remote), why });
      const wait = Math.max(0, received + this.#config.auth.failureDelayMs - Date.now());
      setTimeout(() => reply({ t: 'auth', id, ok: false, reason: 'denied' }), wait);
    };
    // Saturated: say so at once (503) — overload is nobody's failure, so nothing stays counted.
    const busy = (): void => {
      this.#logins.overload++;
      this.#overload();
      reply({ t: 'auth', id, ok: false, reason: 'busy', retryAfter: OVERLOAD_RETRY_AFTER_S });
    };
    if (this.#pam.full) return busy();
    const source = inCidr(remote, this.#throttleExempt)
      ? null
      : sourceKey(remote, this.#config.auth.ipv6Prefix);
    // Counted here, on arrival: guesses sent in parallel are throttled like guesses sent in turn.
    const admission = this.#throttle.admit(user, source, Date.now());
    if (!admission.admitted) {
      // The address's budget is held by logins still in flight (an office behind one address
      // logging in at once): wait for them to settle, since a correct password gives its share
      // back. Only spent guesses refuse a newcomer with 401.
      if (admission.why === 'source' && source !== null && this.#sourcePending(source) > 0) {
        const retry = (again: boolean): void =>
          this.#auth(id, user, password, remote, reply, received, again);
        if (mayWait && this.#waitForSource(source, retry)) return;
        return busy();
      }
      this.#logins.backoff++;
      return deny(BACKOFF_REASONS[admission.why]);
    }
    // The attempt holds a share of its address's budget until it is decided.
    const holdsSourceShare = !admission.known && source !== null;
    if (holdsSourceShare) this.#sourceAttemptStarted(source);
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      if (holdsSourceShare) this.#sourceAttemptSettled(source);
    };
    const account = user === '' ? null : lookUpAccount(user);
    const refusal = account === null ? 'no such account' : refusalReason(account, this.#policy());
    if (refusal !== null || account === null || password === '') {
      this.#logins[refusal === null ? 'wrong' : 'refused']++;
      settle();
      return deny(refusal ?? 'empty password');
    }
    const grant = (expires: number, checked: 'pam' | 'recent'): void => {
      this.#throttle.succeeded(user, source, admission.known);
      settle();
      // A login is a cookie renewal: a worker started with other groups must not serve it.
      this.#retireIfGroupsChanged(account);
      const cookie = issueCookie(deriveUserKey(this.#masterKey, account.uid), {
        uid: account.uid,
        gid: account.gid,
        user: account.user,
        issued: Date.now(),
        expires,
      });
      this.#logins.ok++;
      this.#log.info('login', {
        user: account.user,
        remote: printable(remote),
        known: admission.known,
        checked,
      });
      reply({ t: 'auth', id, ok: true, cookie, uid: account.uid, expires });
    };
    // PAM said yes to exactly this password less than credential_ttl ago (a restarted web process
    // lost its cache): the cookie expires when that answer does, so PAM is still asked once per ttl.
    // Checked after the throttle admitted the attempt, so it is no unthrottled oracle, and before
    // the PAM queue, so a full queue does not turn away users it would accept.
    const recent = this.#recentLogins.check(account.user, account.uid, password);
    if (recent !== null && recent - Date.now() > RECENT_LOGIN_MIN_REMAINING_MS)
      return grant(recent, 'recent');
    if (this.#pam.full) {
      // Filled while this attempt was being checked: it was no guess, so it is not counted.
      this.#throttle.cancel(user, source, admission.known);
      settle();
      return busy();
    }
    void this.#pam
      .authenticate(this.#config.auth.pamService, account.user, password, remote)
      .then((outcome) => {
        if (outcome === 'ok') {
          const expires = Date.now() + this.#config.auth.credentialTtlMs;
          this.#recentLogins.remember(account.user, account.uid, password, expires);
          grant(expires, 'pam');
          return;
        }
        if (outcome === 'error') this.#log.error('PAM failed', { service: this.#config.auth.pamService });
        this.#logins[outcome === 'error' ? 'refused' : 'wrong']++;
        settle();
        deny(outcome === 'error' ? 'PAM error' : 'wrong password or account not usable');
      });
  }

  // Logins in flight per address that hold a share of its budget, and the logins waiting for them.
  readonly #sourceAttempts = new Map<string, number>();
  readonly #sourceWaiters = new Map<string, Array<(again: boolean) => void>>();
  #sourceWaiting = 0;

  #sourcePending(source: string): number {
    return this.#sourceAttempts.get(source) ?? 0;
  }

  #sourceAttemptStarted(source: string): void {
    this.#sourceAttempts.set(source, this.#sourcePending(source) + 1);
  }

  /** An attempt was decided: the logins waiting on its address try again (one may take its share). */
  #sourceAttemptSettled(source: string): void {
    const left = this.#sourcePending(source) - 1;
    if (left > 0) this.#sourceAttempts.set(source, left);
    else this.#sourceAttempts.delete(source);
    const waiters = this.#sourceWaiters.get(source);
    if (waiters === undefined) return;
    this.#sourceWaiters.delete(source);
    this.#sourceWaiting -= waiters.length;
    for (const wake of waiters) wake(true);
  }

  /**
   * Parks a login until an attempt from its address is decided, at most SOURCE_WAIT_MS (then it
   * is answered 503 if the budget is still held by logins in flight). Bounded like the PAM queue;
   * false when there is no room, and the login is refused as usual.
   */
  #waitForSource(source: string, retry: (again: boolean) => void): boolean {
    if (this.#sourceWaiting >= this.#config.auth.pamQueue) return false;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      const waiters = this.#sourceWaiters.get(source);
      const index = waiters?.indexOf(wake) ?? -1;
      if (waiters !== undefined && index >= 0) {
        waiters.splice(index, 1);
        this.#sourceWaiting--;
        if (waiters.length === 0) this.#sourceWaiters.delete(source);
      }
      retry(false);
    }, SOURCE_WAIT_MS);
    const wake = (again: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      retry(again);
    };
    const waiters = this.#sourceWaiters.get(source) ?? [];
    waiters.push(wake);
    this.#sourceWaiters.set(source, waiters);
    this.#sourceWaiting++;
    return true;
  }

  #overloads = { count: 0, since: 0 };
  /** Logs PAM saturation once per 10 s with the number of logins answered 503 meanwhile. */
  #overload(): void {
    const now = Date.now();
    this.#overloads.count++;
    if (now - this.#overloads.since < 10_000) return;
    this.#log.warn('login overload: PAM is saturated; answered 503', {
      logins: this.#overloads.count,
      running: this.#pam.running,
      waiting: this.#pam.waiting,
    });
    this.#overloads = { count: 0, since: now };
  }

  #policy() {
    const { minUid, allowUsers, allowGroups, denyUsers } = this.#config.auth;
    return { minUid, allowUsers, allowGroups, denyUsers, onlyUid: this.#nonRoot ? process.getuid!() : null };
  }

  // ---- CONNECT ---------------------------------------------------------------------------

  async #connect(id: number, cookie: string, reply: Reply): Promise<void> {
    const claims = peekClaims(cookie);
    const verdict =
      claims === null
        ? ({ ok: false, code: 'COOKIE_INVALID', reason: 'malformed' } as const)
        : verifyCookie(deriveUserKey(this.#masterKey, claims.uid), cookie, claims.uid);
    if (!verdict.ok) {
      if (verdict.code === 'COOKIE_INVALID')
        this.#log.warn('connect with a bad cookie refused', { why: verdict.reason });
      reply({ t: 'connect', id, ok: false, code: verdict.code });
      return;
    }
    const account = lookUpAccount(verdict.claims.user);
    if (
      account === null ||
      account.uid !== verdict.claims.uid ||
      refusalReason(account, this.#policy()) !== null
    ) {
      this.#log.warn('connect for an account no longer eligible refused', { user: verdict.claims.user });
      reply({ t: 'connect', id, ok: false, code: 'COOKIE_INVALID' });
      return;
    }
    let worker;
    try {
      this.#retireIfGroupsChanged(account);
      worker = await this.#pool.workerFor(workerIdentity(account), this.#groupsOf(account));
    } catch (error) {
      if (error instanceof PoolFullError) this.#log.warn('no room for a worker', { user: account.user });
      else this.#log.error('cannot start worker', { user: account.user, error: (error as Error).message });
      reply({ t: 'connect', id, ok: false, code: 'UNAVAILABLE' });
      return;
    }
    const [workerEnd, webEnd] = socketpair();
    try {
      worker.send({ t: 'attach' }, [workerEnd]);
    } catch (error) {
      closeAll([webEnd]);
      this.#log.error('cannot attach to worker', { user: account.user, error: (error as Error).message });
      reply({ t: 'connect', id, ok: false, code: 'UNAVAILABLE' });
      return;
    }
    reply({ t: 'connect', id, ok: true }, [webEnd]);
  }

  #workerSettings(config: Config): WorkerSettings {
    return {
      layout: config.shares.layout,
      subdir: config.shares.subdir,
      idleTimeoutMs: config.server.workerIdleTimeoutMs,
      durable: config.storage.durable,
      maxInfinityEntries: config.limits.maxInfinityEntries,
      minUid: this.#nonRoot ? 0 : config.auth.minUid,
      // A non-root daemon serves its own user's files only, also in the tilde layout.
      onlyUid: this.#nonRoot ? process.getuid!() : null,
    };
  }

  /** initgroups' list for this account now; '' in non-root mode, where no worker changes groups. */
  #groupsOf(account: Account): string {
    if (this.#nonRoot) return '';
    try {
      return groupList(account.user, account.gid).join(' ');
    } catch {
      return '?';
    }
  }

  /**
   * A user's groups changed (gpasswd -d, a new member): the running worker keeps the old ones for
   * as long as it lives, so it is retired — its calls in flight finish, the web processes stop
   * sending it new ones (worker-retired), and the next CONNECT starts a worker with the new groups.
   */
  #retireIfGroupsChanged(account: Account): void {
    const now = this.#groupsOf(account);
    const before = this.#pool.retireIfGroupsDiffer(account.uid, now);
    if (before === null) return;
    this.#log.info('groups changed; replacing the worker', { user: account.user, before, now });
    for (const web of this.#webs) {
      try {
        web?.channel.send(encodeMessage({ t: 'worker-retired', uid: account.uid }));
      } catch {
        // A web process that cannot be told has its channel closed when the worker leaves.
      }
    }
  }

  // ---- SIGHUP ----------------------------------------------------------------------------

  #reload(): void {
    const source = this.#config.source;
    if (source === null) return;
    notifySystemd(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
    try {
      const next = loadConfig(source);
      const restartOnly = changesNeedingRestart(this.#config, next);
      if (restartOnly.length > 0)
        this.#log.warn('these changes need a restart', { keys: restartOnly.join(' ') });
      // Keys that need a restart keep their running values until then.
      const { listen, user, stateDir, tlsCert, tlsKey, webProcesses, tlsMinVersion, tlsCiphers } =
        this.#config.server;
      // Node fixes the header limit when a server is made: it too waits for a restart.
      const { maxHeaderBytes } = this.#config.limits;
      const before = JSON.stringify(this.#workerSettings(this.#config));
      const { pamService, credentialTtlMs } = this.#config.auth;
      this.#config = {
        ...next,
        server: {
          ...next.server,
          listen,
          user,
          stateDir,
          tlsCert,
          tlsKey,
          webProcesses,
          tlsMinVersion,
          tlsCiphers,
        },
        limits: { ...next.limits, maxHeaderBytes },
        locks: this.#config.locks,
      };
      if (JSON.stringify(this.#workerSettings(this.#config)) !== before) {
        this.#pool.retireAll();
        this.#workerGeneration++;
      }
      this.#pool.setLimits(this.#config.server);
      this.#log.setLevel(next.log.level);
      this.#throttle.policy = throttlePolicy(this.#config);
      this.#throttleExempt = exemptNetworks(this.#config);
      this.#pam.maxWaiting = this.#config.auth.pamQueue;
      // Another PAM service or a shorter ttl: what PAM said before no longer stands for the new rules.
      if (next.auth.pamService !== pamService || next.auth.credentialTtlMs < credentialTtlMs)
        this.#recentLogins.clear();
      for (const web of this.#webs)
        if (web !== null) web.channel.send(encodeMessage(this.#webInit(web.slot)));
      this.#log.info('configuration reloaded', { from: source });
    } catch (error) {
      this.#log.error('reload failed; keeping the running configuration', {
        error: (error as Error).message,
      });
    }
    notifySystemd('READY=1');
  }
}

/** Children write lines in the monitor's format, and know whether stderr is the journal. */
function logEnvironment(): Record<string, string> {
  const env: Record<string, string> = { [LOG_FORMAT_ENV]: logFormat() };
  if (process.env.JOURNAL_STREAM !== undefined) env.JOURNAL_STREAM = process.env.JOURNAL_STREAM;
  return env;
}

const BACKOFF_REASONS = {
  pair: 'backing off: repeated attempts for this account from this address',
  account: 'backing off: repeated attempts for this account from addresses it never logged in from',
  source: 'backing off: this address tried too many accounts it never logged in to',
} as const;

/** The back-off numbers of README "Login back-off"; only the caps and the rate are configurable. */
function throttlePolicy(config: Config): ThrottlePolicy {
  const { pairMaxWaitMs, accountMaxWaitMs, sourceGuessesPerMinute, rememberSourcesMs } = config.auth;
  return { freeAttempts: 5, pairMaxWaitMs, accountMaxWaitMs, sourceGuessesPerMinute, rememberSourcesMs };
}

function exemptNetworks(config: Config): Cidr[] {
  // Validated when the configuration was read.
  return config.auth.throttleExempt.map((text) => parseCidr(text) as Cidr);
}

function currentAccount(): Account | null {
  return lookUpAccount(require('node:os').userInfo().username as string);
}

/** For logs: control characters out, length bounded (names come from the network). */
function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 64);
}
