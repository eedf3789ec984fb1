// DESIGN invariant 10 through the real daemon: started the way a shell or a wrapper might start it,
// with extra descriptors open (one on /etc/shadow, one on / — a directory that escapes the web
// process's chroot), no process of privdav keeps them: the monitor closes them first thing, and
// each child holds only what it was handed.

import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Daemon, request, startDaemon } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  daemon = await startDaemon({ redirections: '30</etc/shadow 100</' });
});
after(async () => {
  await daemon?.stop();
  users.remove();
});

function descriptors(pid: number): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/${pid}/fd/${name}`));
    } catch {
      // Closed while we looked.
    }
  }
  return fds;
}

test('started with /etc/shadow and / open, neither the monitor, the web process nor a worker holds them', async () => {
  // A login and a request, so that a worker runs and the web process holds its channel.
  assert.equal((await request(daemon, '/', { method: 'PROPFIND', user: users.alice })).status, 207);
  const { web, workers, spares } = daemon.processes();
  assert.equal(web.length, 1);
  assert.equal(workers.length, 1);
  const processes: [string, number][] = [
    ['monitor', daemon.pid],
    ['web', web[0]!],
    ['worker', workers[0]!],
    ...spares.map((pid): [string, number] => ['spare worker', pid]),
  ];
  for (const [role, pid] of processes) {
    const fds = descriptors(pid);
    const shown = [...fds].map(([fd, target]) => `${fd}:${target}`).join(' ');
    console.log(`# ${role}: ${fds.size} descriptors: ${shown}`);
    assert.ok(!fds.has(30) && !fds.has(100), `${role} holds fd 30 or 100: ${shown}`);
    for (const [fd, target] of fds) {
      assert.notEqual(target, '/etc/shadow', `${role} fd ${fd}`);
      // The only directories anyone holds are none: a directory descriptor would escape a chroot.
      assert.ok(target !== '/' && !target.startsWith('/etc'), `${role} fd ${fd} -> ${target}`);
    }
  }
  const closed = /closed inherited descriptors fds="([\d ]+)"/.exec(daemon.output());
  assert.ok(closed !== null);
  assert.ok(closed[1]!.split(' ').includes('30') && closed[1]!.split(' ').includes('100'));
});
