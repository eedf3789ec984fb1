// Descriptor ownership in the real monitor (root): a web process that stops reading while asking
// for channel after channel makes the monitor's sends fail. The descriptors of a reply belong to
// the channel once send is called — closed by it, never again by the caller, because in a root
// process with PAM threads the number may already be someone else's. strace watches every close.
// strace starts the monitor and stops its threads only at close(2) (seccomp-bpf), not at every
// system call as when attached with -p.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
  // One trace file per thread (-ff): the monitor's own threads are told apart from its children's
  // (the web stand-in and alice's worker, followed too) by /proc/MONITOR/task at the end.
  const traceDir = join(dir, 'trace');
  mkdirSync(traceDir);
  const strace = spawn(
    'strace',
    [
      '-f',
      '-ff',
      '--seccomp-bpf',
      '-qq',
      '-e',
      'trace=close',
      '-e',
      'status=failed',
      '-e',
      'signal=none',
      '-o',
      join(traceDir, 'close'),
      process.execPath,
      join(support, 'run-monitor.js'),
      configPath,
      join(support, 'flooding-web.js'),
      resultFile,
      paramsFile,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  strace.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  strace.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const straceExited = new Promise((resolve) => strace.once('exit', resolve));
  // The monitor is strace's one child.
  let monitorPid = 0;
  for (let i = 0; i < 100 && monitorPid === 0; i++) {
    const children = existsSync(`/proc/${strace.pid}/task/${strace.pid}/children`)
      ? readFileSync(`/proc/${strace.pid}/task/${strace.pid}/children`, 'utf8').trim()
      : '';
    if (children !== '') monitorPid = Number(children.split(' ')[0]);
    else await sleep(50);
  }
  assert.ok(monitorPid > 0, `strace started the monitor\n${output}`);
  let monitorThreads: string[] = [];
  try {
    const deadline = Date.now() + 60_000;
    let results: Record<string, unknown> = {};
    while (Date.now() < deadline) {
      if (existsSync(resultFile)) {
        results = JSON.parse(readFileSync(resultFile, 'utf8'));
        if (results.done || results.error) break;
      }
      assert.ok(alive(monitorPid), `the monitor is alive\n${output}`);
      await sleep(200);
    }
    assert.equal(results.error, undefined, String(results.error));
    assert.equal(results.done, true, `the flood finished\n${output}`);
    assert.equal(results.authOk, true);
    // The monitor works through the requests; past its queue, its sends are refused. Each traced
    // close(2) costs ~170 µs on this VM (ptrace stops at its entry and exit; 1.2 µs untraced):
    // the flood took 85 s to fill the queue on 2026-12-02, ~30 s the day before.
    const refusedBy = Date.now() + 300_000;
    while (!/reply to the web process not sent/.test(output) && Date.now() < refusedBy) await sleep(200);
    assert.match(
      output.replace(/^.*too many channels.*\n/gm, '').slice(-3000),
      /reply to the web process not sent/,
      'the monitor did run out of room to reply',
    );
    assert.ok(alive(monitorPid), 'the monitor keeps running');
    monitorThreads = readdirSync(`/proc/${monitorPid}/task`);
  } finally {
    if (monitorPid > 0 && alive(monitorPid)) process.kill(monitorPid, 'SIGTERM');
    else strace.kill('SIGKILL');
    await straceExited;
  }
  // Node's threads (the threadpool's, where PAM runs, and V8's) live as long as the process.
  assert.ok(monitorThreads.length > 4, `the monitor's threads: ${monitorThreads.join(' ')}`);
  const traced = monitorThreads.filter((tid) => existsSync(join(traceDir, `close.${tid}`)));
  assert.deepEqual(traced, monitorThreads, "every one of the monitor's threads was traced");
  const failedCloses = traced
    .flatMap((tid) => readFileSync(join(traceDir, `close.${tid}`), 'utf8').split('\n'))
    .filter((line) => /close\(\d+\)\s+= -1 EBADF/.test(line));
  assert.deepEqual(failedCloses, [], 'no close() of a descriptor that was already closed');
});

test('strace is there to watch the monitor', () => {
  assert.equal(spawnSync('strace', ['-V']).status, 0);
});
