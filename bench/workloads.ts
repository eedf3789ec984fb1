// The workloads of issue 4. Each turn first checks that the server answers correctly (status, body,
// number of multistatus responses), then measures; a wrong answer is a failure of the run, not a slow figure.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchServer } from './bench-server';
import { BenchUser, DataSizes, dataPaths } from './bench-user';
import { downloadToNull, StreamResult, uploadFile } from './curl-stream';
import { isolationTurn } from './isolation';
import { ProcessCpuMeter } from './process-cpu';
import { sendRequest } from './http-transfer';
import { firstRequestBurst } from './users-burst';
import { luaString, runWrk, WrkResult, type WrkRun } from './wrk-load';

export interface BenchContext {
  user: BenchUser;
  /** Further accounts for the "users" workloads (as many as the largest N). */
  crowd: BenchUser[];
  sizes: DataSizes;
  /** wrk run length per turn. */
  durationSeconds: number;
  /**
   * An unmeasured wrk run of the turn's own load before it: a privdav just restarted (the
   * cold-start turn restarts it every round) runs its first seconds before V8 has compiled the
   * request path (GET 4 KiB ×16: ~6,000 req/s in the first second, ~12,000 from the fourth), and
   * Apache needs none — without this a 2 s turn measured mostly the compiler.
   */
  warmupSeconds: number;
  /** Transfers per turn of the big-stream workloads (one 256 MiB transfer lasts ~0.1 s: too short alone). */
  streamTransfers: number;
  /** Private directory (root only) for generated scripts and curl configs. */
  scratchDirectory: string;
  /** This turn's CPU window over the server's processes: begun and ended around the load only. */
  cpu: ProcessCpuMeter;
}

/** What the run gives every turn; each turn adds its own CPU window. */
export type TurnContext = Omit<BenchContext, 'cpu'>;

export interface TurnResult {
  /** The figure in the workload's unit. */
  value: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Wrong answers. Any failure makes the run exit non-zero. */
  failures: string[];
  /** Things worth knowing that are not wrong answers (socket errors, timeouts). */
  notes: string[];
  /** "users" workloads: answers other than 207, and the peak total private memory of the server. */
  users?: { errors: number; peakTotalPrivateBytes: number };
  /** How many of the workload's `cpuPer` units the CPU window served (requests, entries, MiB, users). */
  cpuUnits?: number;
}

/** What the CPU time of a turn is divided by; null: not measured (a single request, or no steady load). */
export type CpuUnit = 'request' | 'entry' | 'MiB' | 'user';

export interface Workload {
  id: string;
  title: string;
  unit: string;
  /** "higher": a throughput; "lower": a time, whose ratio is inverted so that > 1 still means privdav ahead. */
  better: 'higher' | 'lower';
  /** privdav/Apache ratio to reach, if the issue sets one. */
  ratioTarget: number | null;
  /** Largest acceptable privdav value in the workload's unit (cold start in ms). */
  maximumTarget: number | null;
  /** How many of the context's crowd the workload logs in ("users" workloads). */
  users?: number;
  /** Measured on privdav only (what it measures has no counterpart in Apache). */
  privdavOnly?: boolean;
  cpuPer: CpuUnit | null;
  /** Run again at each --web-processes count: a concurrent req/s load that several web processes could share. */
  scales?: boolean;
  run(server: BenchServer, context: BenchContext): Promise<TurnResult>;
}

const propfindAllprop =
  '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n';

function mebibytes(bytes: number): string {
  return `${Math.round(bytes / (1 << 20))} MiB`;
}

function kibibytes(bytes: number): string {
  return `${Math.round(bytes / 1024)} KiB`;
}

export function buildWorkloads(sizes: DataSizes): Workload[] {
  const largest = Math.max(...sizes.propfindCollections.filter((entries) => entries <= 1000));
  const largestOverall = Math.max(...sizes.propfindCollections);
  return [
    {
      id: 'get-big',
      title: `GET ${mebibytes(sizes.bigFileBytes)}, 1 stream`,
      unit: 'MiB/s',
      better: 'higher',
      ratioTarget: 1.0,
      maximumTarget: null,
      cpuPer: 'MiB',
      run: (server, context) =>
        streamTurn(
          context,
          (directory) => downloadToNull(server, dataPaths.bigFile, directory),
          200,
          sizes.bigFileBytes,
        ),
    },
    {
      id: 'put-big',
      title: `PUT ${mebibytes(sizes.bigFileBytes)}, 1 stream`,
      unit: 'MiB/s',
      better: 'higher',
      ratioTarget: 1.0,
      maximumTarget: null,
      cpuPer: 'MiB',
      run: (server, context) => putBigTurn(server, context),
    },
    {
      id: 'get-small',
      title: `GET ${kibibytes(sizes.smallFileBytes)}, 16 connections`,
      unit: 'req/s',
      better: 'higher',
      ratioTarget: 1.0,
      maximumTarget: null,
      cpuPer: 'request',
      scales: true,
      run: (server, context) => getSmallTurn(server, context),
    },
    {
      id: 'put-small',
      title: `PUT ${kibibytes(sizes.smallFileBytes)} overwrite, 8 connections`,
      unit: 'req/s',
      better: 'higher',
      ratioTarget: 1.0,
      maximumTarget: null,
      cpuPer: 'request',
      scales: true,
      run: (server, context) => putSmallTurn(server, context),
    },
    {
      id: `propfind-${largest}`,
      title: `PROPFIND Depth 1 allprop, ${largest.toLocaleString('en')} entries, 4 connections`,
      unit: 'req/s',
      better: 'higher',
      ratioTarget: largest === 1000 ? 3.0 : null,
      maximumTarget: null,
      cpuPer: 'request',
      scales: true,
      run: (server, context) => propfindTurn(server, context, largest, 4),
    },
    {
      id: 'mkcol-delete',
      title: 'MKCOL + DELETE churn, 2 connections',
      unit: 'req/s',
      better: 'higher',
      ratioTarget: null,
      maximumTarget: null,
      cpuPer: 'request',
      run: (server, context) => churnTurn(server, context, 2),
    },
    ...sizes.propfindCollections.map((entries): Workload => ({
      id: `propfind-per-entry-${entries}`,
      title: `PROPFIND Depth 1 allprop, ${entries.toLocaleString('en')} entries, 1 connection`,
      unit: 'µs/entry',
      better: 'lower',
      ratioTarget: null,
      maximumTarget: null,
      cpuPer: 'entry',
      run: (server, context) => propfindTurn(server, context, entries, 1),
    })),
    {
      id: 'cold-start',
      title: 'Cold start: first request after start',
      unit: 'ms',
      better: 'lower',
      ratioTarget: null,
      maximumTarget: 150,
      // One request: at 10 ms per clock tick and process, its CPU time would be mostly rounding.
      cpuPer: null,
      run: (server) => coldStartTurn(server),
    },
    {
      id: 'isolation',
      // Details in bench/README.md: the heavy load is on other users, the figure the quiet user's p99.
      title: `Isolation: another user's GET ${kibibytes(sizes.smallFileBytes)} under the heaviest requests`,
      unit: 'ms p99',
      better: 'lower',
      ratioTarget: null,
      maximumTarget: 100,
      users: 2,
      privdavOnly: true,
      // The figure is the quiet user's latency; the CPU goes to the heavy requests.
      cpuPer: null,
      run: (server, context) => isolationTurn(server, context, largestOverall, percentile),
    },
    ...sizes.userCounts.map((count): Workload => ({
      id: `users-${count}`,
      title: `Users: ${count.toLocaleString('en')} users' first requests at once (PROPFIND Depth 0)`,
      unit: 'ms p99',
      better: 'lower',
      ratioTarget: null,
      maximumTarget: null,
      users: count,
      cpuPer: 'user',
      run: (server, context) => usersTurn(server, context, count),
    })),
  ];
}

/**
 * After a restart (no worker, no cached credentials), `count` users' first requests at once, each
 * on its own connection: privdav logs each in with PAM and starts each a worker; Apache (no auth,
 * no per-user state) answers the same number of requests. The figure is the p99 latency.
 */
async function usersTurn(server: BenchServer, context: BenchContext, count: number): Promise<TurnResult> {
  await server.restartCold();
  const users = server.authorization === null ? null : context.crowd.slice(0, count);
  const burst = await measured(context, () =>
    firstRequestBurst(server.port, count, users, () => server.rootPid()),
  );
  const p99 = percentile(burst.latenciesMs, 99) ?? 0;
  const notes =
    burst.errors > 0
      ? [
          `answers: ${Object.entries(burst.statuses)
            .map(([status, n]) => `${n} x ${status}`)
            .join(', ')}`,
        ]
      : [];
  return {
    value: p99,
    p50Ms: percentile(burst.latenciesMs, 50),
    p99Ms: p99,
    failures: [],
    notes,
    users: { errors: burst.errors, peakTotalPrivateBytes: burst.peakTotalPrivateBytes },
    cpuUnits: count,
  };
}

async function streamTurn(
  context: BenchContext,
  transfer: (directory: string) => Promise<StreamResult>,
  expectedStatus: number | number[],
  expectedBytes: number,
): Promise<TurnResult> {
  const accepted = Array.isArray(expectedStatus) ? expectedStatus : [expectedStatus];
  const failures: string[] = [];
  const milliseconds: number[] = [];
  let bytes = 0;
  let seconds = 0;
  // Transfers unmeasured for the warm-up's seconds first (one at least), as the wrk turns have
  // theirs: get-big is the round's first turn, right after the last round's restart, and privdav's
  // first request would otherwise count its login (PAM), the user's worker and the start of the
  // spare worker that replaces it (~0.2-0.5 s of CPU, after the first transfer) in the stream's
  // time and CPU.
  const warmupEnds = performance.now() + context.warmupSeconds * 1000;
  while (context.warmupSeconds > 0) {
    const warmup = await transfer(context.scratchDirectory);
    if (!accepted.includes(warmup.status)) {
      failures.push(`unmeasured transfer: status ${warmup.status}, expected ${accepted.join(' or ')}`);
      break;
    }
    if (performance.now() >= warmupEnds) break;
  }
  await measured(context, async () => {
    for (let index = 0; index < context.streamTransfers; index++) {
      const result = await transfer(context.scratchDirectory);
      if (!accepted.includes(result.status))
        failures.push(`status ${result.status}, expected ${accepted.join(' or ')}`);
      if (result.bytes !== expectedBytes)
        failures.push(`${result.bytes} bytes transferred, expected ${expectedBytes}`);
      bytes += result.bytes;
      seconds += result.seconds;
      milliseconds.push(result.seconds * 1000);
    }
  });
  return {
    value: bytes / (1 << 20) / seconds,
    p50Ms: percentile(milliseconds, 50),
    p99Ms: percentile(milliseconds, 99),
    failures,
    notes: [],
    cpuUnits: bytes / (1 << 20),
  };
}

async function putBigTurn(server: BenchServer, context: BenchContext): Promise<TurnResult> {
  const source = path.join(context.user.home, dataPaths.bigFile);
  const turn = await streamTurn(
    context,
    (directory) => uploadFile(server, dataPaths.bigUpload, source, directory),
    [200, 201, 204],
    context.sizes.bigFileBytes,
  );
  const stored = fs.statSync(path.join(context.user.home, dataPaths.bigUpload));
  if (stored.size !== context.sizes.bigFileBytes) turn.failures.push(`stored file has ${stored.size} bytes`);
  if (stored.uid !== context.user.uid) turn.failures.push(`stored file is owned by uid ${stored.uid}`);
  return turn;
}

async function getSmallTurn(server: BenchServer, context: BenchContext): Promise<TurnResult> {
  const expected = fs.readFileSync(path.join(context.user.home, dataPaths.smallFile));
  const check = await sendRequest(server, 'GET', dataPaths.smallFile);
  const failures: string[] = [];
  if (check.status !== 200) failures.push(`GET ${dataPaths.smallFile}: status ${check.status}`);
  else if (!check.body.equals(expected))
    failures.push(`GET ${dataPaths.smallFile}: body differs from the file`);
  const result = await measuredWrk(context, {
    server,
    urlPath: dataPaths.smallFile,
    connections: 16,
    threads: 2,
    luaRequest: 'wrk.method = "GET"',
    scriptDirectory: context.scratchDirectory,
  });
  return fromWrk(result, result.requestsPerSecond, failures, result.requests);
}

async function putSmallTurn(server: BenchServer, context: BenchContext): Promise<TurnResult> {
  const body = crypto.randomBytes(context.sizes.smallFileBytes);
  // A file of this server's own that the load never writes: a PUT of the previous turn still in
  // flight when wrk stopped may land on the load's targets after this check's PUT.
  const target = `${dataPaths.putDirectory}/check-${server.name}.bin`;
  const failures: string[] = [];
  const put = await sendRequest(server, 'PUT', target, {
    body,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  if (put.status !== 204 && put.status !== 201 && put.status !== 200) {
    failures.push(`PUT ${target} (overwrite): status ${put.status}`);
  } else {
    const back = await sendRequest(server, 'GET', target);
    if (back.status !== 200 || !back.body.equals(body))
      failures.push(`GET after PUT ${target}: content differs`);
  }
  // Each wrk thread cycles over the pre-created targets from its own start, so every PUT overwrites
  // an existing file and the threads rarely hit the same one.
  const lua = `
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("p", ${context.sizes.smallFileBytes})
local targets = ${context.sizes.putTargets}
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("threadNumber", threads)
end
local next = nil
request = function()
  if next == nil then next = (threadNumber * 17) % targets end
  next = (next + 1) % targets
  return wrk.format(nil, ${luaString(dataPaths.putDirectory)} .. "/f-" .. next .. ".bin")
end`;
  const result = await measuredWrk(context, {
    server,
    urlPath: '/',
    connections: 8,
    threads: 2,
    luaRequest: lua,
    scriptDirectory: context.scratchDirectory,
  });
  return fromWrk(result, result.requestsPerSecond, failures, result.requests);
}

/**
 * A second of GETs over 16 connections after a restart, so that every web process has logged the
 * user in and connected to the worker before a turn measures (the kernel spreads connections over
 * the web processes; the first request on each would otherwise be counted among the load's).
 */
export async function warmUp(server: BenchServer, context: TurnContext): Promise<void> {
  await runWrk({
    server,
    urlPath: dataPaths.smallFile,
    connections: 16,
    threads: 2,
    durationSeconds: 1,
    luaRequest: 'wrk.method = "GET"',
    scriptDirectory: context.scratchDirectory,
  });
}

/** Counts the <D:response> elements of a multistatus, whatever prefix the server chose. */
function countResponses(xml: string): number {
  return (xml.match(/<([A-Za-z][\w.-]*:)?response[\s>]/g) ?? []).length;
}

async function propfindTurn(
  server: BenchServer,
  context: BenchContext,
  entries: number,
  connections: number,
): Promise<TurnResult> {
  const collection = `${dataPaths.propfindCollection(entries)}/`;
  const headers = { Depth: '1', 'Content-Type': 'application/xml; charset=utf-8' };
  const failures: string[] = [];
  const check = await sendRequest(server, 'PROPFIND', collection, { headers, body: propfindAllprop });
  const responses = countResponses(check.body.toString('utf8'));
  if (check.status !== 207) failures.push(`PROPFIND ${collection}: status ${check.status}`);
  else if (responses !== entries + 1) {
    failures.push(`PROPFIND ${collection}: ${responses} responses, expected ${entries + 1}`);
  }
  const lua = `
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "1"
wrk.headers["Content-Type"] = "application/xml; charset=utf-8"
wrk.body = ${luaString(propfindAllprop)}`;
  const result = await measuredWrk(context, {
    server,
    urlPath: collection,
    connections,
    threads: Math.min(connections, 2),
    luaRequest: lua,
    scriptDirectory: context.scratchDirectory,
  });
  // One connection: the figure is the time per entry; several: requests per second.
  const value = connections === 1 ? (result.meanMs * 1000) / entries : result.requestsPerSecond;
  return fromWrk(result, value, failures, connections === 1 ? result.requests * entries : result.requests);
}

async function churnTurn(
  server: BenchServer,
  context: BenchContext,
  connections: number,
): Promise<TurnResult> {
  const failures: string[] = [];
  // A fresh prefix per turn: wrk stops mid-pair, and a leftover collection must not turn the next
  // turn's first MKCOL into a 405.
  const prefix = `${dataPaths.churnDirectory}/${server.name}-${crypto.randomBytes(4).toString('hex')}`;
  // The warm-up gets its own names: it stops mid-pair too.
  const mkcol = await sendRequest(server, 'MKCOL', `${prefix}-check/`);
  if (mkcol.status !== 201) failures.push(`MKCOL ${prefix}-check/: status ${mkcol.status}`);
  const remove = await sendRequest(server, 'DELETE', `${prefix}-check/`);
  if (remove.status !== 204 && remove.status !== 200)
    failures.push(`DELETE ${prefix}-check/: status ${remove.status}`);
  // One connection per wrk thread, so each thread's MKCOL/DELETE pairs stay strictly in order. The
  // step advances on the response, not in request(): wrk calls request() once more than it sends, to
  // check the script, which would otherwise skip the first MKCOL and make the first DELETE a 404.
  const lua = (names: string): string => `
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("threadNumber", threads)
end
local step = 1
request = function()
  local collection = ${luaString(names)} .. "-" .. threadNumber .. "-" .. math.floor((step + 1) / 2) .. "/"
  if step % 2 == 1 then
    return wrk.format("MKCOL", collection)
  end
  return wrk.format("DELETE", collection)
end
response = function()
  step = step + 1
end`;
  const result = await measuredWrk(
    context,
    {
      server,
      urlPath: '/',
      connections,
      threads: connections,
      luaRequest: lua(prefix),
      scriptDirectory: context.scratchDirectory,
    },
    lua(`${prefix}-warmup`),
  );
  return fromWrk(result, result.requestsPerSecond, failures, result.requests);
}

/**
 * The server is restarted and answers (for privdav: the web process answers a request without
 * credentials), then one authenticated GET is timed: login, the user's worker starting, the file
 * opened and sent.
 */
async function coldStartTurn(server: BenchServer): Promise<TurnResult> {
  await server.restartCold();
  const answer = await sendRequest(server, 'GET', dataPaths.smallFile);
  const failures = answer.status === 200 ? [] : [`first GET ${dataPaths.smallFile}: status ${answer.status}`];
  return { value: answer.milliseconds, p50Ms: null, p99Ms: null, failures, notes: [] };
}

/**
 * wrk's load for a turn: first for context.warmupSeconds unmeasured, then for the turn's length
 * inside its CPU window.
 */
async function measuredWrk(
  context: BenchContext,
  run: Omit<WrkRun, 'durationSeconds'>,
  warmupLua = run.luaRequest,
): Promise<WrkResult> {
  if (context.warmupSeconds > 0)
    await runWrk({ ...run, luaRequest: warmupLua, durationSeconds: context.warmupSeconds });
  return measured(context, () => runWrk({ ...run, durationSeconds: context.durationSeconds }));
}

/**
 * Runs the load part of a turn inside the turn's CPU window, so that the correctness checks before
 * it are not divided among the load's requests.
 */
async function measured<T>(context: BenchContext, load: () => Promise<T>): Promise<T> {
  context.cpu.begin();
  try {
    return await load();
  } finally {
    context.cpu.end();
  }
}

function fromWrk(result: WrkResult, value: number, failures: string[], cpuUnits: number): TurnResult {
  const notes: string[] = [];
  if (result.requests === 0) failures.push('wrk completed no request');
  if (result.statusErrors > 0)
    failures.push(`${result.statusErrors} of ${result.requests} responses had status >= 400`);
  const { connect, read, write, timeout } = result.socketErrors;
  if (connect + read + write + timeout > 0) {
    notes.push(`socket errors: connect ${connect}, read ${read}, write ${write}, timeout ${timeout}`);
  }
  return { value, p50Ms: result.p50Ms, p99Ms: result.p99Ms, failures, notes, cpuUnits };
}

/** Nearest-rank percentile; null for no samples. */
export function percentile(samples: number[], rank: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((rank / 100) * sorted.length) - 1));
  return sorted[index];
}
