// An upload into a folder another user can write to, whose target that user swaps for a symlink
// while the body is on its way: the replaced file must take nothing from the file the link points
// to. Alice uploads into bob's team folder; bob points the name at a file of alice's that he cannot
// reach. Before the commit read the target through an O_PATH | O_NOFOLLOW handle, alice's worker
// copied that file's mode and dead properties into the new file in bob's folder.

import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { xattrList, xattrSet } from '../../native';
import { Daemon, request, sleep, slowPut, startDaemon } from '../support/daemon';
import { TestUsers, createUsers, makeTeamFolder } from '../support/users';

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  makeTeamFolder(users);
  daemon = await startDaemon({ layout: 'tilde' });
});
after(async () => {
  await daemon?.stop();
  users.remove();
});

test('a symlink swapped in during an upload lends it nothing of the file it points to', async () => {
  const { alice, bob } = users;
  // Alice's file, in a folder bob cannot enter: readable by others (0604) and with a dead property.
  const privateDir = join(alice.home, 'private');
  mkdirSync(privateDir);
  chownSync(privateDir, alice.uid, alice.gid);
  chmodSync(privateDir, 0o700);
  assert.equal(
    (
      await request(daemon, `/~${alice.name}/private/secret.txt`, {
        method: 'PUT',
        body: 'mine',
        user: alice,
      })
    ).status,
    201,
  );
  const secret = join(privateDir, 'secret.txt');
  xattrSet(secret, 'user.dav:{urn:test}secret', Buffer.from('<x>not for bob</x>'));
  chmodSync(secret, 0o604);

  const target = join(bob.home, 'team', 'doc.txt');
  const url = `/~${bob.name}/team/doc.txt`;
  assert.equal((await request(daemon, url, { method: 'PUT', body: 'v1', user: alice })).status, 201);
  const upload = slowPut(daemon, url, alice, 4);
  await sleep(1500);
  // Bob (who owns the folder) replaces the name with a link to alice's file.
  unlinkSync(target);
  symlinkSync(secret, target);
  lchownSync(target, bob.uid, bob.gid);
  const status = await upload;
  assert.ok(status === 201 || status === 204, `status ${status}`);

  const replaced = lstatSync(target);
  assert.equal(replaced.isFile(), true, 'the link itself is replaced');
  assert.equal(replaced.uid, alice.uid);
  assert.equal(readFileSync(target, 'utf8'), 'xxxx');
  assert.deepEqual(
    xattrList(target).filter((name) => name.startsWith('user.')),
    [],
    "the new file carries the dead properties of alice's private file",
  );
  assert.notEqual(replaced.mode & 0o777, 0o604, "the new file took the mode of alice's private file");
  assert.equal(readFileSync(secret, 'utf8'), 'mine');
  assert.deepEqual(xattrList(secret), ['user.dav:{urn:test}secret']);
});
