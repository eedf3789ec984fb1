// Account names beyond the conventional grammar, through the real daemon, real PAM and real users:
// names Debian's NSS accepts either work everywhere — login, and /~name/ in the tilde layout — or
// are refused at login with a log line that says why. Never one and not the other.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Daemon, request, sleep, startDaemon } from '../support/daemon';
import { createNamedUser, type TestUser } from '../support/users';

const suffix = randomBytes(3).toString('hex');
/** Served everywhere: a dot, a directory-style "@", a Samba-style final "$". */
const SERVED = [`john.doe${suffix}`, `ann@corp${suffix}`, `svc_x${suffix}$`];
/** NSS and useradd accept it, privdav's grammar does not ("+"): refused at login. */
const REFUSED = `ann+x${suffix}`;

type NamedUser = TestUser & { remove(): void };
const users: NamedUser[] = [];
let refused: NamedUser;
let daemon: Daemon;

before(async () => {
  for (const name of SERVED) users.push(createNamedUser(name));
  refused = createNamedUser(REFUSED);
  daemon = await startDaemon({ layout: 'tilde' });
});
after(async () => {
  await daemon.stop();
  for (const user of [...users, refused]) user.remove();
});

/** The name as a URL path segment (what a client sends for /~name/). */
function share(user: TestUser, rest = ''): string {
  return `/~${encodeURIComponent(user.name)}/${rest}`;
}

describe('names Debian accepts', () => {
  for (const [index, name] of SERVED.entries()) {
    test(`${name.replace(suffix, '')}: logs in, and /~name/ is the share in the tilde layout`, async () => {
      const user = users[index]!;
      const propfind = await request(daemon, share(user), {
        method: 'PROPFIND',
        user,
        headers: { Depth: '0' },
      });
      assert.equal(propfind.status, 207, propfind.text);
      const put = await request(daemon, share(user, 'hello.txt'), { method: 'PUT', user, body: 'hi\n' });
      assert.equal(put.status, 201);
      assert.equal(statSync(join(user.home, 'hello.txt')).uid, user.uid);
      const get = await request(daemon, share(user, 'hello.txt'), { user });
      assert.equal(get.text, 'hi\n');
    });
  }

  test('another user reaches /~john.doe…/ with their own permissions, like any share', async () => {
    const [john, ann] = users;
    const response = await request(daemon, share(john!), {
      method: 'PROPFIND',
      user: ann!,
      headers: { Depth: '0' },
    });
    assert.equal(response.status, 207);
  });

  test('a name outside the grammar ("+") is refused at login, and the log says why', async () => {
    const response = await request(daemon, '/', {
      method: 'PROPFIND',
      user: refused,
      headers: { Depth: '0' },
    });
    assert.equal(response.status, 401);
    await sleep(100);
    assert.match(daemon.output(), /login refused.*ann\+x.*outside the names privdav serves/);
  });
});
