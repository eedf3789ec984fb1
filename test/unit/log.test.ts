// The logger every process shares: logfmt and JSON lines with the same keys, no control
// characters from hostile values, a time on each line off the journal, and a stderr that does
// not keep up costs dropped (and counted) lines, never a blocked event loop or growing memory.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';

const LOG_MODULE = join(__dirname, '..', '..', 'common', 'log.js');

/** Runs `body` in a fresh node with the logger loaded as `log`; returns what it wrote to stderr. */
function stderrOf(body: string, env: Record<string, string> = {}): string {
  const script = `const log = require(${JSON.stringify(LOG_MODULE)}); ${body}`;
  const result = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stderr;
}

describe('log lines', () => {
  test('logfmt: a time first, then level role[pid]: message and quoted values; control characters are replaced', () => {
    const out = stderrOf(
      `new log.Logger('web').info('hello', { user: 'bob', path: '/a b', evil: 'x\\ninfo web[1]: forged', empty: '' });`,
    );
    const lines = out.split('\n').filter((line) => line !== '');
    assert.equal(lines.length, 1, 'a newline in a value does not make a second line');
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\dT[\d:.]+Z info web\[\d+\]: hello user=bob path="\/a b" evil="x\?info web\[1\]: forged" empty=""$/,
    );
  });

  test('no time of its own when stderr is the journal (JOURNAL_STREAM names fd 2)', () => {
    const out = stderrOf(
      `const { dev, ino } = require('node:fs').fstatSync(2); process.env.X = ''; ` +
        `require('node:child_process').spawnSync(process.execPath, ['-e', ${JSON.stringify(
          `new (require(${JSON.stringify(LOG_MODULE)}).Logger)('monitor').warn('from the journal')`,
        )}], { stdio: 'inherit', env: { JOURNAL_STREAM: dev + ':' + ino } });`,
    );
    assert.match(out, /^warn monitor\[\d+\]: from the journal\n$/);
  });

  test('json: one object per line with time, level, role, pid, msg and the fields, numbers kept as numbers', () => {
    const out = stderrOf(
      `const l = new log.Logger('worker'); l.info('started', { user: 'amy', count: 3 }); ` +
        `l.access({ status: 201, path: '/x\\u0000y' }, 0);`,
      { PRIVDAV_LOG_FORMAT: 'json' },
    );
    const records = out
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(records.length, 2);
    assert.deepEqual(Object.keys(records[0]!), ['time', 'level', 'role', 'pid', 'msg', 'user', 'count']);
    assert.equal(records[0]!.count, 3);
    assert.equal(records[1]!.msg, 'access');
    assert.equal(records[1]!.time, '1970-01-01T00:00:00.000Z');
    assert.equal(records[1]!.path, '/x?y');
  });

  test("a name's byte that is not UTF-8 (a lone surrogate) is logged as U+FFFD; pairs stay", () => {
    for (const format of ['logfmt', 'json']) {
      const out = stderrOf(
        `new log.Logger('web').info('x', { path: '/caf\\udce9 \\ud83d\\ude00 \\ud800' });`,
        {
          PRIVDAV_LOG_FORMAT: format,
        },
      );
      assert.ok(out.includes('/caf\uFFFD \u{1F600} \uFFFD'), `${format}: ${out}`);
      assert.ok(!/\\ud[89a-f]/i.test(out), 'no surrogate escapes in the line');
    }
  });

  test('access lines are written below the level that hides info', () => {
    const out = stderrOf(
      `const l = new log.Logger('web', 'warn'); l.info('hidden'); l.access({ status: 200 }, Date.now());`,
    );
    assert.doesNotMatch(out, /hidden/);
    assert.match(out, /access status=200/);
  });
});

describe('isoTime', () => {
  test('is exactly toISOString for times across the range Date formats, milliseconds and second boundaries included', async () => {
    const { isoTime } = (await import(LOG_MODULE)) as typeof import('../../common/log');
    const samples = [
      0,
      1,
      9,
      10,
      99,
      100,
      999,
      1000,
      1001,
      -1,
      -999,
      -1000,
      -1001,
      Date.now(),
      253402300799999,
    ];
    for (let i = 0; i < 2000; i++) samples.push(Math.floor((Math.random() - 0.3) * 2 ** 44));
    // In order and out of order, so the per-second cache is both hit and missed.
    for (const ms of [...samples, ...samples.slice().reverse(), 253402300800000, -62198755200001]) {
      assert.equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
    }
  });
});

describe('a slow stderr', () => {
  test('20 MB of lines into a pipe nobody reads: the event loop keeps running, memory stays bounded, drops are counted and reported', async () => {
    const script = `
      const log = require(${JSON.stringify(LOG_MODULE)});
      const logger = new log.Logger('web');
      const before = process.memoryUsage().rss;
      let maxLag = 0, last = Date.now();
      const timer = setInterval(() => { const now = Date.now(); maxLag = Math.max(maxLag, now - last - 10); last = now; }, 10);
      let i = 0;
      const burst = () => {
        for (let n = 0; n < 2000; n++) logger.info('a request', { n: i++, padding: 'x'.repeat(60) });
        if (i < 200000) setImmediate(burst);
        else setTimeout(() => {
          clearInterval(timer);
          process.stdout.write(JSON.stringify({ maxLag, growth: process.memoryUsage().rss - before, dropped: log.droppedLogLines() }) + '\\n');
          process.stdin.once('data', () => process.exit(0));
        }, 200);
      };
      burst();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    // Nobody reads stderr until the child has reported.
    child.stderr.pause();
    const report = await new Promise<string>((resolve) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text);
      });
    });
    const { maxLag, growth, dropped } = JSON.parse(report) as {
      maxLag: number;
      growth: number;
      dropped: number;
    };
    process.stdout.write(
      `# slow stderr: max event-loop lag ${maxLag} ms, RSS growth ${(growth / 1048576).toFixed(1)} MiB, ${dropped} lines dropped\n`,
    );
    assert.ok(dropped > 100_000, `most of the 200,000 lines were dropped: ${dropped}`);
    assert.ok(growth < 64 * 1024 * 1024, `memory grew by ${growth} bytes`);
    assert.ok(maxLag < 1000, `the event loop was never held for long: ${maxLag} ms`);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stderr.resume();
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.stdin.write('go\n');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.match(stderr, /warn log\[\d+\]: log lines dropped: stderr did not keep up count=\d+/);
  });
});
