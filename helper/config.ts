// privdav's configuration: reads the TOML file, applies defaults and validates every key, reporting
// all problems at once with their key and line. The root monitor trusts what this returns, so it is strict.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { parseCidr } from '../common/source-address';
import * as os from 'node:os';
import type { WebLimits } from '../common/protocol';
import { isUserName, USER_NAME_RULE } from '../common/names';
import { parse as parseToml, TomlError, type TomlTable, type TomlValue } from 'smol-toml';

export interface ListenAddress {
  /** Numeric IPv4 or IPv6 address, IPv6 without brackets. */
  host: string;
  port: number;
  /** Canonical "host:port" ("[::1]:8080" for IPv6), for logs and comparisons. */
  text: string;
}

export interface Config {
  server: {
    listen: ListenAddress[];
    tlsCert: string | null;
    tlsKey: string | null;
    user: string;
    stateDir: string;
    workerIdleTimeoutMs: number;
    shutdownGraceMs: number;
    webProcesses: number;
    /** The origin clients use when a proxy sits in front ("https://dav.example.org"), or null. */
    publicUrl: string | null;
    tlsMinVersion: 'TLSv1.2' | 'TLSv1.3';
    tlsCiphers: string;
    maxWorkers: number;
    spareWorkers: number;
    workerStarts: number;
    /** A separate origin (`https://host[:port]`) where active user content may display inline; null: nowhere. */
    contentOrigin: string | null;
  };
  auth: {
    pamService: string;
    realm: string;
    minUid: number;
    allowUsers: string[];
    allowGroups: string[];
    denyUsers: string[];
    credentialTtlMs: number;
    failureDelayMs: number;
    /** 0: one per CPU. */
    pamConcurrency: number;
    pamQueue: number;
    pairMaxWaitMs: number;
    accountMaxWaitMs: number;
    sourceGuessesPerMinute: number;
    rememberSourcesMs: number;
    ipv6Prefix: number;
    /** CIDRs (checked with parseCidr). */
    throttleExempt: string[];
  };
  shares: { layout: 'home' | 'tilde'; subdir: string; hide: string[] };
  limits: WebLimits;
  storage: { durable: boolean };
  /** "sqlite" (a file under state_dir) or a postgresql:// URL, credentials included. */
  locks: { database: string };
  log: { level: 'error' | 'warn' | 'info' | 'debug'; format: 'logfmt' | 'json'; access: boolean };
  /** Prometheus text and /healthz, on listeners of their own (empty: off). */
  metrics: { listen: ListenAddress[] };
  /** The file it came from; null when parsed from a string. */
  source: string | null;
}

export interface ConfigProblem {
  /** "section.key", e.g. "auth.min_uid"; "" for a problem with the file as a whole. */
  key: string;
  line: number | null;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'PRIVDAV_CONFIG';
  readonly problems: ConfigProblem[];

  constructor(source: string | null, problems: ConfigProblem[]) {
    super(problems.map((problem) => formatProblem(source, problem)).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export const DEFAULT_CONFIG_PATH = '/etc/privdav/privdav.toml';

/**
 * Private memory budgeted per worker for server.max_workers' default: a worker that has served
 * requests holds ~8-19 MiB of its own (RssAnon; the node binary's pages are shared), more for a
 * moment during a big listing, plus the kernel's page tables and socket buffers for it.
 */
export const WORKER_MEMORY_BUDGET = 32 * 1024 * 1024;

/** server.max_workers when not set: half of the machine's memory at WORKER_MEMORY_BUDGET each, 16-100,000. */
export function defaultMaxWorkers(totalMemoryBytes: number): number {
  return Math.min(100_000, Math.max(16, Math.floor(totalMemoryBytes / 2 / WORKER_MEMORY_BUDGET)));
}

/** server.worker_starts when not set: one worker booting per core (a start is ~70 ms of one core's work). */
export function defaultWorkerStarts(): number {
  return Math.min(64, Math.max(1, os.availableParallelism()));
}

export function defaultConfig(): Config {
  return {
    server: {
      listen: [{ host: '127.0.0.1', port: 8080, text: '127.0.0.1:8080' }],
      tlsCert: null,
      tlsKey: null,
      user: 'privdav',
      stateDir: '/var/lib/privdav',
      workerIdleTimeoutMs: 5 * MINUTE,
      shutdownGraceMs: 10 * SECOND,
      webProcesses: 1,
      publicUrl: null,
      tlsMinVersion: 'TLSv1.2',
      tlsCiphers: MOZILLA_INTERMEDIATE_CIPHERS,
      maxWorkers: defaultMaxWorkers(os.totalmem()),
      spareWorkers: 1,
      workerStarts: defaultWorkerStarts(),
      contentOrigin: null,
    },
    auth: {
      pamService: 'privdav',
      realm: 'privdav',
      minUid: 1000,
      allowUsers: [],
      allowGroups: [],
      denyUsers: [],
      credentialTtlMs: 10 * MINUTE,
      failureDelayMs: 1 * SECOND,
      pamConcurrency: 0,
      pamQueue: 256,
      pairMaxWaitMs: 15 * MINUTE,
      accountMaxWaitMs: 2 * MINUTE,
      sourceGuessesPerMinute: 10,
      rememberSourcesMs: 30 * DAY,
      ipv6Prefix: 64,
      throttleExempt: [],
    },
    shares: { layout: 'home', subdir: '', hide: [] },
    limits: {
      maxHeaderBytes: 16 * KIB,
      maxXmlBytes: 1 * MIB,
      maxUploadBytes: 0,
      maxInfinityEntries: 10_000,
      maxPropfindProperties: 200,
      maxLockTimeoutS: 3600,
      maxLockOwnerBytes: 4 * KIB,
      maxLocksPerUser: 1000,
      maxLocksPerResource: 64,
      maxLockDbBytes: 256 * MIB,
      maxConnections: 1024,
      maxConnectionsPerAddress: 128,
      requestTimeoutMs: 5 * MINUTE,
      workerCallTimeoutMs: 2 * MINUTE,
      workerTreeTimeoutMs: 1 * HOUR,
      headerTimeoutMs: 20 * SECOND,
      headerTimeoutMaxMs: 40 * SECOND,
      headerMinRate: 500,
    },
    storage: { durable: true },
    locks: { database: 'sqlite' },
    log: { level: 'info', format: 'logfmt', access: true },
    metrics: { listen: [] },
    source: null,
  };
}

/** Parses and validates a configuration; throws ConfigError listing every problem. Touches no files. */
export function parseConfig(text: string, source: string | null): Config {
  return readConfig(text, source, false);
}

/** Reads the file and also checks what only the filesystem can tell (TLS files, the file's own permissions). */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [{ key: '', line: null, message: unreadableFileMessage(error) }]);
  }
  const ownership = configFileOwnershipProblem(path);
  if (ownership) throw new ConfigError(path, [{ key: '', line: null, message: ownership }]);
  return readConfig(text, path, true);
}

/**
 * Keys whose new value differs and cannot take effect on SIGHUP (sockets, identities, processes already made).
 * The monitor keeps the old values of these and logs the returned keys ("server.listen") as needing a restart.
 */
export function changesNeedingRestart(running: Config, reloaded: Config): string[] {
  const changed: string[] = [];
  for (const [section, fields] of schemaSections()) {
    for (const [field, spec] of Object.entries(fields)) {
      const before = (running[section] as Record<string, unknown>)[field];
      const after = (reloaded[section] as Record<string, unknown>)[field];
      if (spec.restart && JSON.stringify(before) !== JSON.stringify(after))
        changed.push(`${section}.${spec.key}`);
    }
  }
  return changed;
}

// ---------------------------------------------------------------------------------------------------------
// Units

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };
const DURATION_FORM = 'a duration string like "1500ms", "10s", "5m", "2h", "1d" or "1h30m"';

// Binary units are what admins usually mean; the decimal ones are accepted with their SI meaning (documented).
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KiB: KIB,
  MiB: MIB,
  GiB: GIB,
  TiB: 1024 * GIB,
  kB: 1e3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};
const SIZE_FORM = 'a size: an integer number of bytes or a string like "512KiB", "1MiB" or "2GB"';

// ---------------------------------------------------------------------------------------------------------
// Readers: turn one TOML value into a typed value, or report why not (undefined = reported).

/** Reports a problem with the value being read; `index` names an array element, for its line. */
type Report = (message: string, index?: number) => void;
type Reader<T> = (value: TomlValue, report: Report) => T | undefined;

function describe(value: TomlValue): string {
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`;
  if (typeof value === 'bigint') return `an integer (${value})`;
  if (typeof value === 'number') return `a float (${value})`;
  if (typeof value === 'boolean') return `a boolean (${value})`;
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  return 'a table';
}

/** `belowMinimum` says why the minimum exists, for the message. */
function integer(min: number, max: number, belowMinimum = ''): Reader<number> {
  return (value, report) => {
    if (typeof value !== 'bigint') return void report(`expected an integer, got ${describe(value)}`);
    const reason = belowMinimum && value < BigInt(min) ? ` (${belowMinimum})` : '';
    return inRange(Number(value), value, min, max, String, (message) => report(message + reason));
  };
}

/** An integer in [min, max], or 0 for the value derived from the machine (`derived()`). */
function integerOrDerived(min: number, max: number, derived: () => number): Reader<number> {
  const read = integer(min, max);
  return (value, report) => (value === 0n ? derived() : read(value, report));
}

function inRange(
  result: number,
  written: TomlValue,
  min: number,
  max: number,
  show: (n: number) => string,
  report: Report,
): number | undefined {
  const shown = typeof written === 'string' ? JSON.stringify(written) : String(written);
  if (result < min || (typeof written === 'bigint' && written < BigInt(min))) {
    return void report(`${shown} is too small: the minimum is ${show(min)}`);
  }
  if (result > max || (typeof written === 'bigint' && written > BigInt(max))) {
    return void report(`${shown} is too large: the maximum is ${show(max)}`);
  }
  return result;
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', DAY],
    ['h', HOUR],
    ['m', MINUTE],
    ['s', SECOND],
  ] as const) {
    if (ms >= size && ms % size === 0) return `"${ms / size}${unit}"`;
  }
  return `"${ms}ms"`;
}

function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', GIB],
    ['MiB', MIB],
    ['KiB', KIB],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit} (${bytes})`;
  }
  return `${bytes} bytes`;
}

/** Milliseconds from "1h30m"-style strings. A bare number is refused: its unit would be a guess. */
export function parseDuration(text: string): number | null {
  const match = /^(?:\d+(?:ms|s|m|h|d))+$/.test(text);
  if (!match) return null;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(amount) * DURATION_UNITS[unit];
  }
  return total; // beyond any maximum when huge: the range check reports it
}

function duration(min: number, max: number): Reader<number> {
  return (value, report) => {
    if (typeof value !== 'string') return void report(`expected ${DURATION_FORM}, got ${describe(value)}`);
    const ms = parseDuration(value);
    if (ms === null) return void report(`${JSON.stringify(value)} is not ${DURATION_FORM}`);
    return inRange(ms, value, min, max, formatDuration, report);
  };
}

function durationSeconds(min: number, max: number): Reader<number> {
  const read = duration(min * SECOND, max * SECOND);
  return (value, report) => {
    const ms = read(value, report);
    if (ms === undefined) return undefined;
    if (ms % SECOND !== 0) return void report(`${JSON.stringify(value)} is not a whole number of seconds`);
    return ms / SECOND;
  };
}

/** Bytes from an integer or "512KiB"-style string. */
export function parseSize(text: string): number | null {
  const match = /^(\d+) ?([A-Za-z]+)$/.exec(text);
  if (!match || !(match[2] in SIZE_UNITS)) return null;
  return Number(match[1]) * SIZE_UNITS[match[2]]; // beyond any maximum when huge: the range check reports it
}

function size(min: number, max: number): Reader<number> {
  return (value, report) => {
    if (typeof value === 'bigint') return inRange(Number(value), value, min, max, formatSize, report);
    if (typeof value !== 'string') return void report(`expected ${SIZE_FORM}, got ${describe(value)}`);
    const bytes = parseSize(value);
    if (bytes === null) {
      const units = Object.keys(SIZE_UNITS).join(', ');
      return void report(`${JSON.stringify(value)} is not ${SIZE_FORM} (units: ${units})`);
    }
    return inRange(bytes, value, min, max, formatSize, report);
  };
}

function boolean(): Reader<boolean> {
  return (value, report) =>
    typeof value === 'boolean' ? value : void report(`expected true or false, got ${describe(value)}`);
}

function oneOf<T extends string>(...choices: T[]): Reader<T> {
  const expected = choices.map((choice) => JSON.stringify(choice)).join(' or ');
  return (value, report) => {
    if (typeof value === 'string' && (choices as string[]).includes(value)) return value as T;
    report(`expected ${expected}, got ${describe(value)}`);
    return undefined;
  };
}

/** A string checked by `problemWith`, which returns why it is wrong or null. */
function text(problemWith: (value: string) => string | null): Reader<string> {
  return (value, report) => {
    if (typeof value !== 'string') return void report(`expected a string, got ${describe(value)}`);
    const problem = problemWith(value);
    return problem === null ? value : void report(problem);
  };
}

function arrayOf<T>(element: Reader<T>): Reader<T[]> {
  return (value, report) => {
    if (!Array.isArray(value)) return void report(`expected an array, got ${describe(value)}`);
    const results: T[] = [];
    let failed = false;
    value.forEach((item, index) => {
      const result = element(item, (message) => report(`entry ${index + 1}: ${message}`, index));
      if (result === undefined) failed = true;
      else results.push(result);
    });
    return failed ? undefined : results;
  };
}

// User and group names in the one grammar of common/names.ts: a name listed here is one that can log in.
function accountNameProblem(name: string): string | null {
  return isUserName(name)
    ? null
    : `${JSON.stringify(name)} is not a valid user or group name (${USER_NAME_RULE})`;
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

function absolutePathProblem(value: string): string | null {
  if (value.includes('\0') || CONTROL_CHARACTERS.test(value)) return 'contains a control character';
  if (!value.startsWith('/')) return `${JSON.stringify(value)} is not an absolute path`;
  if (value.split('/').some((segment) => segment === '..' || segment === '.')) {
    return `${JSON.stringify(value)} contains "." or ".." segments; write the plain path`;
  }
  return null;
}

/** "" means "not set"; anything else must be an absolute path. */
function optionalAbsolutePath(): Reader<string | null> {
  const read = text(absolutePathProblem);
  return (value, report) => (value === '' ? null : read(value, report));
}

/**
 * "" (off) or an origin "https://files.example.org[:port]" with nothing after the host: the host name a
 * request must carry for active user content (HTML, SVG, scripts) to display inline instead of downloading.
 */
function contentOrigin(): Reader<string | null> {
  return (value, report) => {
    if (typeof value !== 'string') return void report(`expected a string, got ${describe(value)}`);
    if (value === '') return null;
    let url: URL | null = null;
    try {
      url = new URL(value);
    } catch {
      url = null;
    }
    if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.host === '')
      return void report(`${JSON.stringify(value)} is not an origin such as "https://files.example.org"`);
    if (
      url.username !== '' ||
      url.password !== '' ||
      url.search !== '' ||
      url.hash !== '' ||
      !/^[a-z]+:\/\/[^/]+\/?$/i.test(value)
    )
      return void report(
        `${JSON.stringify(value)} must be scheme and host only, e.g. "https://files.example.org"`,
      );
    return url.origin;
  };
}

function stateDirectory(): Reader<string> {
  return text((value) => {
    const problem = absolutePathProblem(value);
    if (problem) return problem;
    // The monitor creates and chowns state_dir to the web process's account: "/" would hand it the system.
    if (value.replace(/\/+$/, '') === '')
      return 'must not be "/" (the monitor gives this directory to server.user)';
    return null;
  });
}

function webProcessUser(): Reader<string> {
  return text((value) => {
    const problem = accountNameProblem(value);
    if (problem) return problem;
    // The web process parses HTTP from the network: it must never hold root's privileges.
    if (value === 'root')
      return '"root" is refused: the web process parses untrusted input; use an unprivileged account';
    return null;
  });
}

function allowedUsers(): Reader<string[]> {
  return arrayOf(
    text((value) =>
      value === 'root' ? 'root can never log in; remove "root" from the list' : accountNameProblem(value),
    ),
  );
}

// The service name becomes a file name under /etc/pam.d.
function pamServiceProblem(value: string): string | null {
  if (!/^[A-Za-z0-9._-]+$/.test(value) || value === '.' || value === '..') {
    return `${JSON.stringify(value)} is not a PAM service name (letters, digits, ".", "_", "-")`;
  }
  return null;
}

// The realm is sent inside a quoted-string of WWW-Authenticate: keep it to printable ASCII without quote/escape.
function realmProblem(value: string): string | null {
  if (value === '') return 'must not be empty';
  if (value.length > 200) return 'is longer than 200 characters';
  if (!/^[\x20-\x7e]*$/.test(value) || /["\\]/.test(value)) {
    return 'may contain only printable ASCII characters, without \'"\' or "\\"';
  }
  return null;
}

function cidrProblem(value: string): string | null {
  const cidr = parseCidr(value);
  return typeof cidr === 'string' ? cidr : null;
}

/**
 * Mozilla's "intermediate" profile (v5.7) for TLS 1.2: ECDHE key exchange and AEAD ciphers only, so
 * every TLS 1.2 session has forward secrecy and no CBC. TLS 1.3 suites are separate and always AEAD.
 */
export const MOZILLA_INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

// An OpenSSL cipher list for TLS 1.2; OpenSSL itself must know at least one of its suites.
function tlsCiphersProblem(value: string): string | null {
  if (!/^[A-Za-z0-9_:+!@=.-]+$/.test(value)) {
    return `${JSON.stringify(value)} is not an OpenSSL cipher list (names like "ECDHE-RSA-AES128-GCM-SHA256" separated by ":")`;
  }
  try {
    tls.createSecureContext({ ciphers: value, minVersion: 'TLSv1.2' });
  } catch (error) {
    return `${JSON.stringify(value)} is not usable: ${(error as Error).message}`;
  }
  return null;
}

/**
 * What is allowed but probably not meant: plain HTTP on an address other hosts can reach sends every
 * Basic password in clear. check-config prints these, and the monitor logs them at start.
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.server.tlsCert === null) {
    const exposed = config.server.listen.filter((address) => !isLoopback(address.host));
    if (exposed.length > 0) {
      warnings.push(
        `server.listen: plain HTTP on ${exposed.map((address) => address.text).join(', ')}, which is not a loopback address: ` +
          'Basic authentication sends passwords in clear; set server.tls_cert and server.tls_key, or put a TLS proxy in front and listen on 127.0.0.1',
      );
    }
  }
  return warnings;
}

function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1';
}

// subdir is joined to every home directory: it must stay inside it.
function subdirectory(): Reader<string> {
  return (value, report) => {
    if (typeof value !== 'string') return void report(`expected a string, got ${describe(value)}`);
    if (CONTROL_CHARACTERS.test(value)) return void report('contains a control character');
    if (value.startsWith('/'))
      return void report(`${JSON.stringify(value)} must be relative to the home directory (no leading "/")`);
    const segments = value.split('/').filter((segment) => segment !== '');
    if (segments.some((segment) => segment === '..' || segment === '.')) {
      return void report(
        `${JSON.stringify(value)} must not contain "." or ".." segments: it must stay inside the home directory`,
      );
    }
    return segments.join('/');
  };
}

// public_url names an origin, compared with Destination and If: URLs: a path would imply a prefix
// the proxy strips, which privdav does not do, so it is refused rather than silently ignored.
function publicOrigin(): Reader<string | null> {
  return (value, report) => {
    if (typeof value !== 'string') return void report(`expected a string, got ${describe(value)}`);
    if (value === '') return null;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return void report(`${JSON.stringify(value)} is not a URL (e.g. "https://dav.example.org")`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      return void report(`${JSON.stringify(value)} must start with https:// or http://`);
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '')
      return void report(`${JSON.stringify(value)} must be only scheme, host and port`);
    if (url.pathname !== '/')
      return void report(
        `${JSON.stringify(value)} has a path: privdav serves from "/", give only the origin`,
      );
    return url.origin;
  };
}

// A hide pattern is matched against one name at a time, so it cannot contain "/".
function hidePatternProblem(value: string): string | null {
  if (value === '') return 'must not be empty';
  if (value.length > 255) return 'is longer than 255 characters';
  if (CONTROL_CHARACTERS.test(value)) return 'contains a control character';
  if (value.includes('/')) return `${JSON.stringify(value)} contains "/": patterns match single names`;
  return null;
}

const LOCK_DATABASE_FORM =
  '"sqlite" or a URL like "postgresql://privdav:PASSWORD@db.example.org:5432/privdav"';
/** Parameters that need no file inside the web process's chroot. */
const SSL_MODES = ['disable', 'prefer', 'require', 'no-verify', 'verify-ca', 'verify-full'];

// The web process is chrooted into state_dir: it reaches PostgreSQL over TCP only, with no files of libpq's.
function lockDatabaseProblem(value: string): string | null {
  if (value === 'sqlite') return null;
  if (CONTROL_CHARACTERS.test(value)) return 'contains a control character';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `is not ${LOCK_DATABASE_FORM}`;
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
    return `scheme ${JSON.stringify(url.protocol.replace(/:$/, ''))} is not supported: write ${LOCK_DATABASE_FORM}`;
  }
  if (url.hostname === '')
    return 'names no host: the web process connects over TCP (a Unix socket is outside its chroot)';
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) return `names no database: write ${LOCK_DATABASE_FORM}`;
  for (const [name, setting] of url.searchParams) {
    if (name !== 'sslmode') return `parameter ${JSON.stringify(name)} is not supported (only sslmode is)`;
    if (!SSL_MODES.includes(setting)) return `sslmode must be one of ${SSL_MODES.join(', ')}`;
  }
  return null;
}

/** Parses "127.0.0.1:8080" or "[::1]:8080"; returns the address or why it is wrong. */
export function parseListenAddress(value: string): ListenAddress | string {
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  const plain = /^([^:[\]]*):([^:]*)$/.exec(value);
  if (!bracketed && !plain) {
    if (net.isIPv6(value) || net.isIPv6(value.replace(/:\d+$/, ''))) {
      return `${JSON.stringify(value)}: write IPv6 addresses in brackets, e.g. "[::1]:8080"`;
    }
    return `${JSON.stringify(value)} is not "host:port" (e.g. "127.0.0.1:8080" or "[::1]:8080")`;
  }
  const [, host, portText] = (bracketed ?? plain) as RegExpExecArray;
  if (bracketed ? !net.isIPv6(host) : !net.isIPv4(host)) {
    const expected = bracketed
      ? 'a numeric IPv6 address'
      : 'a numeric IPv4 address (or an IPv6 one in brackets)';
    return `${JSON.stringify(host)} is not ${expected}; host names are not accepted (use e.g. "127.0.0.1" or "[::1]")`;
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return `port ${JSON.stringify(portText)} is not a number from 1 to 65535`;
  }
  const port = Number(portText);
  const canonicalHost = bracketed ? canonicalIPv6(host) : host;
  return { host: canonicalHost, port, text: bracketed ? `[${canonicalHost}]:${port}` : `${host}:${port}` };
}

/** "0:0::1" and "::1" are one address; URL gives the compressed form (not for zone ids, kept as written). */
function canonicalIPv6(host: string): string {
  if (host.includes('%')) return host;
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return host;
  }
}

function listenAddresses(allowNone = false): Reader<ListenAddress[]> {
  return (value, report) => {
    if (!Array.isArray(value))
      return void report(`expected an array of "host:port" strings, got ${describe(value)}`);
    if (value.length === 0 && !allowNone)
      return void report('must list at least one address, e.g. ["127.0.0.1:8080"]');
    const addresses: ListenAddress[] = [];
    let failed = false;
    value.forEach((item, index) => {
      const fail = (message: string): void => {
        failed = true;
        report(`entry ${index + 1}: ${message}`, index);
      };
      if (typeof item !== 'string') return fail(`expected a "host:port" string, got ${describe(item)}`);
      const address = parseListenAddress(item);
      if (typeof address === 'string') return fail(address);
      const clash = addresses.find((other) => listenConflict(other, address));
      if (clash) {
        return fail(
          clash.text === address.text
            ? `${address.text} is listed twice`
            : `${address.text} overlaps ${clash.text}: a wildcard address already takes that port on every address`,
        );
      }
      addresses.push(address);
    });
    return failed ? undefined : addresses;
  };
}

/** Linux refuses to bind a port twice in one family, including a wildcard plus a specific address. */
function listenConflict(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port !== b.port || net.isIPv6(a.host) !== net.isIPv6(b.host)) return false;
  const wildcard = (address: ListenAddress): boolean => address.host === '0.0.0.0' || address.host === '::';
  return a.host === b.host || wildcard(a) || wildcard(b);
}

// ---------------------------------------------------------------------------------------------------------
// Schema: every key, its TOML name, how it is read, and whether SIGHUP can apply a change.

interface Field<T> {
  /** The TOML name, snake_case. */
  key: string;
  read: Reader<T>;
  /** True when a change only takes effect after a restart (sockets, identities, processes already made). */
  restart: boolean;
}

type Sections = Omit<Config, 'source'>;
type Schema = { [S in keyof Sections]: { [F in keyof Sections[S]]: Field<Sections[S][F]> } };

const SCHEMA: Schema = {
  server: {
    listen: { key: 'listen', read: listenAddresses(), restart: true },
    tlsCert: { key: 'tls_cert', read: optionalAbsolutePath(), restart: true },
    tlsKey: { key: 'tls_key', read: optionalAbsolutePath(), restart: true },
    user: { key: 'user', read: webProcessUser(), restart: true },
    stateDir: { key: 'state_dir', read: stateDirectory(), restart: true },
    workerIdleTimeoutMs: { key: 'worker_idle_timeout', read: duration(1 * SECOND, 7 * DAY), restart: false },
    shutdownGraceMs: { key: 'shutdown_grace', read: duration(0, 10 * MINUTE), restart: false },
    webProcesses: { key: 'web_processes', read: integer(1, 16), restart: true },
    publicUrl: { key: 'public_url', read: publicOrigin(), restart: false },
    tlsMinVersion: { key: 'tls_min_version', read: oneOf('TLSv1.2', 'TLSv1.3'), restart: true },
    tlsCiphers: { key: 'tls_ciphers', read: text(tlsCiphersProblem), restart: true },
    maxWorkers: {
      key: 'max_workers',
      read: integerOrDerived(1, 1_000_000, () => defaultMaxWorkers(os.totalmem())),
      restart: false,
    },
    spareWorkers: { key: 'spare_workers', read: integer(0, 64), restart: false },
    workerStarts: {
      key: 'worker_starts',
      read: integerOrDerived(1, 64, defaultWorkerStarts),
      restart: false,
    },
    contentOrigin: { key: 'content_origin', read: contentOrigin(), restart: false },
  },
  auth: {
    pamService: { key: 'pam_service', read: text(pamServiceProblem), restart: false },
    realm: { key: 'realm', read: text(realmProblem), restart: false },
    // The monitor refuses root regardless; refusing 0 here keeps the file from saying otherwise.
    minUid: {
      key: 'min_uid',
      read: integer(1, 4294967294, 'uid 0 is root, who can never log in'),
      restart: false,
    },
    allowUsers: { key: 'allow_users', read: allowedUsers(), restart: false },
    allowGroups: { key: 'allow_groups', read: arrayOf(text(accountNameProblem)), restart: false },
    denyUsers: { key: 'deny_users', read: arrayOf(text(accountNameProblem)), restart: false },
    credentialTtlMs: { key: 'credential_ttl', read: duration(10 * SECOND, 1 * DAY), restart: false },
    failureDelayMs: { key: 'failure_delay', read: duration(1 * SECOND, 10 * SECOND), restart: false },
    // The threadpool is sized from it when the monitor starts.
    pamConcurrency: { key: 'pam_concurrency', read: integer(0, 256), restart: true },
    pamQueue: { key: 'pam_queue', read: integer(1, 100_000), restart: false },
    pairMaxWaitMs: { key: 'backoff_pair_max', read: duration(1 * SECOND, 1 * DAY), restart: false },
    accountMaxWaitMs: { key: 'backoff_account_max', read: duration(1 * SECOND, 1 * HOUR), restart: false },
    sourceGuessesPerMinute: { key: 'source_guesses_per_minute', read: integer(1, 10_000), restart: false },
    rememberSourcesMs: { key: 'remember_sources', read: duration(0, 365 * DAY), restart: false },
    ipv6Prefix: { key: 'ipv6_prefix', read: integer(16, 128), restart: false },
    throttleExempt: { key: 'throttle_exempt', read: arrayOf(text(cidrProblem)), restart: false },
  },
  shares: {
    layout: { key: 'layout', read: oneOf('home', 'tilde'), restart: false },
    subdir: { key: 'subdir', read: subdirectory(), restart: false },
    hide: { key: 'hide', read: arrayOf(text(hidePatternProblem)), restart: false },
  },
  limits: {
    maxHeaderBytes: { key: 'max_header_bytes', read: size(1 * KIB, 1 * MIB), restart: true },
    maxXmlBytes: { key: 'max_xml_bytes', read: size(1 * KIB, 64 * MIB), restart: false },
    maxUploadBytes: { key: 'max_upload_bytes', read: size(0, Number.MAX_SAFE_INTEGER), restart: false },
    maxInfinityEntries: { key: 'max_infinity_entries', read: integer(1, 10_000_000), restart: false },
    maxPropfindProperties: { key: 'max_propfind_properties', read: integer(1, 100_000), restart: false },
    maxLockTimeoutS: { key: 'max_lock_timeout', read: durationSeconds(1, 7 * 24 * 3600), restart: false },
    maxLockOwnerBytes: { key: 'max_lock_owner_bytes', read: size(64, 1 * MIB), restart: false },
    maxLocksPerUser: { key: 'max_locks_per_user', read: integer(1, 10_000_000), restart: false },
    maxLocksPerResource: { key: 'max_locks_per_resource', read: integer(1, 100_000), restart: false },
    maxLockDbBytes: {
      key: 'max_lock_db_bytes',
      read: size(1 * MIB, Number.MAX_SAFE_INTEGER),
      restart: false,
    },
    maxConnections: { key: 'max_connections', read: integer(1, 1_000_000), restart: false },
    maxConnectionsPerAddress: {
      key: 'max_connections_per_address',
      read: integer(1, 1_000_000),
      restart: false,
    },
    requestTimeoutMs: { key: 'request_timeout', read: duration(1 * SECOND, 1 * DAY), restart: false },
    workerCallTimeoutMs: { key: 'worker_call_timeout', read: duration(1 * SECOND, 1 * DAY), restart: false },
    workerTreeTimeoutMs: { key: 'worker_tree_timeout', read: duration(1 * SECOND, 7 * DAY), restart: false },
    headerTimeoutMs: { key: 'header_timeout', read: duration(1 * SECOND, 10 * MINUTE), restart: false },
    headerTimeoutMaxMs: {
      key: 'header_timeout_max',
      read: duration(1 * SECOND, 10 * MINUTE),
      restart: false,
    },
    headerMinRate: { key: 'header_min_rate', read: integer(0, 1_000_000_000), restart: false },
  },
  storage: {
    durable: { key: 'durable', read: boolean(), restart: false },
  },
  locks: {
    database: { key: 'database', read: text(lockDatabaseProblem), restart: true },
  },
  log: {
    level: { key: 'level', read: oneOf('error', 'warn', 'info', 'debug'), restart: false },
    // Every process takes the format when it starts (workers too): a change waits for a restart.
    format: { key: 'format', read: oneOf('logfmt', 'json'), restart: true },
    access: { key: 'access', read: boolean(), restart: false },
  },
  metrics: {
    listen: { key: 'listen', read: listenAddresses(true), restart: true },
  },
};

/** The schema seen untyped, for the loops that walk it; the typed SCHEMA above is what keeps it in step. */
function schemaSections(): [keyof Sections, Record<string, Field<unknown>>][] {
  return Object.entries(SCHEMA) as [keyof Sections, Record<string, Field<unknown>>][];
}

// ---------------------------------------------------------------------------------------------------------
// Reading a document

function readConfig(text: string, source: string | null, checkFiles: boolean): Config {
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  let document: TomlTable;
  try {
    // Integers as bigint keep "5" and "5.0" apart, so a float where an integer belongs is reported.
    document = parseToml(text, { integersAsBigInt: true });
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const message = error.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
    throw new ConfigError(source, [{ key: '', line: error.line, message: `TOML syntax error: ${message}` }]);
  }

  const lines = keyLines(text);
  const problems: ConfigProblem[] = [];
  const problem = (keyPath: string, message: string, index?: number): void => {
    const line =
      (index === undefined ? undefined : lines.get(`${keyPath}[${index}]`)) ?? lineOf(lines, keyPath);
    problems.push({ key: keyPath, line, message });
  };

  const config = defaultConfig();
  config.source = source;
  const known = new Map(schemaSections());
  for (const [sectionName, table] of Object.entries(document)) {
    const fields = known.get(sectionName as keyof Sections);
    if (!fields) {
      problem(sectionName, unknownSectionMessage(sectionName, table));
      continue;
    }
    if (!isTable(table)) {
      problem(sectionName, `expected a table [${sectionName}], got ${describe(table)}`);
      continue;
    }
    const target = config[sectionName as keyof Sections] as Record<string, unknown>;
    for (const [key, value] of Object.entries(table)) {
      const keyPath = `${sectionName}.${key}`;
      const entry = Object.entries(fields).find(([, field]) => field.key === key);
      if (!entry) {
        problem(keyPath, unknownKeyMessage(sectionName, key));
        continue;
      }
      const result = entry[1].read(value, (message, index) => problem(keyPath, message, index));
      if (result !== undefined) target[entry[0]] = result;
    }
  }

  checkTlsPair(config, document, problem);
  checkMetricsListen(config, problem);
  if (config.limits.headerTimeoutMaxMs < config.limits.headerTimeoutMs) {
    problem(
      'limits.header_timeout_max',
      `${formatDuration(config.limits.headerTimeoutMaxMs)} is shorter than limits.header_timeout (${formatDuration(config.limits.headerTimeoutMs)}): it is the longest a slow but moving request head may take`,
    );
  }
  if (checkFiles && problems.length === 0) checkTlsFiles(config, problem);
  if (checkFiles && source !== null) checkSecretsReadable(config, source, problem);
  if (problems.length > 0) throw new ConfigError(source, problems.sort(byLine));
  return config;
}

/** Stable: problems on one line keep their order; problems without a line go last. */
function byLine(a: ConfigProblem, b: ConfigProblem): number {
  if (a.line === b.line) return 0;
  if (a.line === null) return 1;
  if (b.line === null) return -1;
  return a.line - b.line;
}

function isTable(value: TomlValue): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

type ProblemSink = (keyPath: string, message: string) => void;

function checkTlsPair(config: Config, document: TomlTable, problem: ProblemSink): void {
  const { tlsCert, tlsKey } = config.server;
  if ((tlsCert === null) === (tlsKey === null)) return;
  const server = document.server;
  // Only report when both keys were read cleanly: a bad path is already reported on its own.
  const written = (key: string): boolean =>
    isTable(server) && typeof server[key] === 'string' && server[key] !== '';
  if (tlsCert !== null && !written('tls_key')) {
    problem('server.tls_cert', 'is set but server.tls_key is not: set both (HTTPS) or neither (plain HTTP)');
  }
  if (tlsKey !== null && !written('tls_cert')) {
    problem('server.tls_key', 'is set but server.tls_cert is not: set both (HTTPS) or neither (plain HTTP)');
  }
}

/** The metrics listener is never the WebDAV port: /metrics must not be reachable where clients are. */
function checkMetricsListen(config: Config, problem: ProblemSink): void {
  for (const address of config.metrics.listen) {
    const clash = config.server.listen.find((other) => listenConflict(other, address));
    if (clash !== undefined) {
      problem(
        'metrics.listen',
        `${address.text} overlaps server.listen ${clash.text}: use a port of its own`,
      );
    }
  }
}

/** At load time: the TLS files exist, are readable, hold a certificate and a key, and the two belong together. */
function checkTlsFiles(config: Config, problem: ProblemSink): void {
  const { tlsCert, tlsKey } = config.server;
  if (tlsCert === null || tlsKey === null) return;
  let certificate: crypto.X509Certificate | null = null;
  let key: crypto.KeyObject | null = null;
  try {
    certificate = new crypto.X509Certificate(fs.readFileSync(tlsCert));
  } catch (error) {
    problem('server.tls_cert', tlsFileMessage(tlsCert, 'a PEM certificate', error));
  }
  try {
    key = crypto.createPrivateKey(fs.readFileSync(tlsKey));
  } catch (error) {
    problem('server.tls_key', tlsFileMessage(tlsKey, 'a PEM private key', error));
  }
  if (certificate && key && !certificate.checkPrivateKey(key)) {
    problem('server.tls_key', `${tlsKey} is not the private key of the certificate in ${tlsCert}`);
  }
}

/** A password in locks.database must not be readable by every local account. */
function checkSecretsReadable(config: Config, source: string, problem: ProblemSink): void {
  if (config.locks.database === 'sqlite' || new URL(config.locks.database).password === '') return;
  const mode = fs.statSync(source).mode & 0o777;
  if (mode & 0o004) {
    problem(
      'locks.database',
      `holds a password, but ${source} is readable by every account (mode ${mode.toString(8)}); run chmod 0600 (or 0640) on it`,
    );
  }
}

function tlsFileMessage(path: string, expected: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `${path} does not exist`;
  if (code === 'EACCES') return `${path} is not readable by the monitor`;
  if (code === 'EISDIR') return `${path} is a directory`;
  return `${path} does not contain ${expected} (${(error as Error).message})`;
}

function unreadableFileMessage(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as Error).message})`;
  return (
    `the configuration file ${reason}; create it from the commented example config/privdav.toml ` +
    `in the privdav source tree, or pass --config FILE`
  );
}

/**
 * The monitor runs as root and trusts this file, so only root (or the account running privdav) may be able
 * to change it — like sshd's StrictModes.
 */
function configFileOwnershipProblem(path: string): string | null {
  const stat = fs.statSync(path);
  const self = process.getuid?.() ?? 0;
  if (stat.uid !== 0 && stat.uid !== self) {
    return `the configuration file is owned by uid ${stat.uid}; it must be owned by root, who runs privdav`;
  }
  if (stat.mode & 0o002 || (stat.mode & 0o020 && stat.gid !== 0)) {
    return `the configuration file is writable by other accounts (mode ${(stat.mode & 0o777).toString(8)}); run chmod go-w on it`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Messages for unknown names, with "did you mean" suggestions

function unknownSectionMessage(name: string, value: TomlValue): string {
  const sections = schemaSections();
  if (!isTable(value)) {
    // A key written above the first [section] header lands at the top level.
    const owner = sections.find(([, fields]) => Object.values(fields).some((field) => field.key === name));
    if (owner)
      return `unknown top-level key; did you mean ${owner[0]}.${name}? (write it under [${owner[0]}])`;
  }
  const guess = closest(
    name,
    sections.map(([section]) => section),
  );
  const known = sections.map(([section]) => `[${section}]`).join(', ');
  return guess ? `unknown section; did you mean [${guess}]?` : `unknown section; known sections are ${known}`;
}

function unknownKeyMessage(section: string, key: string): string {
  const sections = schemaSections();
  const own = sections.find(([name]) => name === section)?.[1] ?? {};
  const guess = closest(
    key,
    Object.values(own).map((field) => field.key),
  );
  if (guess) return `unknown key; did you mean ${section}.${guess}?`;
  const elsewhere = sections.find(([, fields]) => Object.values(fields).some((field) => field.key === key));
  if (elsewhere)
    return `unknown key in [${section}]; did you mean ${elsewhere[0]}.${key}? (it belongs in [${elsewhere[0]}])`;
  const known = Object.values(own)
    .map((field) => field.key)
    .join(', ');
  return `unknown key; [${section}] has ${known}`;
}

/** The known name nearest to `name` by edit distance, when near enough to be a typo (or a spelt-out name). */
function closest(name: string, candidates: string[]): string | null {
  const lower = name.toLowerCase().replace(/-/g, '_');
  // "state_directory" for "state_dir", "max_xml" for "max_xml_bytes": one is the start of the other.
  const prefixed = candidates.find(
    (candidate) =>
      Math.min(candidate.length, lower.length) >= 4 &&
      (lower.startsWith(candidate) || candidate.startsWith(lower)),
  );
  if (prefixed) return prefixed;
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}

function formatProblem(source: string | null, { key, line, message }: ConfigProblem): string {
  const where = `${source ?? '<config>'}${line === null ? '' : `:${line}`}`;
  return key === '' ? `${where}: ${message}` : `${where}: ${key}: ${message}`;
}

// ---------------------------------------------------------------------------------------------------------
// Finding the line of each key. smol-toml gives values but not positions, so this small scanner walks the
// (already validated) document and records where each key path is written: "server.listen" for a key,
// "server.listen[1]" for an array element, "server" for a [server] header. Handles dotted and quoted keys,
// inline tables, multi-line arrays and strings.

function lineOf(lines: Map<string, number>, keyPath: string): number | null {
  for (
    let path = keyPath;
    path !== '';
    path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : ''
  ) {
    const line = lines.get(path);
    if (line !== undefined) return line;
  }
  return null;
}

function keyLines(text: string): Map<string, number> {
  return new KeyLineScanner(text).scan();
}

class KeyLineScanner {
  private position = 0;
  private line = 1;
  private readonly lines = new Map<string, number>();

  constructor(private readonly text: string) {}

  scan(): Map<string, number> {
    let table = '';
    const arrayTableCounts = new Map<string, number>();
    while (this.skipBlank(true)) {
      const line = this.line;
      if (this.at('[')) {
        const isArrayTable = this.at('[[');
        this.advance(isArrayTable ? 2 : 1);
        const name = this.readKey();
        this.advance(isArrayTable ? 2 : 1);
        this.note(name, line);
        if (isArrayTable) {
          const count = arrayTableCounts.get(name.join('.')) ?? 0;
          arrayTableCounts.set(name.join('.'), count + 1);
          table = `${name.join('.')}[${count}]`;
        } else {
          table = name.join('.');
        }
      } else {
        this.readKeyValue(table, line);
      }
    }
    return this.lines;
  }

  private readKeyValue(prefix: string, line: number): void {
    const key = this.readKey();
    const path = prefix === '' ? key : [prefix, ...key];
    this.note(path, line);
    this.skipBlank(false);
    if (this.at('=')) this.advance(1);
    this.skipBlank(false);
    this.readValue(path.join('.'));
  }

  private readValue(path: string): void {
    if (this.at('"""') || this.at("'''")) return this.skipMultilineString(this.text[this.position]);
    if (this.at('"') || this.at("'")) return void this.readQuoted();
    if (this.at('[')) return this.readArray(path);
    if (this.at('{')) return this.readInlineTable(path);
    const start = this.position;
    while (this.position < this.text.length && !',]}\n\r#'.includes(this.text[this.position]))
      this.advance(1);
    if (this.position === start) this.advance(1);
  }

  private readArray(path: string): void {
    this.advance(1);
    for (let index = 0; this.skipBlank(true) && !this.at(']'); index++) {
      this.lines.set(`${path}[${index}]`, this.line);
      this.readValue(`${path}[${index}]`);
      this.skipBlank(true);
      if (this.at(',')) this.advance(1);
    }
    this.advance(1);
  }

  private readInlineTable(path: string): void {
    this.advance(1);
    while (this.skipBlank(true) && !this.at('}')) {
      this.readKeyValue(path, this.line);
      this.skipBlank(true);
      if (this.at(',')) this.advance(1);
    }
    this.advance(1);
  }

  /** Dotted key: bare or quoted parts separated by "." (with optional blanks around the dots). */
  private readKey(): string[] {
    const parts: string[] = [];
    do {
      this.skipBlank(false);
      if (this.at('"') || this.at("'")) {
        parts.push(this.readQuoted());
      } else {
        const start = this.position;
        while (this.position < this.text.length && /[A-Za-z0-9_-]/.test(this.text[this.position]))
          this.advance(1);
        parts.push(this.text.slice(start, this.position));
      }
      this.skipBlank(false);
    } while (this.at('.') && this.advance(1));
    return parts;
  }

  private readQuoted(): string {
    const quote = this.text[this.position];
    this.advance(1);
    const start = this.position;
    while (this.position < this.text.length && !this.at(quote) && !this.at('\n')) {
      this.advance(quote === '"' && this.at('\\') ? 2 : 1);
    }
    const raw = this.text.slice(start, this.position);
    this.advance(1);
    if (quote === "'") return raw;
    try {
      return JSON.parse(`"${raw}"`) as string;
    } catch {
      return raw;
    }
  }

  private skipMultilineString(quote: string): void {
    const delimiter = quote.repeat(3);
    this.advance(3);
    while (this.position < this.text.length && !this.at(delimiter)) {
      this.advance(quote === '"' && this.at('\\') ? 2 : 1);
    }
    this.advance(3);
    // Up to two quotes may end the content right before the delimiter ("""a""""" is 'a""').
    for (let extra = 0; extra < 2 && this.at(quote); extra++) this.advance(1);
  }

  /** Skips spaces, tabs and comments (and newlines when `newlines`); false at the end of the text. */
  private skipBlank(newlines: boolean): boolean {
    while (this.position < this.text.length) {
      const character = this.text[this.position];
      if (
        character === ' ' ||
        character === '\t' ||
        (newlines && (character === '\n' || character === '\r'))
      ) {
        this.advance(1);
      } else if (character === '#') {
        while (this.position < this.text.length && !this.at('\n')) this.advance(1);
      } else {
        return true;
      }
    }
    return false;
  }

  private note(path: string[], line: number): void {
    for (let length = 1; length <= path.length; length++) {
      const key = path.slice(0, length).join('.');
      if (!this.lines.has(key)) this.lines.set(key, line);
    }
  }

  private at(literal: string): boolean {
    return this.text.startsWith(literal, this.position);
  }

  private advance(count: number): true {
    for (let moved = 0; moved < count && this.position < this.text.length; moved++) {
      if (this.text[this.position] === '\n') this.line++;
      this.position++;
    }
    return true;
  }
}
