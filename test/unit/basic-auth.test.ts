// Parsing the Authorization header (RFC 7617): UTF-8, ':' in passwords, and what is refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBasic } from '../../src/http/auth';

const basic = (text: string): string => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;

test('user and password, the password may contain colons and UTF-8', () => {
  assert.deepEqual(parseBasic(basic('alice:pa:ss:wörd')), { user: 'alice', password: 'pa:ss:wörd' });
  assert.deepEqual(parseBasic(`basic   ${Buffer.from('bob:x').toString('base64')}`), {
    user: 'bob',
    password: 'x',
  });
});

test('refused: absent, other schemes, no colon, empty user, invalid UTF-8, NUL, control characters, too long', () => {
  assert.equal(parseBasic(undefined), null);
  assert.equal(parseBasic('Bearer abc'), null);
  assert.equal(parseBasic(basic('alice')), null);
  assert.equal(parseBasic(basic(':password')), null);
  assert.equal(parseBasic(`Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`), null);
  assert.equal(parseBasic(basic('alice:pw\0junk')), null, 'NUL would truncate the password at PAM');
  assert.equal(parseBasic(basic('al\nice:pw')), null);
  assert.equal(parseBasic(basic(`alice:${'x'.repeat(2000)}`)), null);
  assert.equal(parseBasic(basic(`${'a'.repeat(100)}:pw`)), null);
  assert.equal(parseBasic('Basic !!!'), null);
});
