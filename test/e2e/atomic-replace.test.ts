// COPY and MOVE with Overwrite: T replace a collection atomically: the user's worker killed midway
// leaves the old destination or the new one, never a mix, and the hidden leftover is never listed
// and is removed at the next replace in that directory.

import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Daemon, request, sleep, startDaemon } from '../support/daemon';
import { TestUser, TestUsers, createUsers } from '../support/users';

const BIG = 50_000;
const TEMPORARY = /^\.privdav-(?:old|new)-[0-9a-f]{16}$/;

let users: TestUsers;
let alice: TestUser;
let daemon: Daemon;

/** A collection of alice's with `count` empty files named `${stem}-<i>` (made as root, quickly). */
function collection(name: string, stem: string, count: number): void {
  const dir = join(alice.home, name);
  mkdirSync(dir, 0o755);
  for (let i = 0; i < count; i++) writeFileSync(join(dir, `${stem}-${i}`), '');
  chownSync(dir, alice.uid, alice.gid);
}

before(async () => {
  users = createUsers();
  alice = users.alice;
  collection('big-destination', 'old', BIG);
  collection('small-source', 'new', 1);
  collection('big-source', 'new', BIG);
  collection('small-destination', 'old', 1);
  daemon = await startDaemon();
});
after(async () => {
  await daemon.stop();
  users.remove();
});

function entries(name: string): string[] {
  try {
    return readdirSync(join(alice.home, name));
  } catch {
    return [];
  }
}

function leftovers(): string[] {
  return entries('.').filter((name) => TEMPORARY.test(name));
}

/** The pid of alice's worker (she has one after any request of hers). */
function alicesWorker(): number {
  const pid = daemon.processes().workers.find((worker) => {
    const status = readFileSync(`/proc/${worker}/status`, 'utf8');
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === alice.uid;
  });
  assert.ok(pid !== undefined, 'alice has a worker');
  return pid;
}

/**
 * Sends `method` from `source` to `destination` with Overwrite: T and kills alice's worker with
 * SIGKILL as soon as `midway` says the work on the disk is under way. Returns the reply's status
 * (or the connection's failure) and whether the kill happened before the reply.
 */
async function killMidway(
  method: 'MOVE' | 'COPY',
  source: string,
  destination: string,
  midway: () => boolean,
): Promise<{ outcome: string; killed: boolean }> {
  await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: alice });
  const worker = alicesWorker();
  let done = false;
  const reply = request(daemon, '/' + source, {
    method,
    headers: { Destination: '/' + destination, Overwrite: 'T' },
    user: alice,
  }).then(
    (response) => String(response.status),
    (error: Error) => error.message,
  );
  void reply.then(() => (done = true));
  let killed = false;
  const deadline = Date.now() + 20_000;
  while (!done && Date.now() < deadline) {
    if (midway()) {
      process.kill(worker, 'SIGKILL');
      killed = true;
      break;
    }
    await sleep(5);
  }
  return { outcome: await reply, killed };
}

/** Old and new are told apart by their members' names; partly old is what must never be. */
function assertWhole(name: string, oldCount: number, newCount: number): 'old' | 'new' {
  const members = entries(name);
  const old = members.filter((member) => member.startsWith('old-')).length;
  const fresh = members.filter((member) => member.startsWith('new-')).length;
  if (old === oldCount && fresh === 0) return 'old';
  if (fresh === newCount && old === 0) return 'new';
  assert.fail(
    `${name} is neither old nor new: ${old} of ${oldCount} old and ${fresh} of ${newCount} new members`,
  );
}

test('a MOVE onto a 50,000-entry collection killed midway leaves it wholly old or wholly new', async () => {
  const deleting = (): boolean =>
    [join('big-destination'), ...leftovers()].some((name) => {
      const count = entries(name).filter((member) => member.startsWith('old-')).length;
      return count > 0 && count < BIG;
    });
  const { outcome, killed } = await killMidway('MOVE', 'small-source', 'big-destination', deleting);
  assert.ok(killed, `the worker was killed while the old members were removed (reply: ${outcome})`);
  assert.equal(assertWhole('big-destination', BIG, 1), 'new');
  assert.ok(leftovers().length > 0, 'the old collection was left aside, partly removed');
});

test('a COPY of a 50,000-entry collection killed midway leaves the destination wholly old', async () => {
  const copying = (): boolean =>
    ['small-destination', ...leftovers()].some((name) => entries(name).some((m) => m.startsWith('new-')));
  const { outcome, killed } = await killMidway('COPY', 'big-source', 'small-destination', copying);
  assert.ok(killed, `the worker was killed while the copy was made (reply: ${outcome})`);
  assert.equal(assertWhole('small-destination', 1, BIG), 'old');
});

test('leftovers are never listed or reachable, and the next replace in the directory removes them', async () => {
  const left = leftovers();
  assert.ok(left.length >= 1, 'a crash left something aside');
  const listing = await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '1' }, user: alice });
  assert.equal(listing.status, 207);
  assert.ok(listing.text.includes('big-destination'));
  assert.doesNotMatch(listing.text, /privdav-(old|new)/);
  const html = await request(daemon, '/', { user: alice });
  assert.equal(html.status, 200);
  assert.doesNotMatch(html.text, /privdav-(old|new)/);
  assert.equal((await request(daemon, `/${left[0]}/`, { user: alice })).status, 404);
  const reserved = '/.privdav-new-0123456789abcdef';
  assert.equal((await request(daemon, reserved, { method: 'MKCOL', user: alice })).status, 403);
  const moveInto = { Destination: reserved, Overwrite: 'T' };
  assert.equal(
    (await request(daemon, '/small-destination', { method: 'COPY', headers: moveInto, user: alice })).status,
    403,
  );

  assert.equal((await request(daemon, '/again', { method: 'MKCOL', user: alice })).status, 201);
  const replace = { Destination: '/big-destination', Overwrite: 'T' };
  assert.equal(
    (await request(daemon, '/again', { method: 'MOVE', headers: replace, user: alice })).status,
    204,
  );
  assert.deepEqual(leftovers(), []);
  assert.deepEqual(entries('big-destination'), []);
  assert.deepEqual(entries('small-destination'), ['old-0']);
});
