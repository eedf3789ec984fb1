// The service's lifecycle with the real daemon: SIGTERM lets in-flight requests finish and leaves
// no process behind, SIGHUP applies a changed config (and keeps the running one when the new file
// is broken), idle workers exit and come back on the next request, and how long that cold start takes.

import assert from 'node:assert/strict';
import {
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Daemon, freePort, request, sleep, startDaemonWithConfig } from '../support/daemon';
import {
  ConfigOptions,
  childrenOf,
  configText,
  openFilesUnder,
  processesOfUid,
  running,
  tryConnect,
  writeConfig,
} from '../support/cli';
import { TestUsers, createUsers } from '../support/users';

let users: TestUsers;
/** Every daemon a test started, stopped at the end even when an assertion failed half-way. */
const started: Daemon[] = [];
before(() => {
  users = createUsers();
});
after(async () => {
  await Promise.all(started.map((daemon) => daemon.stop()));
  users.remove();
});

interface ConfiguredDaemon {
  daemon: Daemon;
  /** Rewrites the config file with these overrides (the daemon keeps running); `port` changes server.listen. */
  rewrite(set: ConfigOptions['set'], port?: number): void;
  path: string;
}

async function startConfigured(set: ConfigOptions['set'] = {}): Promise<ConfiguredDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-lifecycle-'));
  const port = await freePort();
  const path = join(dir, 'privdav.toml');
  const stateDir = join(dir, 'state');
  writeConfig(path, configText({ port, stateDir, set }));
  const daemon = await startDaemonWithConfig(path, port, dir);
  started.push(daemon);
  return {
    daemon,
    path,
    rewrite: (next, listen = port) => writeConfig(path, configText({ port: listen, stateDir, set: next })),
  };
}

/** Waits until the daemon's output after offset `from` matches `pattern`; returns that output. */
async function waitForLog(daemon: Daemon, pattern: RegExp, from = 0, ms = 5000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const recent = daemon.output().slice(from);
    if (pattern.test(recent)) return recent;
    assert.ok(Date.now() < deadline, `the log never showed ${pattern}:\n${recent}`);
    await sleep(50);
  }
}

/** Polls until a fresh connection is refused; returns the last outcome seen. */
async function waitUntilRefused(port: number, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let outcome = await tryConnect(port);
  while (outcome !== 'ECONNREFUSED' && Date.now() < deadline) {
    await sleep(50);
    outcome = await tryConnect(port);
  }
  return outcome;
}

function ownedFile(path: string, content: Buffer | string, owner: { uid: number; gid: number }): void {
  writeFileSync(path, content);
  chownSync(path, owner.uid, owner.gid);
}

/** Every process of the daemon is gone: the monitor's recorded children and anything still running as `uid`. */
function assertNothingLeft(monitor: number, children: number[], uid: number): void {
  assert.ok(!running(monitor), 'the monitor has exited');
  for (const pid of children) assert.ok(!running(pid), `child ${pid} of the monitor has exited`);
  assert.deepEqual(childrenOf(monitor), [], 'no child of the monitor pid is left');
  assert.deepEqual(processesOfUid(uid), [], 'no process runs as the user (the worker is gone)');
}

describe('SIGTERM', () => {
  const size = 32 * 1024 * 1024;
  const content = Buffer.alloc(size);
  before(() => {
    for (let offset = 0; offset < size; offset += 4) content.writeUInt32LE(offset, offset);
    ownedFile(join(users.alice.home, 'large.bin'), content, users.alice);
  });

  /** Starts a GET of the 32 MiB file and leaves its body unread (the web process blocks writing it). */
  const startSlowGet = (daemon: Daemon, agent: http.Agent | false): Promise<http.IncomingMessage> => {
    const { alice } = users;
    const headers = {
      Authorization: `Basic ${Buffer.from(`${alice.name}:${alice.password}`).toString('base64')}`,
    };
    return new Promise((resolve, reject) => {
      http
        .get({ port: daemon.port, host: '127.0.0.1', path: '/large.bin', agent, headers }, (response) => {
          response.pause();
          resolve(response);
        })
        .on('error', reject);
    });
  };

  const readAll = async (response: http.IncomingMessage): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    await new Promise((resolve, reject) => response.on('end', resolve).on('error', reject).resume());
    return Buffer.concat(chunks);
  };

  test('a slow GET in flight finishes, new connections are refused, then the monitor exits 0 and nothing is left', async () => {
    const { daemon } = await startConfigured();
    const response = await startSlowGet(daemon, false);
    assert.equal(response.statusCode, 200);
    const { web, workers } = daemon.processes();
    assert.equal(workers.length, 1, 'alice has a worker');

    const signalled = Date.now();
    const stopping = daemon.stop();
    assert.equal(await waitUntilRefused(daemon.port, 3000), 'ECONNREFUSED', 'new connections are refused');
    // The client takes its time; the daemon waits for it (the grace period is 10 s).
    await sleep(1500);
    assert.ok(running(daemon.pid) && running(web[0]!), 'monitor and web process wait for the GET');
    const body = await readAll(response);
    const finished = Date.now();
    assert.equal(body.length, size, 'the whole file arrived');
    assert.ok(body.equals(content));

    assert.equal(await stopping, 0);
    const exited = Date.now();
    process.stdout.write(
      `# SIGTERM: GET finished ${finished - signalled} ms after the signal, monitor exited ${exited - finished} ms later\n`,
    );
    assertNothingLeft(daemon.pid, [...web, ...workers], users.alice.uid);
  });

  test('a keep-alive connection that goes idle after SIGTERM does not hold the shutdown for the grace period', async () => {
    const { daemon } = await startConfigured();
    // Real clients (davfs2, Finder, rclone) keep their connection open after a response.
    const agent = new http.Agent({ keepAlive: true });
    try {
      const response = await startSlowGet(daemon, agent);
      const stopping = daemon.stop();
      await waitUntilRefused(daemon.port, 3000);
      const body = await readAll(response);
      const finished = Date.now();
      assert.equal(body.length, size);
      assert.equal(await stopping, 0);
      const after = Date.now() - finished;
      process.stdout.write(
        `# SIGTERM with a keep-alive client: monitor exited ${after} ms after the last response\n`,
      );
      assert.ok(
        after < 3000,
        `monitor exited ${after} ms after the last request finished (grace period 10 s)`,
      );
    } finally {
      agent.destroy();
    }
  });

  test('a PUT whose body is still streaming completes and is committed; then everything exits', async () => {
    const { bob } = users;
    const { daemon } = await startConfigured();
    const size = 4 * 1024 * 1024;
    const content = Buffer.alloc(size, 'b');
    const auth = `Basic ${Buffer.from(`${bob.name}:${bob.password}`).toString('base64')}`;
    let resolveResponse: (response: http.IncomingMessage) => void = () => undefined;
    const responded = new Promise<http.IncomingMessage>((resolve) => (resolveResponse = resolve));
    const upload = http.request(
      {
        port: daemon.port,
        host: '127.0.0.1',
        method: 'PUT',
        path: '/streamed.bin',
        agent: false,
        headers: { Authorization: auth, 'Content-Length': size },
      },
      resolveResponse,
    );
    try {
      upload.write(content.subarray(0, size / 4));
      // The upload is in flight once the web process holds the temporary file's descriptor.
      const deadline = Date.now() + 5000;
      while (daemon.processes().web.every((pid) => openFilesUnder(pid, bob.home).length === 0)) {
        assert.ok(Date.now() < deadline, `the upload never started:\n${daemon.output()}`);
        await sleep(20);
      }
      const { web, workers } = daemon.processes();
      assert.equal(workers.length, 1);

      const stopping = daemon.stop();
      assert.equal(await waitUntilRefused(daemon.port, 3000), 'ECONNREFUSED', 'new connections are refused');
      assert.ok(running(workers[0]!), "bob's worker is still there to commit the upload");
      upload.end(content.subarray(size / 4));
      const response = await responded;
      response.resume();
      assert.equal(response.statusCode, 201);
      const stored = readFileSync(join(bob.home, 'streamed.bin'));
      assert.equal(stored.length, size);
      assert.ok(stored.equals(content));
      assert.equal(statSync(join(bob.home, 'streamed.bin')).uid, bob.uid);

      assert.equal(await stopping, 0);
      assertNothingLeft(daemon.pid, [...web, ...workers], bob.uid);
      const left = readdirSync(bob.home).sort();
      assert.deepEqual(
        left,
        ['.bash_logout', '.bashrc', '.profile', 'streamed.bin'],
        'no temporary file is left',
      );
    } finally {
      upload.destroy();
    }
  });
});

describe('the monitor dies', () => {
  test('kill -9 of the monitor: the web process and workers exit by themselves and the port is free for a restart', async () => {
    const { alice } = users;
    const { daemon, path } = await startConfigured();
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: alice })).status,
      207,
    );
    const { web, workers } = daemon.processes();
    assert.equal(web.length + workers.length, 2);
    process.kill(daemon.pid, 'SIGKILL');
    const killed = Date.now();
    while ([...web, ...workers].some(running)) {
      assert.ok(Date.now() - killed < 3000, 'children still running 3 s after the monitor died');
      await sleep(50);
    }
    assert.deepEqual(processesOfUid(alice.uid), []);
    // What systemd does next: start the unit again on the same address.
    const again = await startDaemonWithConfig(path, daemon.port);
    started.push(again);
    assert.equal(
      (await request(again, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: alice })).status,
      207,
    );
  });
});

describe('SIGHUP', () => {
  // credential_ttl is short so that a change to who may log in reaches cached logins within the test.
  const base = { auth: ['credential_ttl = "10s"'], limits: [] as string[] };
  let configured: ConfiguredDaemon;
  before(async () => {
    configured = await startConfigured(base);
  });
  after(async () => {
    assert.equal(await configured.daemon.stop(), 0);
  });

  /** SIGHUP, then wait for `pattern` in what the daemon logs from now on. */
  const reload = async (pattern: RegExp): Promise<string> => {
    const from = configured.daemon.output().length;
    process.kill(configured.daemon.pid, 'SIGHUP');
    return waitForLog(configured.daemon, pattern, from);
  };
  // The monitor logs "configuration reloaded from=FILE", the web process (which holds the limits) its own line.
  const applied =
    /monitor\[\d+\]: configuration reloaded[^]*web\[\d+\]: configuration reloaded|web\[\d+\]: configuration reloaded[^]*monitor\[\d+\]: configuration reloaded/;

  test('a new max_upload_bytes applies to the next PUT, and a new deny_users to the next login', async () => {
    const { daemon } = configured;
    const { alice, bob } = users;
    const big = Buffer.alloc(2000, 'x');
    assert.equal(
      (await request(daemon, '/upload.bin', { method: 'PUT', body: big, user: alice })).status,
      201,
    );
    configured.rewrite({
      auth: [...base.auth, `deny_users = ["${bob.name}"]`],
      limits: ['max_upload_bytes = 1000'],
    });
    await reload(applied);
    const over = await request(daemon, '/upload.bin', { method: 'PUT', body: big, user: alice });
    assert.equal(over.status, 413, 'a PUT over the new limit is refused');
    assert.equal(
      (await request(daemon, '/upload.bin', { method: 'PUT', body: 'small', user: alice })).status,
      204,
    );
    // Bob has not logged in since the daemon started, so nothing is cached: his login meets the new list.
    const denied = await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: bob });
    assert.equal(denied.status, 401);
    assert.match(daemon.output(), new RegExp(`login refused user=${bob.name} .*why="listed in deny_users"`));
  });

  test('a reload with a broken file keeps the running config and logs the key and line', async () => {
    const { daemon } = configured;
    const { alice, bob } = users;
    // Broken in one key; were the rest applied anyway, bob would be allowed again and the limit gone.
    configured.rewrite({ ...base, limits: ['max_upload_bytes = "lots"'] });
    const logged = await reload(/reload failed; keeping the running configuration/);
    assert.match(
      logged,
      /reload failed; keeping the running configuration error=.*privdav\.toml:\d+: limits\.max_upload_bytes: /,
    );
    assert.equal(
      (await request(daemon, '/upload.bin', { method: 'PUT', body: Buffer.alloc(2000), user: alice })).status,
      413,
    );
    assert.equal(
      (await request(daemon, '/', { method: 'PROPFIND', headers: { Depth: '0' }, user: bob, agent: false }))
        .status,
      401,
    );
    assert.equal((await request(daemon, '/upload.bin', { user: alice })).status, 200, 'and it still serves');
  });

  test('a changed listen address is kept as it was and logged as needing a restart', async () => {
    const { daemon } = configured;
    const otherPort = await freePort();
    configured.rewrite({ ...base, limits: ['max_upload_bytes = 1000'] }, otherPort);
    const logged = await reload(applied);
    assert.match(logged, /restart.*server\.listen/);
    assert.equal(await tryConnect(otherPort), 'ECONNREFUSED');
    assert.equal((await request(daemon, '/upload.bin', { user: users.alice, agent: false })).status, 200);
  });

  test('a user denied while logged in loses access within credential_ttl', async () => {
    const { daemon } = configured;
    const { alice } = users;
    assert.equal((await request(daemon, '/upload.bin', { user: alice })).status, 200);
    configured.rewrite({ auth: [...base.auth, `deny_users = ["${alice.name}"]`] });
    const reloaded = Date.now();
    await reload(applied);
    let status = 0;
    while (Date.now() - reloaded < 12_000) {
      status = (await request(daemon, '/upload.bin', { user: alice, agent: false })).status;
      if (status === 401) break;
      await sleep(250);
    }
    process.stdout.write(
      `# a denied user with a cached login was refused ${Date.now() - reloaded} ms after the reload (credential_ttl 10s)\n`,
    );
    assert.equal(status, 401, 'refused once her cached login expired');
  });
});

describe('SIGHUP applies every key the config file does not mark [restart]', () => {
  let configured: ConfiguredDaemon;
  before(async () => {
    configured = await startConfigured();
  });
  after(async () => {
    assert.equal(await configured.daemon.stop(), 0);
  });

  const reload = async (set: ConfigOptions['set']): Promise<void> => {
    const from = configured.daemon.output().length;
    configured.rewrite(set);
    process.kill(configured.daemon.pid, 'SIGHUP');
    await waitForLog(configured.daemon, /web\[\d+\]: configuration reloaded/, from);
  };

  test('auth.realm: the next challenge names the new realm', async () => {
    const { daemon } = configured;
    assert.match(String((await request(daemon, '/')).headers['www-authenticate']), /realm="privdav"/);
    await reload({ auth: ['realm = "Team files"'] });
    assert.match(String((await request(daemon, '/')).headers['www-authenticate']), /realm="Team files"/);
  });

  test('limits.max_header_bytes is marked [restart]: a reload logs that and keeps the running limit', async () => {
    // Node fixes a server's header limit when it is made, so this key waits for a restart.
    const { daemon } = configured;
    const headers = { 'X-Padding': 'p'.repeat(4000) };
    assert.notEqual((await request(daemon, '/', { headers, agent: false })).status, 431);
    const from = daemon.output().length;
    await reload({ limits: ['max_header_bytes = "2KiB"'] });
    assert.match(daemon.output().slice(from), /need a restart keys=limits\.max_header_bytes/);
    assert.notEqual((await request(daemon, '/', { headers, agent: false })).status, 431);
  });

  test('shares.subdir: a user whose worker is already running is served from the new subdir', async () => {
    const { daemon } = configured;
    const { alice } = users;
    mkdirSync(join(alice.home, 'WebDAV'));
    chownSync(join(alice.home, 'WebDAV'), alice.uid, alice.gid);
    ownedFile(join(alice.home, 'WebDAV', 'inside.txt'), 'inside\n', alice);
    ownedFile(join(alice.home, 'outside.txt'), 'outside\n', alice);
    assert.equal((await request(daemon, '/outside.txt', { user: alice })).status, 200);
    await reload({ shares: ['layout = "home"', 'subdir = "WebDAV"'] });
    const inside = await request(daemon, '/inside.txt', { user: alice });
    assert.equal(inside.status, 200, 'the share is now ~/WebDAV');
    assert.equal(
      (await request(daemon, '/outside.txt', { user: alice })).status,
      404,
      'the rest of the home is no longer shared',
    );
  });
});

describe('idle workers', () => {
  let configured: ConfiguredDaemon;
  before(async () => {
    configured = await startConfigured({ server: ['worker_idle_timeout = "1s"'] });
    ownedFile(join(users.alice.home, 'small.txt'), 'small\n', users.alice);
  });
  after(async () => {
    assert.equal(await configured.daemon.stop(), 0);
  });

  const aliceWorker = (): number | undefined =>
    configured.daemon.processes().workers.find((pid) => processesOfUid(users.alice.uid).includes(pid));

  const waitForWorkerExit = async (pid: number): Promise<number> => {
    const start = Date.now();
    while (running(pid)) {
      assert.ok(Date.now() - start < 5000, `worker ${pid} still running 5 s after its last request`);
      await sleep(50);
    }
    return Date.now() - start;
  };

  test('the worker exits after worker_idle_timeout; the next request starts a new one and succeeds', async () => {
    const { daemon } = configured;
    assert.equal((await request(daemon, '/small.txt', { user: users.alice })).status, 200);
    const first = aliceWorker();
    assert.ok(first !== undefined, 'a worker runs for alice');
    const lastRequest = Date.now();
    await waitForWorkerExit(first);
    const idle = Date.now() - lastRequest;
    assert.ok(idle >= 900, `worker left after ${idle} ms, before its 1 s idle timeout`);
    await waitForLog(daemon, /worker exited user=pdalice\w+ code=0/);
    const get = await request(daemon, '/small.txt', { user: users.alice });
    assert.equal(get.status, 200);
    assert.equal(get.text, 'small\n');
    const second = aliceWorker();
    assert.ok(second !== undefined && second !== first, `a new worker (${second}) replaced ${first}`);
  });

  test('cold start (credentials cached, worker not running) takes under 1 s', async () => {
    const { daemon } = configured;
    const agent = new http.Agent({ keepAlive: true });
    const samples: number[] = [];
    for (let round = 0; round < 3; round++) {
      assert.equal((await request(daemon, '/small.txt', { user: users.alice, agent })).status, 200);
      await waitForWorkerExit(aliceWorker()!);
      const start = process.hrtime.bigint();
      const get = await request(daemon, '/small.txt', { user: users.alice, agent });
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
      assert.equal(get.status, 200);
    }
    const warmStart = process.hrtime.bigint();
    assert.equal((await request(daemon, '/small.txt', { user: users.alice, agent })).status, 200);
    const warm = Number(process.hrtime.bigint() - warmStart) / 1e6;
    agent.destroy();
    samples.sort((a, b) => a - b);
    process.stdout.write(
      `# cold start GET: ${samples.map((ms) => ms.toFixed(1)).join(' / ')} ms (median ${samples[1]!.toFixed(1)}), warm ${warm.toFixed(1)} ms\n`,
    );
    assert.ok(samples[2]! < 1000, `slowest cold start ${samples[2]!.toFixed(0)} ms`);
  });

  test('an upload slower than worker_idle_timeout keeps its worker and is committed', async () => {
    const { daemon } = configured;
    const auth = `Basic ${Buffer.from(`${users.alice.name}:${users.alice.password}`).toString('base64')}`;
    const parts = 5;
    const part = Buffer.alloc(1024, 's');
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const upload = http.request(
        {
          port: daemon.port,
          host: '127.0.0.1',
          method: 'PUT',
          path: '/slow.bin',
          agent: false,
          headers: { Authorization: auth, 'Content-Length': parts * part.length },
        },
        resolve,
      );
      upload.on('error', reject);
      let sent = 0;
      const next = (): void => {
        upload.write(part);
        if (++sent === parts) upload.end();
        else setTimeout(next, 600);
      };
      next();
    });
    response.resume();
    assert.equal(response.statusCode, 201, '2.4 s of upload with a 1 s idle timeout');
    assert.equal(statSync(join(users.alice.home, 'slow.bin')).size, parts * part.length);
  });
});
