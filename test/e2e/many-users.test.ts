// Many users on one machine, with the real daemon and 200 real accounts: a burst of first logins
// under a small server.max_workers is served without a single 401 and never with more worker
// processes than the cap (sampled from /proc), and after the web process is killed its logged-in
// users are served again without a PAM call (counted in the monitor's login lines).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';
import { Daemon, Response, request, sleep, startDaemon } from '../support/daemon';
import { TestUser, UserCrowd, createUserCrowd } from '../support/users';

const USERS = 200;
const MAX_WORKERS = 8;

/**
 * A minute on a machine of our own; when other work shares the cores (the load average above their
 * number), proportionally more, up to three minutes: the bound is on privdav, not on its neighbours.
 */
function servedWithinMs(): number {
  const share = Math.max(1, os.loadavg()[0]! / os.availableParallelism());
  return Math.min(180_000, 60_000 * share);
}

/** Worker processes of the daemon now (users' workers and spares alike: both count against the cap). */
function workerCount(daemon: Daemon): number {
  const { workers, spares } = daemon.processes();
  return workers.length + spares.length;
}

/**
 * Each user at an address of their own (127.1.x.y), as users each on their own machine: from one
 * address, 200 accounts that never logged in from it are a guesser's pattern (the address limit).
 */
function addressOf(user: TestUser, crowd: UserCrowd): string {
  const index = crowd.users.indexOf(user);
  return `127.1.${index >> 8}.${(index & 255) + 1}`;
}

/** PROPFIND of the user's own root; a 503 is retried after its Retry-After, as a client would. */
async function firstRequest(
  daemon: Daemon,
  user: TestUser,
  agent: http.Agent,
  from: string,
): Promise<Response[]> {
  const answers: Response[] = [];
  for (;;) {
    const response = await request(daemon, '/', {
      method: 'PROPFIND',
      headers: { Depth: '0' },
      user,
      agent,
      from,
    });
    answers.push(response);
    if (response.status !== 503) return answers;
    await sleep(Number(response.headers['retry-after'] ?? 1) * 1000);
  }
}

/** A PUT whose body is sent in two halves: `finish()` sends the second and resolves to the status. */
function slowUpload(daemon: Daemon, user: TestUser): { started: Promise<void>; finish(): Promise<number> } {
  const auth = Buffer.from(`${user.name}:${user.password}`).toString('base64');
  const req = http.request({
    host: '127.0.0.1',
    port: daemon.port,
    method: 'PUT',
    path: '/in-flight.bin',
    headers: { Authorization: `Basic ${auth}`, 'Content-Length': 2 },
    agent: false,
  });
  const status = new Promise<number>((resolve) => {
    req.on('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    // A connection lost is a failed upload (status 0), reported by the caller's assertion.
    req.on('error', () => resolve(0));
  });
  req.write('a');
  // Once the worker holds the upload open (the web process asked for it before reading the body).
  const started = (async () => {
    for (let tries = 0; tries < 100; tries++) {
      if (daemon.processes().workers.length > 0) return sleep(500);
      await sleep(50);
    }
  })();
  return {
    started,
    finish: () => {
      req.end('b');
      return status;
    },
  };
}

function oomScoreAdj(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8'));
}

function countLines(output: string, pattern: RegExp): number {
  return output.split('\n').filter((line) => pattern.test(line)).length;
}

describe(`${USERS} users, server.max_workers = ${MAX_WORKERS}`, () => {
  let crowd: UserCrowd;
  let daemon: Daemon;

  before(async () => {
    crowd = createUserCrowd(USERS, { fastHashes: true });
    daemon = await startDaemon({
      extra: { server: [`max_workers = ${MAX_WORKERS}`, 'spare_workers = 2'] },
    });
  });

  after(async () => {
    await daemon?.stop();
    crowd?.remove();
  });

  test('under memory pressure spares go first, then workers, the web process, the monitor last', async () => {
    const first = await request(daemon, '/', {
      method: 'PROPFIND',
      headers: { Depth: '0' },
      user: crowd.users[0]!,
    });
    assert.equal(first.status, 207);
    await sleep(500);
    const { web, workers, spares } = daemon.processes();
    assert.ok(workers.length > 0 && spares.length > 0, 'a worker and a spare to look at');
    for (const pid of spares) assert.equal(oomScoreAdj(pid), 1000);
    for (const pid of workers) assert.equal(oomScoreAdj(pid), 800);
    const monitor = oomScoreAdj(daemon.pid);
    // Lowering needs CAP_SYS_RESOURCE (systemd's OOMScoreAdjust= gives the monitor -900 otherwise).
    const canLower = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
    if ((BigInt(`0x${canLower}`) >> 24n) & 1n) {
      assert.equal(monitor, -900);
      assert.equal(oomScoreAdj(web[0]!), -100);
    } else {
      assert.ok(oomScoreAdj(web[0]!) <= 0 && monitor <= oomScoreAdj(web[0]!));
    }
  });

  test('a burst of first logins: no 401, never more workers than the cap, everyone served within a minute', async () => {
    // A user in the middle of an upload before the burst: their worker is busy and must stay.
    const uploader = crowd.users.at(-1)!;
    const upload = slowUpload(daemon, uploader);
    await upload.started;
    let uploadStatus = 0;
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, workerCount(daemon));
    }, 10);
    const agent = new http.Agent({ keepAlive: true, maxSockets: USERS * 2 });
    const started = Date.now();
    const times: number[] = [];
    try {
      const results = await Promise.all(
        crowd.users.map(async (user) => {
          const answers = await firstRequest(daemon, user, agent, addressOf(user, crowd));
          times.push(Date.now() - started);
          return answers;
        }),
      );
      const statuses = results.flat().map((response) => response.status);
      assert.equal(statuses.filter((status) => status === 401).length, 0, 'no correct password refused');
      assert.deepEqual(
        [...new Set(results.map((answers) => answers.at(-1)!.status))],
        [207],
        'every user is finally served',
      );
      const unexpected = statuses.filter((status) => status !== 207 && status !== 503);
      assert.deepEqual(unexpected, [], 'only 207, or 503 with Retry-After while every worker was busy');
    } finally {
      clearInterval(sampler);
      agent.destroy();
      uploadStatus = await upload.finish();
    }
    assert.equal(uploadStatus, 201, 'the upload that was in flight during the burst completed');
    most = Math.max(most, workerCount(daemon));
    assert.ok(most <= MAX_WORKERS, `at most ${MAX_WORKERS} worker processes, sampled ${most}`);
    assert.ok(most >= MAX_WORKERS - 2, `the cap was reached (${most}): the test exercised it`);
    const slowest = Math.max(...times);
    assert.ok(slowest < servedWithinMs(), `the last user was served after ${slowest} ms`);
    assert.ok(/retired to make room for another user/.test(daemon.output()), 'idle workers made room');
  });

  test('after kill -9 of the web process, 50 logged-in users are served again without a PAM call', async () => {
    const users = crowd.users.slice(0, 50);
    const [web] = daemon.processes().web;
    process.kill(web!, 'SIGKILL');
    // The monitor restarts it; wait until a new one answers.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const now = daemon.processes().web;
      if (
        now.length === 1 &&
        now[0] !== web &&
        /web process ready[^\n]*\n(?![\s\S]*web process exited)/.test(daemon.output())
      ) {
        const probe = await request(daemon, '/', { method: 'OPTIONS' }).catch(() => null);
        if (probe !== null) break;
      }
      assert.ok(Date.now() < deadline, 'the web process came back');
      await sleep(100);
    }
    const before = daemon.output();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 100 });
    try {
      const results = await Promise.all(
        users.map((user) => firstRequest(daemon, user, agent, addressOf(user, crowd))),
      );
      assert.deepEqual([...new Set(results.map((answers) => answers.at(-1)!.status))], [207]);
      assert.equal(results.flat().filter((response) => response.status === 401).length, 0);
    } finally {
      agent.destroy();
    }
    const since = daemon.output().slice(before.length);
    assert.equal(countLines(since, /login user=.*checked=pam/), 0, 'no PAM call');
    assert.equal(
      countLines(since, /login user=.*checked=recent/),
      users.length,
      'each user once, from the verifier',
    );
  });
});
