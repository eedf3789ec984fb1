// A change of group membership reaches a running user: after `gpasswd -d alice team`, alice's next
// cookie renewal (within credential_ttl) replaces her worker by one without the group, so she can
// no longer write into the team's directory; an upload already under way finishes.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Daemon, request, sleep, slowPut, startDaemon } from '../support/daemon';
import { TestUsers, createUsers, makeTeamFolder } from '../support/users';

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  makeTeamFolder(users);
  daemon = await startDaemon({ layout: 'tilde', extra: { auth: ['credential_ttl = "10s"'] } });
});
after(async () => {
  await daemon?.stop();
  users.remove();
});

test('after gpasswd -d, the user loses the group within credential_ttl; an upload in flight finishes', async () => {
  const { alice, bob, group } = users;
  const put = (name: string) =>
    request(daemon, `/~${bob.name}/team/${name}`, { method: 'PUT', body: 'x', user: alice });
  assert.equal((await put('before.txt')).status, 201);
  const workerBefore = daemon.processes().workers;
  const inFlight = slowPut(daemon, `/~${bob.name}/team/slow.txt`, alice, 12);
  await sleep(1500);
  execFileSync('gpasswd', ['-d', alice.name, group], { stdio: 'ignore' });
  const removedAt = Date.now();
  let status = 201;
  while (status !== 403) {
    assert.ok(Date.now() - removedAt < 25_000, 'alice can still write into the team directory');
    await sleep(500);
    status = (await put(`after-${Date.now()}.txt`)).status;
    assert.ok([201, 403].includes(status), `${status}`);
  }
  const lostAfter = Date.now() - removedAt;
  console.log(`# group removal effective after ${lostAfter} ms (credential_ttl 10 s)`);
  assert.ok(lostAfter < 15_000);
  assert.equal(await inFlight, 201, 'the upload under way finished on the old worker');
  assert.match(daemon.output(), /groups changed; replacing the worker/);
  assert.notDeepEqual(daemon.processes().workers, workerBefore);
  // And it stays so.
  assert.equal((await put('later.txt')).status, 403);
});
