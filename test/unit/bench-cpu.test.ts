// The bench's CPU figures: /proc/PID/stat parsing (command names with spaces and parentheses) and
// the process-tree meter, which must count processes that exit during the window.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { type CpuSpan, ProcessCpuMeter } from '../../bench/process-cpu';
import { clockTicksPerSecond, parseProcStat, readProcStat } from '../../bench/proc-stat';

// Fields 3.. of a real line (state S, ppid 1, ... utime 1200, stime 340, cutime 56, cstime 7, ... starttime 98765).
const tail =
  'S 1 4242 4242 0 -1 4194560 5000 0 12 0 1200 340 56 7 20 0 11 0 98765 1100000000 12000 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0';

test('a stat line is read from after the last parenthesis, whatever the command name holds', () => {
  for (const name of ['node', 'a b', 'x) S 99 (y', ') (', 'MainThread ))']) {
    const stat = parseProcStat(`4242 (${name}) ${tail}\n`);
    assert.deepEqual(stat, {
      command: name,
      state: 'S',
      ppid: 1,
      utime: 1200,
      stime: 340,
      cutime: 56,
      cstime: 7,
      startTime: 98765,
    });
  }
});

test('a truncated or garbled stat line is refused, not read as zeros', () => {
  assert.equal(parseProcStat(''), null);
  assert.equal(parseProcStat('4242 node S 1 2 3'), null);
  assert.equal(parseProcStat(`4242 (node) ${tail.split(' ').slice(0, 15).join(' ')}`), null);
  assert.equal(parseProcStat(`4242 (node) ${tail.replace('1200', 'x')}`), null);
});

/** Spins for `ms` of wall time; returns the CPU seconds this process used meanwhile. */
function spin(ms: number): number {
  const before = process.cpuUsage();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

test("this process's own utime + stime grow with the CPU it uses, as process.cpuUsage says", () => {
  const ticks = clockTicksPerSecond();
  const before = readProcStat('self');
  assert.ok(before !== null);
  assert.equal(before.ppid, process.ppid);
  const used = spin(300);
  const after = readProcStat('self');
  assert.ok(after !== null);
  const counted = (after.utime + after.stime - before.utime - before.stime) / ticks;
  // Clock ticks are 10 ms; the threads other than the main one add a little.
  assert.ok(Math.abs(counted - used) < 0.1, `stat counted ${counted} s, cpuUsage ${used} s`);
});

const burner =
  'const u=Date.now()+300;while(Date.now()<u);const c=process.cpuUsage();console.log((c.user+c.system)/1e6)';

test('a child that exited and was waited for is in cutime + cstime', () => {
  const ticks = clockTicksPerSecond();
  const before = readProcStat('self');
  const child = spawnSync(process.execPath, ['-e', burner], { encoding: 'utf8' });
  const after = readProcStat('self');
  assert.ok(before !== null && after !== null);
  const childSeconds = Number(child.stdout.trim());
  const counted = (after.cutime + after.cstime - before.cutime - before.cstime) / ticks;
  assert.ok(childSeconds > 0.05, `the child used ${childSeconds} s`);
  assert.ok(
    counted >= childSeconds - 0.05,
    `cutime + cstime grew by ${counted} s, the child used ${childSeconds} s`,
  );
});

/**
 * Meters `sh -c script` as a tree from its start until it prints a line (the script's child has
 * exited by then), then a moment more for sh to reap the child and exec `sleep 30`, its last step.
 */
async function meterShell(
  script: string,
  roleOf: ConstructorParameters<typeof ProcessCpuMeter>[1],
): Promise<{ span: CpuSpan; output: string }> {
  const root = spawn('sh', ['-c', `${script}; exec sleep 30`], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    let output = '';
    root.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const meter = new ProcessCpuMeter(() => root.pid ?? null, roleOf);
    meter.begin();
    while (!output.includes('\n')) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    meter.end();
    const span = meter.result();
    assert.ok(span !== null);
    return { span, output };
  } finally {
    root.kill('SIGKILL');
  }
}

test('the meter counts a process of the tree that exits within the window, through its parent', async () => {
  // sh waits for node (so its cutime takes node's times), then stays alive as the tree's root.
  const { span, output } = await meterShell(`${JSON.stringify(process.execPath)} -e '${burner}'`, (facts) =>
    facts.isRoot ? 'root' : facts.command.includes('sleep') ? 'root' : 'burner',
  );
  const burnerMicros = Number(output.trim()) * 1e6;
  assert.ok(
    span.serverMicros >= burnerMicros - 50_000,
    `the tree used ${span.serverMicros} µs, the exited child alone ${burnerMicros} µs`,
  );
  // Sampled every 250 ms: the child was seen alive at least at the start.
  assert.ok((span.byRoleMicros.burner ?? 0) <= span.serverMicros + 10_000);
  assert.ok(span.clientMicros >= 0 && span.machineBusyMicros >= 0 && span.machineCapacityMicros > 0);
  assert.ok(span.serverSystemMicros >= 0 && span.serverSystemMicros <= span.serverMicros);
});

test("the meter reads the machine's context switches: a window in which a child sleeps 300 times holds at least 300", async () => {
  const root = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const meter = new ProcessCpuMeter(
      () => root.pid ?? null,
      () => 'root',
    );
    meter.begin();
    // Each 1 ms wait puts the child's thread to sleep and wakes it again: a switch away and back.
    spawnSync(process.execPath, [
      '-e',
      'const a=new Int32Array(new SharedArrayBuffer(4));for(let i=0;i<300;i++)Atomics.wait(a,0,0,1)',
    ]);
    meter.end();
    const span = meter.result();
    assert.ok(span !== null);
    assert.ok(span.machineContextSwitches >= 300, `${span.machineContextSwitches} switches`);
  } finally {
    root.kill('SIGKILL');
  }
});

test("the meter tells the kernel's share: a child made of system calls is counted as kernel time", async () => {
  // dd with 1-byte blocks: almost all of its time is in read(2) and write(2).
  const { span } = await meterShell(
    'dd if=/dev/zero of=/dev/null bs=1 count=400000 2>/dev/null; echo done',
    () => 'root',
  );
  assert.ok(span.serverMicros >= 50_000, `the tree used ${span.serverMicros} µs`);
  assert.ok(
    span.serverSystemMicros >= span.serverMicros / 2,
    `kernel ${span.serverSystemMicros} of ${span.serverMicros} µs`,
  );
  // By role: never more kernel time than time in all.
  for (const [role, micros] of Object.entries(span.byRoleSystemMicros))
    assert.ok(micros >= 0 && micros <= (span.byRoleMicros[role] ?? 0), `${role}: ${micros} µs in the kernel`);
});

test('a window over a tree that restarted (another root) gives no figure', () => {
  let pid: number | null = process.pid;
  const meter = new ProcessCpuMeter(
    () => pid,
    () => 'root',
  );
  meter.begin();
  pid = process.ppid;
  meter.end();
  assert.equal(meter.result(), null);
});
