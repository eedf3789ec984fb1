// How the RFC 4331 quota properties are computed from a user's disk quota and the filesystem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spaceFrom } from '../../helper/space';

const filesystem = { availableBytes: 10_000_000, usedBytes: 90_000_000 };

test('without quotas on the filesystem, the filesystem free and used space', () => {
  assert.deepEqual(spaceFrom(filesystem, null), filesystem);
});

test('with a hard limit: what is left below it, and what the quota charges the user', () => {
  const quota = { usedBytes: 300_000, softLimitBytes: 500_000, hardLimitBytes: 1_000_000 };
  assert.deepEqual(spaceFrom(filesystem, quota), { availableBytes: 700_000, usedBytes: 300_000 });
});

test('with only a soft limit, that one; over it, nothing available', () => {
  assert.deepEqual(
    spaceFrom(filesystem, { usedBytes: 200_000, softLimitBytes: 500_000, hardLimitBytes: 0 }),
    {
      availableBytes: 300_000,
      usedBytes: 200_000,
    },
  );
  assert.equal(
    spaceFrom(filesystem, { usedBytes: 900_000, softLimitBytes: 500_000, hardLimitBytes: 0 }).availableBytes,
    0,
  );
});

test('a limit larger than the free space is capped by the filesystem; no limit keeps its free space', () => {
  const big = { usedBytes: 1_000, softLimitBytes: 0, hardLimitBytes: 1e12 };
  assert.equal(spaceFrom(filesystem, big).availableBytes, filesystem.availableBytes);
  assert.deepEqual(spaceFrom(filesystem, { usedBytes: 5_000, softLimitBytes: 0, hardLimitBytes: 0 }), {
    availableBytes: filesystem.availableBytes,
    usedBytes: 5_000,
  });
});
