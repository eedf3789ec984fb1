// Cookies: issued by the monitor under K_u, verified by the worker that holds only K_u.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveUserKey, issueCookie, newMasterKey, peekClaims, verifyCookie } from '../../helper/cookie';

const master = newMasterKey();
const now = Date.now();
const claims = { uid: 1001, gid: 1001, user: 'alice', issued: now, expires: now + 60_000 };

test('a genuine cookie verifies and carries its claims', () => {
  const key = deriveUserKey(master, 1001);
  const verdict = verifyCookie(key, issueCookie(key, claims), 1001, now);
  assert.deepEqual(verdict, { ok: true, claims });
});

test('every single flipped bit is refused', () => {
  const key = deriveUserKey(master, 1001);
  const bytes = Buffer.from(issueCookie(key, claims), 'base64url');
  for (let bit = 0; bit < bytes.length * 8; bit++) {
    const copy = Buffer.from(bytes);
    copy[bit >> 3] ^= 1 << (bit & 7);
    const verdict = verifyCookie(key, copy.toString('base64url'), 1001, now);
    assert.equal(verdict.ok, false, `bit ${bit}`);
  }
});

test("a cookie for another uid is refused, and a worker's key cannot check another user's cookie", () => {
  const aliceKey = deriveUserKey(master, 1001);
  const bobKey = deriveUserKey(master, 1002);
  assert.notDeepEqual(aliceKey, bobKey);
  const bobCookie = issueCookie(bobKey, { ...claims, uid: 1002, user: 'bob' });
  assert.equal(verifyCookie(aliceKey, bobCookie, 1001, now).ok, false);
  // Even a cookie tagged with alice's key but claiming bob's uid is refused by alice's worker.
  const forged = issueCookie(aliceKey, { ...claims, uid: 1002 });
  const verdict = verifyCookie(aliceKey, forged, 1001, now);
  assert.equal(verdict.ok, false);
  assert.equal(!verdict.ok && verdict.code, 'COOKIE_INVALID');
});

test('an expired cookie gets its own code, so the web process logs in again', () => {
  const key = deriveUserKey(master, 1001);
  const verdict = verifyCookie(key, issueCookie(key, claims), 1001, claims.expires + 1);
  assert.equal(!verdict.ok && verdict.code, 'COOKIE_EXPIRED');
});

test('garbage of every shape is refused without throwing', () => {
  const key = deriveUserKey(master, 1001);
  for (const value of [undefined, null, 42, '', 'x', '!!!!', 'A'.repeat(10_000), {}, []]) {
    assert.equal(verifyCookie(key, value, 1001, now).ok, false);
  }
  assert.equal(peekClaims('not a cookie'), null);
});

test('a different master key (a restarted monitor) invalidates old cookies', () => {
  const cookie = issueCookie(deriveUserKey(master, 1001), claims);
  assert.equal(verifyCookie(deriveUserKey(newMasterKey(), 1001), cookie, 1001, now).ok, false);
});
