// The addon's extended-attribute calls: a round trip, and errors shaped like node:fs's.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { xattrGet, xattrList, xattrRemove, xattrSet } from '../../native/index';

const dir = mkdtempSync(join(tmpdir(), 'privdav-xattr-'));
const file = join(dir, 'file.txt');
writeFileSync(file, 'x');
after(() => rmSync(dir, { recursive: true, force: true }));

test('set, list, get and remove a user attribute, binary values intact', () => {
  const value = Buffer.from([0, 1, 2, 255, 0x3c]);
  xattrSet(file, 'user.dav:{urn:x}p', value);
  assert.ok(xattrList(file).includes('user.dav:{urn:x}p'));
  assert.deepEqual(xattrGet(file, 'user.dav:{urn:x}p'), value);
  xattrRemove(file, 'user.dav:{urn:x}p');
  assert.ok(!xattrList(file).includes('user.dav:{urn:x}p'));
});

test('a Buffer path reaches a name that is not UTF-8; a NUL in it or an empty one is a TypeError', () => {
  const latin1 = Buffer.concat([Buffer.from(dir + '/caf'), Buffer.of(0xe9)]);
  writeFileSync(latin1, 'x');
  xattrSet(latin1, 'user.dav:{urn:x}p', Buffer.from('v'));
  assert.deepEqual(xattrList(latin1), ['user.dav:{urn:x}p']);
  assert.deepEqual(xattrGet(latin1, 'user.dav:{urn:x}p'), Buffer.from('v'));
  assert.throws(() => xattrList(dir + '/caf\uFFFD'), { code: 'ENOENT' }, 'the string form is another name');
  xattrRemove(latin1, 'user.dav:{urn:x}p');
  assert.deepEqual(xattrList(latin1), []);
  assert.throws(() => xattrList(Buffer.concat([latin1, Buffer.of(0), Buffer.from('x')])), TypeError);
  assert.throws(() => xattrList(Buffer.alloc(0)), TypeError);
});

test('a value of the largest size the kernel allows on this filesystem comes back whole', () => {
  const value = Buffer.alloc(3000, 0x61);
  xattrSet(file, 'user.big', value);
  assert.equal(xattrGet(file, 'user.big').length, 3000);
});

test('errors carry the errno name as code: ENODATA, ENOENT', () => {
  assert.throws(() => xattrGet(file, 'user.absent'), { code: 'ENODATA', syscall: 'getxattr' });
  assert.throws(() => xattrRemove(file, 'user.absent'), { code: 'ENODATA' });
  assert.throws(() => xattrList(join(dir, 'missing')), { code: 'ENOENT', syscall: 'listxattr' });
});

test('a NUL in a path or name, an empty name or a non-Buffer value is a TypeError, not a system call', () => {
  assert.throws(() => xattrGet(`${file}\0x`, 'user.a'), TypeError);
  assert.throws(() => xattrSet(file, 'user.a\0b', Buffer.from('v')), TypeError);
  assert.throws(() => xattrGet(file, ''), TypeError);
  assert.throws(() => xattrSet(file, 'user.a', 'v' as unknown as Buffer), TypeError);
});
