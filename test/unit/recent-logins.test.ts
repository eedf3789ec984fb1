// The monitor's verifiers of recent logins: only the exact password PAM accepted, for the same uid,
// until that acceptance expires (the shadow-line check is proven end to end by privsep.test.ts's
// locked account, refused at once after `usermod -L`).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecentLogins } from '../../helper/recent-logins';

const NOW = 1_000_000;

test('a remembered login is reused for the same password and uid until it expires', () => {
  const recent = new RecentLogins();
  recent.remember('alice', 1001, 'correct horse', NOW + 60_000);
  assert.equal(recent.check('alice', 1001, 'correct horse', NOW), NOW + 60_000);
  assert.equal(recent.check('alice', 1001, 'correct horse', NOW + 59_999), NOW + 60_000);
  assert.equal(recent.check('alice', 1001, 'correct horse', NOW + 60_000), null, 'expired');
  assert.equal(recent.size, 0, 'an expired one is forgotten');
});

test('another password, another uid or another user is not reused', () => {
  const recent = new RecentLogins();
  recent.remember('alice', 1001, 'correct horse', NOW + 60_000);
  assert.equal(recent.check('alice', 1001, 'correct horsf', NOW), null);
  assert.equal(recent.check('alice', 1001, '', NOW), null);
  assert.equal(recent.check('bob', 1001, 'correct horse', NOW), null);
  assert.equal(recent.check('alice', 1002, 'correct horse', NOW), null, 'a recreated account with a new uid');
});

test('a newer login replaces the older one for the same user', () => {
  const recent = new RecentLogins();
  recent.remember('alice', 1001, 'old', NOW + 60_000);
  recent.remember('alice', 1001, 'new', NOW + 90_000);
  assert.equal(recent.check('alice', 1001, 'old', NOW), null);
  assert.equal(recent.check('alice', 1001, 'new', NOW), NOW + 90_000);
});

test('verifiers are keyed per monitor: another instance knows nothing', () => {
  const first = new RecentLogins();
  first.remember('alice', 1001, 'pw', NOW + 60_000);
  assert.equal(new RecentLogins().check('alice', 1001, 'pw', NOW), null);
});
