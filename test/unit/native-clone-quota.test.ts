// cloneFile (the copy behind partial updates) and diskQuota (quotactl for RFC 4331) on this machine.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cloneFile, diskQuota } from '../../native';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-clone-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('cloneFile copies exactly the bytes of the source into an empty file (several 16 MiB steps)', async () => {
  const content = randomBytes(40 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(dir, 'source'), content);
  const source = fs.openSync(path.join(dir, 'source'), 'r');
  const target = fs.openSync(path.join(dir, 'target'), 'w');
  try {
    const cloned = await cloneFile(target, source, content.length);
    assert.equal(typeof cloned, 'boolean');
  } finally {
    fs.closeSync(source);
    fs.closeSync(target);
  }
  assert.deepEqual(fs.readFileSync(path.join(dir, 'target')), content);
});

test('cloneFile fails with ENODATA when the source is shorter than said, and refuses bad arguments', async () => {
  fs.writeFileSync(path.join(dir, 'short'), 'abc');
  const source = fs.openSync(path.join(dir, 'short'), 'r');
  const target = fs.openSync(path.join(dir, 'short-target'), 'w');
  try {
    await assert.rejects(cloneFile(target, source, 10), { code: 'ENODATA' });
    await assert.rejects(cloneFile(-1, source, 1), TypeError);
    await assert.rejects(cloneFile(target, source, 1.5), TypeError);
  } finally {
    fs.closeSync(source);
    fs.closeSync(target);
  }
});

test('diskQuota is null where the filesystem keeps no user quotas (this kernel: quotactl answers ESRCH)', () => {
  assert.equal(diskQuota(dir, process.getuid!()), null);
});

test('diskQuota throws for a path that cannot be opened, and refuses a bad uid', () => {
  assert.throws(() => diskQuota(path.join(dir, 'missing'), 0), { code: 'ENOENT' });
  assert.throws(() => diskQuota(dir, -1), TypeError);
  assert.throws(() => diskQuota('a\0b', 0), TypeError);
});
