// Back-off after failed logins: free attempts, then a doubling wait up to the cap.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoginThrottle } from '../../helper/login-throttle';

test('five failures are free, then the wait doubles up to the cap', () => {
  const throttle = new LoginThrottle(30_000);
  const t0 = 1_000_000;
  for (let i = 0; i < 5; i++) {
    assert.equal(throttle.waitFor('user:bob', t0), 0);
    throttle.recordFailure('user:bob', t0);
  }
  assert.equal(throttle.waitFor('user:bob', t0), 1000);
  throttle.recordFailure('user:bob', t0);
  assert.equal(throttle.waitFor('user:bob', t0), 2000);
  for (let i = 0; i < 20; i++) throttle.recordFailure('user:bob', t0);
  assert.equal(throttle.waitFor('user:bob', t0), 30_000, 'capped');
  assert.equal(throttle.waitFor('user:bob', t0 + 30_000), 0, 'and over after the wait');
  assert.equal(throttle.waitFor('user:alice', t0), 0, 'other keys are unaffected');
});

test('a success clears the record', () => {
  const throttle = new LoginThrottle(60_000);
  for (let i = 0; i < 8; i++) throttle.recordFailure('addr:1', 5);
  assert.ok(throttle.waitFor('addr:1', 5) > 0);
  throttle.recordSuccess('addr:1');
  assert.equal(throttle.waitFor('addr:1', 5), 0);
});

test('a flood of distinct names does not grow memory without bound', () => {
  const throttle = new LoginThrottle(60_000);
  for (let i = 0; i < 120_000; i++) throttle.recordFailure(`user:n${i}`, 1);
  // Still answers, and the most recent names are remembered.
  assert.equal(throttle.waitFor('user:n119999', 1), 0);
  for (let i = 0; i < 5; i++) throttle.recordFailure('user:n119999', 1);
  assert.ok(throttle.waitFor('user:n119999', 1) > 0);
});
