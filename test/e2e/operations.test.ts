// Running privdav at a site, with the real daemon: the access log (the audit trail of changes),
// JSON log lines from every process, Prometheus metrics and /healthz on their own listener, and
// the systemd protocol — READY, STATUS, WATCHDOG keep-alives only while the web process answers,
// RELOADING around SIGHUP — seen on a NOTIFY_SOCKET the test listens on.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createSocket, type UnixDgramSocket } from 'unix-dgram';
import { configText, writeConfig, type ConfigOptions } from '../support/cli';
import {
  Daemon,
  freePort,
  getPlain,
  metricValue,
  request,
  sleep,
  startDaemonWithConfig,
  type StartOptions,
} from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

let users: TestUsers;
const started: Daemon[] = [];
before(() => {
  users = createUsers();
});
after(async () => {
  await Promise.all(started.map((daemon) => daemon.stop()));
  users.remove();
});

async function startWith(set: ConfigOptions['set'], options: StartOptions = {}): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-ops-'));
  const port = await freePort();
  const path = join(dir, 'privdav.toml');
  writeConfig(path, configText({ port, stateDir: join(dir, 'state'), set }));
  const daemon = await startDaemonWithConfig(path, port, dir, options);
  started.push(daemon);
  return daemon;
}

/** The daemon's lines matching `pattern`, waiting up to 5 s for at least `count` of them. */
async function linesMatching(daemon: Daemon, pattern: RegExp, count = 1): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = daemon
      .output()
      .split('\n')
      .filter((line) => pattern.test(line));
    if (lines.length >= count) return lines;
    assert.ok(Date.now() < deadline, `fewer than ${count} lines match ${pattern}:\n${daemon.output()}`);
    await sleep(50);
  }
}

/**
 * The failregex lines of the shipped fail2ban filter as JavaScript regexes: fail2ban's <HOST> is
 * an address group (its own pattern also takes host names; privdav logs addresses only).
 */
function fail2banRegexes(): RegExp[] {
  const filter = readFileSync(
    join(__dirname, '..', '..', '..', 'config', 'fail2ban', 'privdav.conf'),
    'utf8',
  );
  const lines = filter.split('\n');
  const start = lines.findIndex((line) => line.startsWith('failregex ='));
  const patterns = [lines[start]!.slice('failregex ='.length).trim()];
  for (const line of lines.slice(start + 1)) {
    if (!/^\s+\S/.test(line)) break;
    patterns.push(line.trim());
  }
  return patterns.map((pattern) => new RegExp(pattern.replace('<HOST>', '(?<host>[0-9A-Fa-f:.]+)')));
}

/** The address the fail2ban filter takes from a line, or null when no failregex matches. */
function bannedHost(line: string): string | null {
  for (const regex of fail2banRegexes()) {
    const host = regex.exec(line)?.groups?.host;
    if (host !== undefined) return host;
  }
  return null;
}

/** logfmt's key=value pairs (values quoted with JSON string syntax when needed). */
function logfmtFields(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of line.matchAll(/ (\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    fields[match[1]!] = match[2]!.startsWith('"') ? (JSON.parse(match[2]!) as string) : match[2]!;
  }
  return fields;
}

describe('access log', () => {
  test('a PUT and a MOVE each get one line naming user, paths, status and bytes; lines carry a time off the journal', async () => {
    const daemon = await startWith({});
    const alice = users.alice;
    const body = 'audit me\n';
    const put = await request(daemon, '/audit.txt', {
      method: 'PUT',
      user: alice,
      body,
      headers: { 'User-Agent': 'ops-test/1.0 (with spaces)' },
    });
    assert.equal(put.status, 201);
    assert.match(String(put.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-z]+$/);
    const move = await request(daemon, '/audit.txt', {
      method: 'MOVE',
      user: alice,
      headers: { Destination: `${daemon.url}/moved%20here.txt` },
    });
    assert.equal(move.status, 201);

    const [putLine] = await linesMatching(daemon, /: access .*method=PUT/);
    const [moveLine] = await linesMatching(daemon, /: access .*method=MOVE/);
    process.stdout.write(`# access line (logfmt): ${putLine}\n# ${moveLine}\n`);
    // JOURNAL_STREAM is unset here: each line starts with its own time.
    assert.match(putLine!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info web\[\d+\]: access /);
    const p = logfmtFields(putLine!);
    assert.equal(p.request_id, put.headers['x-request-id']);
    assert.equal(p.user, alice.name);
    assert.equal(p.remote, '127.0.0.1');
    assert.equal(p.path, '/audit.txt');
    assert.equal(p.status, '201');
    assert.equal(p.user_agent, 'ops-test/1.0 (with spaces)');
    assert.ok(Number(p.bytes_in) >= body.length, `bytes_in ${p.bytes_in} counts the body`);
    assert.ok(Number(p.bytes_out) > 0);
    assert.ok(Number(p.duration_ms) >= 0);
    assert.ok(!Number.isNaN(Date.parse(p.time!)));
    for (const key of ['time', 'request_id', 'remote', 'user', 'method', 'path', 'destination', 'status'])
      assert.ok(key in p, `${key} is in the line`);
    for (const key of ['bytes_in', 'bytes_out', 'duration_ms', 'user_agent']) assert.ok(key in p, key);
    const m = logfmtFields(moveLine!);
    assert.equal(m.user, alice.name);
    assert.equal(m.path, '/audit.txt');
    assert.equal(m.destination, `${daemon.url}/moved%20here.txt`);
    assert.equal(m.status, '201');
  });

  test('a refused login is logged with status 401 and no user; access = false writes no access lines', async () => {
    const daemon = await startWith({ log: ['access = false'] });
    const wrong = await request(daemon, '/', {
      method: 'PROPFIND',
      user: { name: users.bob.name, password: 'wrong' },
    });
    assert.equal(wrong.status, 401);
    assert.equal((await request(daemon, '/', { method: 'PROPFIND', user: users.bob })).status, 207);
    const [refused] = await linesMatching(daemon, /login refused/);
    assert.equal(bannedHost(refused!), '127.0.0.1', `the fail2ban filter matches ${refused}`);
    assert.equal(
      bannedHost(refused!.replace(/^\S+ /, '')),
      '127.0.0.1',
      'also without the time (the journal)',
    );
    const forged = refused!.replace(/user=\S+/, 'user="x remote=10.9.9.9 why=y"');
    assert.equal(bannedHost(forged), '127.0.0.1', 'a user name cannot point the ban elsewhere');
    for (const line of daemon
      .output()
      .split('\n')
      .filter((text) => !/login refused/.test(text)))
      assert.equal(bannedHost(line), null, `the filter matches only refused logins: ${line}`);
    await sleep(300);
    assert.doesNotMatch(daemon.output(), /: access /);
  });

  test('format = "json": every line of every process is one JSON object; an access line has the same keys', async () => {
    const daemon = await startWith({
      server: ['worker_idle_timeout = "1s"'],
      log: ['format = "json"', 'level = "debug"'],
    });
    assert.equal(
      (await request(daemon, '/j.txt', { method: 'PUT', user: users.alice, body: 'x' })).status,
      201,
    );
    const wrong = { name: users.bob.name, password: 'wrong' };
    assert.equal((await request(daemon, '/', { method: 'PROPFIND', user: wrong })).status, 401);
    await linesMatching(daemon, /"msg":"access"/);
    // An idle worker says it leaves: then every role has written.
    await linesMatching(daemon, /"role":"worker"/);
    const lines = daemon
      .output()
      .split('\n')
      .filter((line) => line !== '');
    const records = lines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        assert.fail(`not JSON: ${line}`);
      }
    });
    const roles = new Set(records.map((record) => record.role));
    for (const role of ['monitor', 'web', 'worker'])
      assert.ok(roles.has(role), `${role} logged JSON: ${[...roles]}`);
    const access = records.find((record) => record.msg === 'access' && record.method === 'PUT')!;
    const refused = lines.find((line) => line.includes('"msg":"login refused"'))!;
    assert.equal(bannedHost(refused), '127.0.0.1', `the fail2ban filter matches the JSON line ${refused}`);
    process.stdout.write(`# access line (JSON): ${JSON.stringify(access)}\n`);
    assert.equal(access.user, users.alice.name);
    assert.equal(access.method, 'PUT');
    assert.equal(access.path, '/j.txt');
    assert.equal(access.status, 201);
    for (const key of [
      'time',
      'request_id',
      'remote',
      'destination',
      'bytes_in',
      'bytes_out',
      'duration_ms',
      'user_agent',
    ])
      assert.ok(key in access, `${key} is in the JSON access line`);
  });
});

describe('metrics', () => {
  test('/metrics on its own listener moves with requests and logins; /healthz answers; the WebDAV port has neither', async () => {
    const metricsPort = await freePort();
    const daemon = await startWith({ metrics: [`listen = ["127.0.0.1:${metricsPort}"]`] });
    const health = await getPlain(metricsPort, '/healthz');
    assert.equal(health.status, 200, health.text);
    const before = await getPlain(metricsPort, '/metrics');
    assert.equal(before.status, 200);
    assert.match(before.type, /^text\/plain; version=0\.0\.4/);

    assert.equal(
      (await request(daemon, '/m.txt', { method: 'PUT', user: users.alice, body: 'metrics' })).status,
      201,
    );
    assert.equal((await request(daemon, '/m.txt', { user: users.alice })).status, 200);
    const wrong = await request(daemon, '/', {
      method: 'PROPFIND',
      user: { name: users.alice.name, password: 'no' },
    });
    assert.equal(wrong.status, 401);
    const lock = await request(daemon, '/m.txt', {
      method: 'LOCK',
      user: users.alice,
      body: '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
      headers: { 'Content-Type': 'application/xml' },
    });
    assert.equal(lock.status, 200);
    // The monitor's counters arrive with its next ping (every 2 s at most).
    await sleep(2500);
    const { text } = await getPlain(metricsPort, '/metrics');
    const excerpt = text
      .split('\n')
      .filter((line) =>
        /^privdav_(http_requests_total\{method="(PUT|GET)"|logins_total|workers |worker_starts|locks |connections |resident|http_bytes)/.test(
          line,
        ),
      );
    process.stdout.write(`# /metrics excerpt:\n${excerpt.map((line) => `#   ${line}`).join('\n')}\n`);
    assert.equal(metricValue(text, 'privdav_http_requests_total{method="PUT",status="201"}'), 1);
    assert.equal(metricValue(text, 'privdav_http_requests_total{method="GET",status="200"}'), 1);
    assert.equal(metricValue(text, 'privdav_http_requests_total{method="PROPFIND",status="401"}'), 1);
    assert.equal(metricValue(text, 'privdav_http_request_duration_seconds_count{method="PUT"}'), 1);
    // A histogram in the exposition format: HELP/TYPE once, cumulative buckets up to +Inf = count.
    assert.match(text, /^# TYPE privdav_http_request_duration_seconds histogram$/m);
    const buckets = [
      ...text.matchAll(/^privdav_http_request_duration_seconds_bucket\{le="([^"]+)",method="GET"\} (\d+)$/gm),
    ];
    assert.equal(buckets.length, 15, 'fourteen bounds and +Inf');
    assert.equal(buckets.at(-1)![1], '+Inf');
    const counts = buckets.map((match) => Number(match[2]));
    assert.deepEqual(
      counts,
      [...counts].sort((a, b) => a - b),
      'buckets are cumulative',
    );
    assert.equal(
      counts.at(-1),
      metricValue(text, 'privdav_http_request_duration_seconds_count{method="GET"}'),
    );
    assert.ok(metricValue(text, 'privdav_http_request_duration_seconds_sum{method="GET"}') > 0);
    assert.ok(metricValue(text, 'privdav_http_bytes_total{direction="in"}') > 'metrics'.length);
    assert.ok(metricValue(text, 'privdav_http_bytes_total{direction="out"}') > 0);
    assert.ok(metricValue(text, 'privdav_logins_total{result="ok"}') >= 1);
    assert.equal(metricValue(text, 'privdav_logins_total{result="wrong"}'), 1);
    for (const result of ['refused', 'backoff', 'overload'])
      assert.match(text, new RegExp(`^privdav_logins_total\\{result="${result}"\\} 0$`, 'm'));
    assert.equal(metricValue(text, 'privdav_workers'), 1);
    assert.equal(metricValue(text, 'privdav_worker_starts_total'), 1);
    assert.equal(metricValue(text, 'privdav_locks'), 1);
    assert.ok(metricValue(text, 'privdav_connections') >= 0);
    assert.ok(metricValue(text, 'privdav_channel_call_duration_seconds_count{op="auth"}') >= 1);
    assert.ok(metricValue(text, 'privdav_channel_call_duration_seconds_count{op="connect"}') >= 1);
    for (const role of ['monitor', 'web', 'worker'])
      assert.ok(metricValue(text, `privdav_resident_memory_bytes{role="${role}"}`) > 10 * 1024 * 1024, role);
    // Not on the WebDAV port: there /metrics is a WebDAV path like any other, behind a login.
    assert.equal((await request(daemon, '/metrics')).status, 401);
    assert.equal((await getPlain(metricsPort, '/other')).status, 404);
  });

  test('metrics.listen on the WebDAV port is refused by check-config with the key', async () => {
    const { runPrivdav } = await import('../support/cli');
    const dir = mkdtempSync(join(tmpdir(), 'privdav-ops-'));
    const port = await freePort();
    const path = join(dir, 'privdav.toml');
    writeConfig(
      path,
      configText({
        port,
        stateDir: join(dir, 'state'),
        set: { metrics: [`listen = ["127.0.0.1:${port}"]`] },
      }),
    );
    const result = runPrivdav(['check-config', '--config', path]);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /metrics\.listen: 127\.0\.0\.1:\d+ overlaps server\.listen/);
  });
});

describe('systemd notify protocol', () => {
  test('READY, STATUS, WATCHDOG=1 at half of WATCHDOG_USEC only while the web process answers, RELOADING on SIGHUP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'privdav-notify-'));
    const socketPath = join(dir, 'notify');
    const received: { at: number; text: string }[] = [];
    const socket: UnixDgramSocket = createSocket('unix_dgram', (message: Buffer) =>
      received.push({ at: Date.now(), text: message.toString() }),
    );
    socket.bind(socketPath);
    try {
      const daemon = await startWith({}, { env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '1000000' } });
      const keepAlives = (from: number, to = Date.now()): number =>
        received.filter((entry) => entry.text === 'WATCHDOG=1' && entry.at >= from && entry.at <= to).length;
      await sleep(2600);
      assert.ok(
        received.some((entry) => /^READY=1/.test(entry.text)),
        'READY=1',
      );
      const healthy = keepAlives(Date.now() - 2000);
      assert.ok(healthy >= 2, `keep-alives every 0.5 s while healthy: ${healthy} in 2 s`);
      assert.equal((await request(daemon, '/', { method: 'PROPFIND', user: users.alice })).status, 207);
      await sleep(2200);
      const status = received.filter((entry) => entry.text.startsWith('STATUS=')).map((entry) => entry.text);
      assert.ok(
        status.some((text) => /^STATUS=serving: 1 users, 2 workers, [\d.]+ requests\/s$/.test(text)),
        `STATUS= names users, workers and the request rate: ${status.join(' | ')}`,
      );

      // A hung web process: its event loop stops, so do its pongs, so do the keep-alives.
      const web = daemon.processes().web[0]!;
      process.kill(web, 'SIGSTOP');
      const stopped = Date.now();
      await sleep(2500);
      const whileHung = keepAlives(stopped + 1100);
      process.kill(web, 'SIGCONT');
      const resumed = Date.now();
      assert.equal(whileHung, 0, 'no keep-alive while the web process is stopped');
      await sleep(1600);
      assert.ok(keepAlives(resumed) >= 1, 'keep-alives resume once it answers again');

      const reloadAt = Date.now();
      process.kill(daemon.pid, 'SIGHUP');
      await sleep(500);
      const after = received.filter((entry) => entry.at >= reloadAt).map((entry) => entry.text);
      const reloading = after.findIndex((text) => /^RELOADING=1\nMONOTONIC_USEC=\d+$/.test(text));
      assert.ok(reloading >= 0, `RELOADING=1 with MONOTONIC_USEC: ${JSON.stringify(after)}`);
      const usec = BigInt(after[reloading]!.split('=')[2]!);
      const now = process.hrtime.bigint() / 1000n;
      assert.ok(usec <= now && now - usec < 5_000_000n, 'MONOTONIC_USEC is CLOCK_MONOTONIC');
      assert.ok(after.slice(reloading + 1).includes('READY=1'), 'READY=1 after the reload');
    } finally {
      socket.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
