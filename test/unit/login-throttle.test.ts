// The login back-off: counted on arrival, keyed by (account, source), account and source, and
// known sources pass. Times are given explicitly, so each figure of README "Login back-off" is checked.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, LoginThrottle, ThrottlePolicy } from '../../helper/login-throttle';
import { inCidr, parseCidr, sourceKey, type Cidr } from '../../common/source-address';

const POLICY: ThrottlePolicy = {
  freeAttempts: 5,
  pairMaxWaitMs: 15 * 60_000,
  accountMaxWaitMs: 2 * 60_000,
  sourceGuessesPerMinute: 10,
  rememberSourcesMs: 30 * 24 * 3600_000,
};
const T0 = 1_000_000_000;

function admittedAt(throttle: LoginThrottle, account: string, source: string | null, now: number): boolean {
  return throttle.admit(account, source, now).admitted;
}

test('100 guesses arriving at once are let through like 100 in a row: five', () => {
  const throttle = new LoginThrottle(POLICY);
  let admitted = 0;
  for (let i = 0; i < 100; i++) if (admittedAt(throttle, 'alice', '192.0.2.1', T0)) admitted++;
  assert.equal(admitted, 5);
});

test('after five free attempts the waits double: 1 s, 2 s, 4 s ...', () => {
  const throttle = new LoginThrottle(POLICY);
  const times: number[] = [];
  // One attempt every 100 ms for 40 s from one address.
  for (let t = 0; t <= 40_000; t += 100)
    if (admittedAt(throttle, 'alice', '192.0.2.1', T0 + t)) times.push(t);
  assert.deepEqual(times, [0, 0 + 100, 200, 300, 400, 1400, 3400, 7400, 15400, 31400]);
});

test('a neighbour behind the attacked address logs in to another account at once', () => {
  const throttle = new LoginThrottle(POLICY);
  for (let i = 0; i < 100; i++) throttle.admit('alice', '192.0.2.1', T0);
  assert.ok(admittedAt(throttle, 'bob', '192.0.2.1', T0 + 1));
});

test('a distributed attack reaches PAM about ten times in its first minute and tens of times an hour', () => {
  const throttle = new LoginThrottle(POLICY);
  let firstMinute = 0;
  let hour = 0;
  // 50 guesses a second, each from a new address.
  for (let i = 0; i < 50 * 3600; i++) {
    const now = T0 + i * 20;
    if (admittedAt(throttle, 'alice', `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, now)) {
      hour++;
      if (i * 20 < 60_000) firstMinute++;
    }
  }
  assert.ok(firstMinute >= 8 && firstMinute <= 12, `first minute: ${firstMinute}`);
  assert.ok(hour >= 20 && hour <= 60, `hour: ${hour}`);
});

test('the owner at a source it logged in from before passes while the account is under attack', () => {
  const throttle = new LoginThrottle(POLICY);
  const first = throttle.admit('alice', '198.51.100.7', T0);
  assert.ok(first.admitted && !first.known);
  throttle.succeeded('alice', '198.51.100.7', first.known, T0);
  for (let i = 0; i < 5000; i++) throttle.admit('alice', `10.0.${i >> 8}.${i & 255}`, T0 + 1000 + i);
  assert.equal(throttle.admit('alice', '10.9.9.9', T0 + 6100).admitted, false, 'a new address waits');
  const owner = throttle.admit('alice', '198.51.100.7', T0 + 6100);
  assert.deepEqual(owner, { admitted: true, known: true });
});

test('a known source forgets after remember_sources', () => {
  const throttle = new LoginThrottle({ ...POLICY, rememberSourcesMs: 60_000 });
  throttle.succeeded('alice', '198.51.100.7', false, T0);
  assert.equal(throttle.admit('alice', '198.51.100.7', T0 + 30_000).admitted && true, true);
  const later = throttle.admit('alice', '198.51.100.7', T0 + 61_000);
  assert.ok(later.admitted && !later.known);
});

test('one address guessing many accounts gets source_guesses_per_minute, then one every six seconds', () => {
  const throttle = new LoginThrottle(POLICY);
  let admitted = 0;
  for (let i = 0; i < 100; i++) if (admittedAt(throttle, `user${i}`, '192.0.2.1', T0)) admitted++;
  assert.equal(admitted, 10);
  assert.equal(admittedAt(throttle, 'other', '192.0.2.1', T0 + 5000), false);
  assert.equal(admittedAt(throttle, 'other', '192.0.2.1', T0 + 6000), true);
  assert.ok(admittedAt(throttle, 'user1', '192.0.2.2', T0 + 6000), 'another address is not affected');
});

test('an accepted password is no guess: its source token is given back and the pair starts afresh', () => {
  const throttle = new LoginThrottle(POLICY);
  for (let i = 0; i < 9; i++) throttle.admit(`user${i}`, '192.0.2.1', T0);
  const login = throttle.admit('bob', '192.0.2.1', T0);
  assert.ok(login.admitted);
  throttle.succeeded('bob', '192.0.2.1', login.known, T0);
  assert.ok(admittedAt(throttle, 'carol', '192.0.2.1', T0), 'the token came back');
});

test('a known pair backs off too, capped like the account', () => {
  const throttle = new LoginThrottle(POLICY);
  throttle.succeeded('alice', '192.0.2.1', false, T0);
  let last = 0;
  for (let t = 0; t < 3600_000; t += 1000) {
    if (admittedAt(throttle, 'alice', '192.0.2.1', T0 + t)) {
      assert.ok(t - last <= POLICY.accountMaxWaitMs + 1000, `gap ${t - last}`);
      last = t;
    }
  }
});

test('an exempt source (null) has no pair or source limit, only the account one', () => {
  const throttle = new LoginThrottle(POLICY);
  let admitted = 0;
  for (let i = 0; i < 100; i++) if (admittedAt(throttle, `user${i}`, null, T0)) admitted++;
  assert.equal(admitted, 100, 'many accounts through one proxy');
  for (let i = 0; i < 100; i++) throttle.admit('alice', null, T0);
  assert.equal(admittedAt(throttle, 'alice', null, T0), false, 'the account still backs off');
  throttle.succeeded('alice', null, false, T0);
  assert.equal(admittedAt(throttle, 'alice', null, T0), false, 'and an exempt source never becomes known');
});

test('a flood of names does not grow memory without bound nor push out the account under attack', () => {
  const backoff = new Backoff(5);
  for (let i = 0; i < 6; i++) backoff.charge('alice', 60_000, T0);
  for (let i = 0; i < 120_000; i++) {
    backoff.charge(`n${i}`, 60_000, T0 + i);
    if (i % 1000 === 0) backoff.charge('alice', 60_000, T0 + i);
  }
  assert.ok(backoff.size <= 50_000);
  assert.ok(backoff.waitFor('alice', 60_000, T0 + 120_000) > 0);
});

test('sources: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64 (configurable)', () => {
  assert.equal(sourceKey('192.0.2.7', 64), '192.0.2.7');
  assert.equal(sourceKey('::ffff:192.0.2.7', 64), '192.0.2.7');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1', 64), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2:bbbb:cccc:dddd:eeee', 64), '2001:db8:1:2::/64');
  assert.notEqual(sourceKey('2001:db8:1:3::1', 64), sourceKey('2001:db8:1:2::1', 64));
  assert.equal(sourceKey('2001:db8:1:3::1', 48), sourceKey('2001:db8:1:2::1', 48));
  assert.equal(sourceKey('::1', 128), '::1/128');
  assert.equal(sourceKey('not an address', 64), '?not an address');
});

test('exemption lists match networks of either family', () => {
  const cidrs = ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'].map((text) => parseCidr(text) as Cidr);
  assert.ok(inCidr('10.200.3.4', cidrs));
  assert.ok(inCidr('::ffff:10.1.1.1', cidrs));
  assert.ok(inCidr('2001:db8:ffff::1', cidrs));
  assert.ok(inCidr('192.0.2.1', cidrs));
  assert.ok(!inCidr('192.0.2.2', cidrs));
  assert.ok(!inCidr('2001:db9::1', cidrs));
  assert.equal(typeof parseCidr('10.0.0.0/33'), 'string');
  assert.equal(typeof parseCidr('example.org'), 'string');
});

test('an attempt cancelled for overload leaves nothing counted', () => {
  const throttle = new LoginThrottle({
    freeAttempts: 5,
    pairMaxWaitMs: 15 * 60_000,
    accountMaxWaitMs: 120_000,
    sourceGuessesPerMinute: 1,
    rememberSourcesMs: 30 * 86_400_000,
  });
  const now = 1_000_000;
  for (let i = 0; i < 20; i++) {
    const admission = throttle.admit('alice', '10.0.0.1', now);
    assert.deepEqual(admission, { admitted: true, known: false });
    throttle.cancel('alice', '10.0.0.1', false, now);
  }
  // Had the twenty been counted, the pair, the account and the address would all be backing off.
  assert.deepEqual(throttle.admit('alice', '10.0.0.1', now), { admitted: true, known: false });
  assert.equal(throttle.admit('alice', '10.0.0.1', now).admitted, false);
});
