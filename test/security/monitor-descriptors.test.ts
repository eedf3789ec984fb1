// Descriptor ownership in the real monitor (root): a web process that stops reading while asking
// for channel after channel makes the monitor's sends fail. The descriptors of a reply belong to
// the channel once send is called — closed by it, never again by the caller, because in a root
// process with PAM threads the number may already be someone else's. strace watches every close.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { alive, freePort, sleep } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

/** More CONNECT replies than the monitor queues for one web process (4096 messages). */
const CONNECTS = 4600;

let users: TestUsers;
let dir: string;

before(() => {
  users = createUsers();
  dir = mkdtempSync(join(tmpdir(), 'privdav-descriptors-'));
});
after(() => {
  users.remove();
  rmSync(dir, { recursive: true, force: true });
});

test('the monitor never closes a reply descriptor twice when its sends to the web process fail', async () => {
  const port = await freePort();
  const configPath = join(dir, 'privdav.toml');
  writeFileSync(
    configPath,
    `[server]\nlisten = ["127.0.0.1:${port}"]\nstate_dir = "${join(dir, 'state')}"\n` +
      `[auth]\nmin_uid = ${users.alice.uid}\n[log]\nlevel = "info"\n`,
  );
  const resultFile = join(dir, 'results.json');
  const paramsFile = join(dir, 'params.json');
  writeFileSync(paramsFile, JSON.stringify({ alice: users.alice, connects: CONNECTS }));
  const support = join(__dirname, '..', 'support');
  const monitor = spawn(
    process.execPath,
    [join(support, 'run-monitor.js'), configPath, join(support, 'flooding-web.js'), resultFile, paramsFile],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  monitor.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  monitor.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // Only the monitor's own threads (-f without following children: they are other processes).
  const traceFile = join(dir, 'close.trace');
  const strace = spawn(
    'strace',
    ['-f', '-qq', '-e', 'trace=close', '-e', 'status=failed', '-o', traceFile, '-p', String(monitor.pid)],
    {
      stdio: 'ignore',
    },
  );
  try {
    const deadline = Date.now() + 60_000;
    let results: Record<string, unknown> = {};
    while (Date.now() < deadline) {
      if (existsSync(resultFile)) {
        results = JSON.parse(readFileSync(resultFile, 'utf8'));
        if (results.done || results.error) break;
      }
      assert.ok(alive(monitor.pid!), `the monitor is alive\n${output}`);
      await sleep(200);
    }
    assert.equal(results.error, undefined, String(results.error));
    assert.equal(results.done, true, `the flood finished\n${output}`);
    assert.equal(results.authOk, true);
    // The monitor works through the requests; past its queue, its sends are refused. Under strace
    // (every syscall of every monitor thread stopped and reported) that takes ~30 s here.
    const refusedBy = Date.now() + 90_000;
    while (!/reply to the web process not sent/.test(output) && Date.now() < refusedBy) await sleep(200);
    assert.match(
      output.replace(/^.*too many channels.*\n/gm, '').slice(-3000),
      /reply to the web process not sent/,
      'the monitor did run out of room to reply',
    );
    assert.ok(alive(monitor.pid!), 'the monitor keeps running');
  } finally {
    strace.kill('SIGINT');
    await new Promise((resolve) => strace.once('exit', resolve));
    monitor.kill('SIGTERM');
    await new Promise((resolve) => monitor.once('exit', resolve));
  }
  const failedCloses = readFileSync(traceFile, 'utf8')
    .split('\n')
    .filter((line) => /close\(\d+\)\s+= -1 EBADF/.test(line));
  assert.deepEqual(failedCloses, [], 'no close() of a descriptor that was already closed');
});

test('strace is there to watch the monitor', () => {
  assert.equal(spawnSync('strace', ['-V']).status, 0);
});
