// HTTP Basic authentication (RFC 7617, UTF-8) with a credential cache: user + a keyed hash of the
// password → the cookie the monitor issued, until it expires. The password itself is never
// stored; a cache hit costs one keyed SHA-256. Concurrent first requests with the same credentials
// share one AUTH round trip to the monitor.

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MonitorClient } from '../monitor-client';
import { strictUtf8 } from '../../common/name-bytes';
import { MAX_PASSWORD_BYTES, MAX_USER_BYTES } from '../../common/names';
import { Session } from '../storage/privsep-storage';

export interface Credentials {
  user: string;
  password: string;
}

const MAX_CACHE_ENTRIES = 10_000;
/** Renew a little before expiry so a long request does not start with a cookie about to lapse. */
const RENEW_MARGIN_MS = 5_000;

/**
 * Parses `Authorization: Basic ...`. Null when absent or unusable: not Basic, not base64, no
 * colon, not UTF-8, NUL or control characters anywhere (NUL would truncate the password at PAM),
 * or too long. The password may contain ':' (only the first colon separates).
 */
export function parseBasic(header: string | undefined): Credentials | null {
  if (header === undefined) return null;
  const match = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  if (match === null || match[1]!.length > 4 * 1024) return null;
  const bytes = Buffer.from(match[1]!, 'base64');
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return null;
  }
  const colon = text.indexOf(':');
  if (colon <= 0) return null;
  const user = text.slice(0, colon);
  const password = text.slice(colon + 1);
  if (/[\x00-\x1f\x7f]/.test(user) || password.includes('\0')) return null;
  if (Buffer.byteLength(user) > MAX_USER_BYTES || Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
    return null;
  return { user, password };
}

interface CacheEntry {
  digest: Buffer;
  uid: number;
  cookie: string;
  expires: number;
}

export class Authenticator {
  readonly #monitor: MonitorClient;
  /** Random per process: the cached digests are useless anywhere else. */
  readonly #key = randomBytes(32).toString('hex');
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<CacheEntry | null>>();

  constructor(monitor: MonitorClient) {
    this.#monitor = monitor;
  }

  /** A session for these credentials, or null when the monitor refused them. */
  async authenticate(credentials: Credentials, remote: string): Promise<Session | null> {
    const digest = this.#digest(credentials);
    const cached = this.#cache.get(credentials.user);
    const entry =
      cached !== undefined &&
      cached.expires - RENEW_MARGIN_MS > Date.now() &&
      timingSafeEqual(cached.digest, digest)
        ? cached
        : await this.#login(credentials, digest, remote);
    if (entry === null) return null;
    return this.#session(credentials, entry, remote);
  }

  #session(credentials: Credentials, entry: CacheEntry, remote: string): Session {
    const renew = async (): Promise<void> => {
      this.#cache.delete(credentials.user);
      const fresh = await this.#login(credentials, this.#digest(credentials), remote);
      if (fresh === null) throw new Error('credentials no longer accepted');
      session.cookie = fresh.cookie;
    };
    const session: Session = { user: credentials.user, uid: entry.uid, cookie: entry.cookie, refresh: renew };
    return session;
  }

  /**
   * SHA-256 of secret key, user and password. A secret-prefix hash rather than an HMAC: the
   * digests never leave this process (so length extension has nothing to extend), and the
   * one-shot hash costs under half of createHmac on every cached request (measured ~2.9 vs 6.9 µs).
   */
  #digest(credentials: Credentials): Buffer {
    return hash(
      'sha256',
      `${this.#key}\0${credentials.user}\0${credentials.password}`,
      'buffer',
    ) as unknown as Buffer;
  }

  #login(credentials: Credentials, digest: Buffer, remote: string): Promise<CacheEntry | null> {
    const flightKey = `${credentials.user}\0${digest.toString('base64')}`;
    let flight = this.#inFlight.get(flightKey);
    if (flight === undefined) {
      flight = this.#monitor.auth(credentials.user, credentials.password, remote).then((login) => {
        if (login === null) return null;
        const entry: CacheEntry = { digest, uid: login.uid, cookie: login.cookie, expires: login.expires };
        if (this.#cache.size >= MAX_CACHE_ENTRIES) this.#evict();
        this.#cache.set(credentials.user, entry);
        return entry;
      });
      this.#inFlight.set(flightKey, flight);
      void flight.finally(() => this.#inFlight.delete(flightKey)).catch(() => undefined);
    }
    return flight;
  }

  #evict(): void {
    const now = Date.now();
    for (const [user, entry] of this.#cache) if (entry.expires <= now) this.#cache.delete(user);
    if (this.#cache.size >= MAX_CACHE_ENTRIES) this.#cache.clear();
  }
}
