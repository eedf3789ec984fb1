// Credential cookies: what the monitor hands the web process after a successful PAM login, and
// what every worker request carries. A cookie is tagged with HMAC-SHA256 under the per-user key
// K_u = HKDF(K, "privdav worker " + uid), so a worker (which holds only K_u) can check its own
// user's cookies and cannot forge anyone else's.

import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { MAX_USER_BYTES } from '../common/names';

export interface CookieClaims {
  uid: number;
  gid: number;
  user: string;
  /** Milliseconds since the epoch. */
  issued: number;
  expires: number;
}

export type CookieVerdict =
  | { ok: true; claims: CookieClaims }
  | { ok: false; code: 'COOKIE_INVALID' | 'COOKIE_EXPIRED'; reason: string };

const VERSION = 1;
const NONCE_BYTES = 16;
const TAG_BYTES = 32;
// version(1) uid(4) gid(4) issued(6) expires(6) nonce(16) userLength(1)
const HEADER_BYTES = 1 + 4 + 4 + 6 + 6 + NONCE_BYTES + 1;
export const MAX_COOKIE_CHARS = Math.ceil(((HEADER_BYTES + MAX_USER_BYTES + TAG_BYTES) * 4) / 3) + 4;

/** The per-user key a worker gets; derived, never stored. */
export function deriveUserKey(masterKey: Buffer, uid: number): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), `privdav worker ${uid}`, 32));
}

export function newMasterKey(): Buffer {
  return randomBytes(32);
}

export function issueCookie(userKey: Buffer, claims: CookieClaims): string {
  const user = Buffer.from(claims.user, 'utf8');
  if (user.length > MAX_USER_BYTES) throw new RangeError('user name too long for a cookie');
  const body = Buffer.alloc(HEADER_BYTES + user.length);
  let offset = body.writeUInt8(VERSION, 0);
  offset = body.writeUInt32BE(claims.uid, offset);
  offset = body.writeUInt32BE(claims.gid, offset);
  offset = body.writeUIntBE(claims.issued, offset, 6);
  offset = body.writeUIntBE(claims.expires, offset, 6);
  offset += randomBytes(NONCE_BYTES).copy(body, offset);
  offset = body.writeUInt8(user.length, offset);
  user.copy(body, offset);
  return Buffer.concat([body, tag(userKey, body)]).toString('base64url');
}

/**
 * Reads the claims without checking the tag. Only for choosing which key to verify with
 * (the monitor derives K_u from the claimed uid); never trust the result on its own.
 */
export function peekClaims(cookie: string): CookieClaims | null {
  const raw = decode(cookie);
  return raw === null ? null : raw.claims;
}

export function verifyCookie(
  userKey: Buffer,
  cookie: unknown,
  expectedUid: number,
  now = Date.now(),
): CookieVerdict {
  if (typeof cookie !== 'string') return invalid('not a string');
  const raw = decode(cookie);
  if (raw === null) return invalid('malformed');
  const expected = tag(userKey, raw.body);
  if (!timingSafeEqual(expected, raw.tag)) return invalid('bad tag');
  // The tag is checked before the claims so that a forged cookie learns nothing about them.
  if (raw.claims.uid !== expectedUid) return invalid('issued for another uid');
  if (raw.claims.expires <= now) return { ok: false, code: 'COOKIE_EXPIRED', reason: 'expired' };
  if (raw.claims.issued > now + 60_000) return invalid('issued in the future');
  return { ok: true, claims: raw.claims };
}

function tag(userKey: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', userKey).update(body).digest();
}

function invalid(reason: string): CookieVerdict {
  return { ok: false, code: 'COOKIE_INVALID', reason };
}

function decode(cookie: string): { body: Buffer; tag: Buffer; claims: CookieClaims } | null {
  if (cookie.length > MAX_COOKIE_CHARS || !/^[A-Za-z0-9_-]+$/.test(cookie)) return null;
  const bytes = Buffer.from(cookie, 'base64url');
  if (bytes.length < HEADER_BYTES + TAG_BYTES || bytes.readUInt8(0) !== VERSION) return null;
  const userLength = bytes.readUInt8(HEADER_BYTES - 1);
  if (bytes.length !== HEADER_BYTES + userLength + TAG_BYTES) return null;
  const body = bytes.subarray(0, HEADER_BYTES + userLength);
  const user = body.subarray(HEADER_BYTES).toString('utf8');
  return {
    body,
    tag: bytes.subarray(body.length),
    claims: {
      uid: bytes.readUInt32BE(1),
      gid: bytes.readUInt32BE(5),
      issued: bytes.readUIntBE(9, 6),
      expires: bytes.readUIntBE(15, 6),
      user,
    },
  };
}
