// The channel protocol: every message that crosses a privdav channel, defined once and shared by
// the monitor, the workers and the web process. Messages are JSON objects in one SEQPACKET
// datagram (descriptors ride along as SCM_RIGHTS). Receivers treat every message as hostile:
// `decodeMessage` bounds and parses, and each side validates fields with the checkers below
// before acting on anything.

import type { Entry, ResourceKind } from './storage';

/** Bytes in one message; SEQPACKET keeps the boundary, the native channel refuses larger ones. */
export const MAX_MESSAGE_BYTES = 128 * 1024;
export const MAX_REMOTE_CHARS = 64;
/** Entries a worker packs into one `list` reply message (also bounded by bytes). */
export const LIST_BATCH_ENTRIES = 512;
export const LIST_BATCH_BYTES = 96 * 1024;

/** The request limits the monitor reads from `[limits]` and hands the web process. */
export interface WebLimits {
  maxHeaderBytes: number;
  maxXmlBytes: number;
  /** 0 = unlimited. */
  maxUploadBytes: number;
  maxInfinityEntries: number;
  /** Properties one PROPFIND may name (prop or include): past it, 403 before any listing. */
  maxPropfindProperties: number;
  maxLockTimeoutS: number;
  /** Bounds on locks, so one user cannot fill the shared lock database or bloat lockdiscovery. */
  maxLockOwnerBytes: number;
  maxLocksPerUser: number;
  maxLocksPerResource: number;
  maxLockDbBytes: number;
  maxConnections: number;
  /** Connections one client address (IPv6: one network of WebInit.ipv6Prefix) may hold. */
  maxConnectionsPerAddress: number;
  requestTimeoutMs: number;
  /** How long the web process waits for a worker's (next) reply; tree operations get the second. */
  workerCallTimeoutMs: number;
  workerTreeTimeoutMs: number;
  /** A request head must arrive within headerTimeoutMs, extended by 1 s per headerMinRate bytes up to headerTimeoutMaxMs. */
  headerTimeoutMs: number;
  headerTimeoutMaxMs: number;
  headerMinRate: number;
}

// ---- web process → monitor ----------------------------------------------------------------

export interface AuthRequest {
  t: 'auth';
  id: number;
  user: string;
  password: string;
  remote: string;
}
export interface ConnectRequest {
  t: 'connect';
  id: number;
  cookie: string;
}
export interface ReadyRequest {
  t: 'ready';
}
/** The answer to a Ping: proves the web process's event loop runs (the watchdog's keep-alive). */
export interface PongRequest {
  t: 'pong';
  seq: number;
  /** Requests answered since the web process started (STATUS= shows the rate). */
  requests: number;
}
export type MonitorRequest = AuthRequest | ConnectRequest | ReadyRequest | PongRequest;

// ---- monitor → web process ----------------------------------------------------------------

export type AuthReply =
  | { t: 'auth'; id: number; ok: true; cookie: string; uid: number; expires: number }
  | { t: 'auth'; id: number; ok: false; reason: 'denied' | 'unavailable' }
  /** PAM is saturated: nothing was counted; the web process answers 503 with this Retry-After. */
  | { t: 'auth'; id: number; ok: false; reason: 'busy'; retryAfter: number };
/** A successful connect reply carries exactly one descriptor: the web process's end of a fresh channel to the worker. */
export type ConnectReply =
  | { t: 'connect'; id: number; ok: true }
  | { t: 'connect'; id: number; ok: false; code: 'COOKIE_INVALID' | 'COOKIE_EXPIRED' | 'UNAVAILABLE' };
export type MonitorReply = AuthReply | ConnectReply;

/** Monitor → web process, at start and on every reload (no id: not a reply). */
export interface WebInit {
  t: 'init';
  /** Addresses of the inherited listen descriptors, in order (fds 4, 5, ...). */
  listeners: string[];
  /** PEM text, read by the monitor so the web account needs no access to the key file. */
  tls: { cert: string; key: string; minVersion: 'TLSv1.2' | 'TLSv1.3'; ciphers: string } | null;
  stateDir: string;
  /** [locks] database: "sqlite" or a postgresql:// URL with its credentials (read by the monitor, as root). */
  lockDatabase: string;
  realm: string;
  limits: WebLimits;
  /** server.content_origin: the origin where active user content displays inline; null: nowhere. */
  contentOrigin: string | null;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  shutdownGraceMs: number;
  /** server.public_url as an origin ("https://dav.example.org"), or null. */
  publicUrl: string | null;
  /** shares.hide: glob patterns of names left out of listings and refused on create. */
  hide: string[];
  /** Changes when the monitor retired the running workers (their settings changed on reload). */
  workerGeneration: number;
  /** auth.ipv6_prefix: IPv6 clients are counted per network of this many bits, also for connections. */
  ipv6Prefix: number;
  /** log.access: one line per answered request. */
  accessLog: boolean;
  /** Addresses of the inherited metrics listen descriptors, which follow the WebDAV ones. */
  metricsListeners: string[];
}

/** What the monitor alone knows, for /metrics: counters since it started, gauges as of now. */
export interface MonitorStats {
  logins: Record<LoginResult, number>;
  workers: number;
  workerStarts: number;
  /** Resident memory (VmRSS) in bytes by role, summed over the processes of that role. */
  residentBytes: { monitor: number; web: number; worker: number };
}
export const LOGIN_RESULTS = ['ok', 'wrong', 'refused', 'backoff', 'overload'] as const;
export type LoginResult = (typeof LOGIN_RESULTS)[number];

/** Monitor → web process (a notice): this user's worker was retired (their groups changed); new calls need a new channel. */
export interface WorkerRetiredNotice {
  t: 'worker-retired';
  uid: number;
}

/** Monitor → web process every few seconds (no id: a notice); answered with a PongRequest. */
export interface Ping {
  t: 'ping';
  seq: number;
  stats: MonitorStats;
}

// ---- monitor ↔ worker (control channel, fd 3 of the worker) ---------------------------------

/** Who a worker is; given in its environment so it can drop before reading any message. */
export interface WorkerIdentity {
  user: string;
  uid: number;
  gid: number;
  home: string;
  umask: number;
}

export interface WorkerSettings {
  layout: 'home' | 'tilde';
  subdir: string;
  idleTimeoutMs: number;
  durable: boolean;
  /** Cap on entries a tree operation may touch (Depth: infinity). */
  maxInfinityEntries: number;
  /** Tilde layout: accounts below this uid have no share. */
  minUid: number;
  /** Non-root mode: the only account with a share (the daemon's own). */
  onlyUid: number | null;
}
export interface WorkerInit {
  t: 'init';
  /** K_u, base64: the only key this worker ever sees. */
  key: string;
  settings: WorkerSettings;
}
/** Carries one descriptor: a new channel end from a web process. */
export interface WorkerAttach {
  t: 'attach';
}
/** The worker's settings changed on reload: finish what is in flight, then leave. */
export interface WorkerRetire {
  t: 'retire';
}
export type MonitorToWorker = WorkerInit | WorkerAttach | WorkerRetire;
/** The worker tells the monitor it is leaving (idle), so no new channel is attached to it. */
export interface WorkerExiting {
  t: 'exiting';
}

// ---- web process ↔ worker (storage calls) ---------------------------------------------------

// Each storage operation, its arguments and its result: common/storage-protocol.ts.

/** Replies to a storage call. Streamed answers send `more: true` replies before the last one. */
export type StorageReply =
  | { id: number; ok: true; result?: unknown; more?: boolean }
  | { id: number; ok: false; code: string; message: string; property?: string };

// ---- encoding -------------------------------------------------------------------------------

export function encodeMessage(message: object): Buffer {
  const payload = Buffer.from(JSON.stringify(message), 'utf8');
  if (payload.length > MAX_MESSAGE_BYTES)
    throw new RangeError(`message of ${payload.length} bytes is too large`);
  return payload;
}

/**
 * File content that rides in a storage request after its JSON (putSmall's body), unencoded: the
 * JSON, one NUL byte, then the bytes. JSON text never holds a raw NUL (JSON.stringify escapes every control character
 * and UTF-8 has no 0 byte in other characters), so the first NUL is the boundary. Messages of the
 * monitor never carry one: decodeMessage refuses them.
 */
export const TAIL_SEPARATOR = 0;

export function encodeTailedMessage(message: object, tail: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  const length = json.length + 1 + tail.length;
  if (length > MAX_MESSAGE_BYTES) throw new RangeError(`message of ${length} bytes is too large`);
  const payload = Buffer.allocUnsafe(length);
  json.copy(payload, 0);
  payload[json.length] = TAIL_SEPARATOR;
  tail.copy(payload, json.length + 1);
  return payload;
}

/** A storage message with its tail (null when it has none; a view of `payload`), or null when malformed. */
export function decodeTailedMessage(
  payload: Buffer,
): { message: Record<string, unknown>; tail: Buffer | null } | null {
  const boundary = payload.indexOf(TAIL_SEPARATOR);
  if (boundary < 0) {
    const message = decodeMessage(payload);
    return message === null ? null : { message, tail: null };
  }
  const message = decodeMessage(payload.subarray(0, boundary));
  return message === null ? null : { message, tail: payload.subarray(boundary + 1) };
}

/** Parses one message; null when it is not a JSON object of bounded size. */
export function decodeMessage(payload: Buffer): Record<string, unknown> | null {
  if (payload.length === 0 || payload.length > MAX_MESSAGE_BYTES) return null;
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  return value as Record<string, unknown>;
}

// ---- field checks (used by every receiver) ---------------------------------------------------

export function isRequestId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A string of at most `maxBytes` UTF-8 bytes with no NUL (NUL truncates C strings: PAM, paths). */
export function isBoundedString(value: unknown, maxBytes: number): value is string {
  return (
    typeof value === 'string' &&
    value.length <= maxBytes &&
    Buffer.byteLength(value, 'utf8') <= maxBytes &&
    !value.includes('\0')
  );
}

// ---- listing entries -------------------------------------------------------------------------

/**
 * A listed entry on the wire: a flat array instead of an object, because a listing is thousands
 * of them and the keys would be most of the bytes and of the serialising time.
 * [path, kind, size, mtimeUs, birthtimeUs, etag, props?]: times in
 * whole microseconds (a Stat's milliseconds carry no more), which print several times faster
 * than fractional milliseconds and give back the same doubles (us / 1000).
 */
export function entryToWire(entry: Entry): string {
  const { stat, props } = entry;
  // Built by hand, not JSON.stringify of such an array: a listing serialises every member,
  // and this is the same text in about half the time. Numbers print as JSON prints them.
  let wire =
    '[' +
    JSON.stringify(entry.path) +
    ',' +
    JSON.stringify(stat.kind) +
    ',' +
    jsonNumber(stat.size) +
    ',' +
    jsonNumber(Math.round(stat.mtimeMs * 1000)) +
    ',' +
    jsonNumber(Math.round(stat.birthtimeMs * 1000)) +
    ',' +
    JSON.stringify(stat.etag);
  if (props !== undefined) wire += ',' + (isEmpty(props) ? '{}' : JSON.stringify(props));
  return wire + ']';
}

/** Entry texts (entryToWire), each followed by a comma: `count` of them. */
export interface WireRun {
  text: Buffer;
  count: number;
  /** The text is `count` rendered <D:response> elements (a listRendered listing), not JSON entries. */
  xml?: boolean;
}

export function wireRunOf(entry: Entry): WireRun {
  return { text: Buffer.from(entryToWire(entry) + ',', 'utf8'), count: 1 };
}

/** As JSON.stringify writes a number (NaN and the infinities are not JSON: null). */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

function isEmpty(object: object): boolean {
  for (const key in object) if (Object.prototype.hasOwnProperty.call(object, key)) return false;
  return true;
}

const KINDS: readonly string[] = ['file', 'directory', 'other'];
const NOT_ETAG_TEXT = /[^\x21-\x7e]/;

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The web process's check of what a worker listed: null for anything not shaped like an entry. */
export function entryFromWire(value: unknown): Entry | null {
  if (!Array.isArray(value) || value.length < 6 || value.length > 7) return null;
  const [path, kind, size, mtimeUs, birthtimeUs, etag, props] = value as unknown[];
  if (typeof path !== 'string' || !path.startsWith('/') || typeof kind !== 'string' || !KINDS.includes(kind))
    return null;
  if (typeof etag !== 'string' || NOT_ETAG_TEXT.test(etag)) return null;
  // One by one, not through an array and a callback: this runs for every member of a listing.
  if (!isFiniteNumber(size) || !isFiniteNumber(mtimeUs) || !isFiniteNumber(birthtimeUs)) return null;
  if (props !== undefined && (typeof props !== 'object' || props === null || Array.isArray(props)))
    return null;
  const entry: Entry = {
    path,
    stat: {
      kind: kind as ResourceKind,
      size: size as number,
      mtimeMs: (mtimeUs as number) / 1000,
      birthtimeMs: (birthtimeUs as number) / 1000,
      etag,
    },
  };
  if (props !== undefined) entry.props = props as Record<string, string>;
  return entry;
}
