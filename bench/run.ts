// `npm run bench`: privdav beside Apache mod_dav_fs over the same data in one run, turns alternating
// within each round. Writes bench/results/<timestamp>.{json,md,svg}; see bench/README.md.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApacheServer } from './apache-server';
import { BenchServer, ServerName, freeLoopbackPort } from './bench-server';
import {
  BenchUser,
  DataSizes,
  createBenchCrowd,
  createBenchUser,
  createDataSet,
  removeBenchUser,
} from './bench-user';
import { renderChart } from './chart-svg';
import { ProcessCpuMeter } from './process-cpu';
import { ProcessMemorySampler } from './process-memory';
import { PrivdavServer } from './privdav-server';
import {
  BenchReport,
  RecordedTurn,
  ScalingReport,
  formatNumber,
  memoryVerdict,
  renderMarkdown,
  scalingReport,
  summarizeWorkload,
} from './report';
import { TurnContext, buildWorkloads, warmUp, Workload } from './workloads';

const usage = `Usage: npm run bench -- [options]
  --rounds N          rounds (default 5); each round runs every workload on both servers
  --quick             2 rounds, 2 s wrk turns: a development run
  --smoke             1 round, small data, 1 s turns: proves the harness works (CI); exit 1 on a wrong answer
  --only NAME         run one server only: apache or privdav
  --seconds S         wrk run length per turn (default 5)
  --warmup S          unmeasured wrk run of the same load before each turn's (default 1; smoke: 0)
  --workloads IDS     comma-separated workload ids to run (default all)
  --privdav-standin   use a second Apache with Basic auth in place of privdav (while the daemon is unfinished)
  --no-durable        privdav with storage.durable = false (no fsync per upload, like Apache)
  --no-access-log     privdav with log.access = false (compare with a run without it: the access log's cost)
  --web-processes NS  then run get-small, put-small and propfind-1000 (those selected) on privdav alone at
                      each server.web_processes count, e.g. 1,2,4 (smoke: 1,2; others: none)
  --output DIR        where results go (default bench/results)
`;

interface Options {
  mode: 'full' | 'quick' | 'smoke';
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  streamTransfers: number;
  only: ServerName | null;
  workloadIds: string[] | null;
  standin: boolean;
  durable: boolean;
  accessLog: boolean;
  /** server.web_processes counts for the scaling runs; empty: none. */
  webProcesses: number[];
  output: string;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    mode: 'full',
    rounds: 5,
    seconds: 5,
    warmupSeconds: 1,
    streamTransfers: 5,
    only: null,
    workloadIds: null,
    standin: false,
    durable: true,
    accessLog: true,
    webProcesses: [],
    output: path.resolve(__dirname, '..', '..', 'bench', 'results'),
  };
  let rounds: number | null = null;
  let seconds: number | null = null;
  let warmupSeconds: number | null = null;
  let webProcesses: number[] | null = null;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    const value = (): string => {
      const next = argv[++index];
      if (next === undefined) fail(`${argument} needs a value`);
      return next;
    };
    switch (argument) {
      case '--rounds':
        rounds = positiveInteger(argument, value());
        break;
      case '--seconds':
        seconds = positiveInteger(argument, value());
        break;
      case '--warmup':
        {
          const text = value();
          warmupSeconds = text === '0' ? 0 : positiveInteger(argument, text);
        }
        break;
      case '--quick':
        options.mode = 'quick';
        break;
      case '--smoke':
        options.mode = 'smoke';
        break;
      case '--only': {
        const only = value();
        if (only !== 'apache' && only !== 'privdav') fail('--only takes apache or privdav');
        options.only = only;
        break;
      }
      case '--workloads':
        options.workloadIds = value().split(',').filter(Boolean);
        break;
      case '--privdav-standin':
        options.standin = true;
        break;
      case '--no-durable':
        options.durable = false;
        break;
      case '--no-access-log':
        options.accessLog = false;
        break;
      case '--web-processes':
        // server.web_processes takes 1-16 (helper/config.ts).
        webProcesses = value()
          .split(',')
          .filter(Boolean)
          .map((count) => positiveInteger(argument, count));
        if (webProcesses.some((count) => count > 16)) fail('--web-processes takes counts from 1 to 16');
        break;
      case '--output':
        options.output = path.resolve(value());
        break;
      case '--help':
        process.stdout.write(usage);
        return process.exit(0);
      default:
        fail(`unknown argument ${argument}`);
    }
  }
  if (options.mode === 'quick') Object.assign(options, { rounds: 2, seconds: 2, streamTransfers: 3 });
  if (options.mode === 'smoke')
    Object.assign(options, {
      rounds: 1,
      seconds: 1,
      warmupSeconds: 0,
      streamTransfers: 2,
      webProcesses: [1, 2],
    });
  if (rounds !== null) options.rounds = rounds;
  if (seconds !== null) options.seconds = seconds;
  if (warmupSeconds !== null) options.warmupSeconds = warmupSeconds;
  if (webProcesses !== null) options.webProcesses = webProcesses;
  if (webProcesses !== null && webProcesses.length > 0 && (options.only === 'apache' || options.standin))
    fail('--web-processes runs privdav itself: not with --only apache or --privdav-standin');
  return options;
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) fail(`${name} takes a positive integer`);
  return value;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${usage}`);
  process.exit(2);
}

function dataSizes(mode: Options['mode']): DataSizes {
  if (mode === 'smoke') {
    return {
      bigFileBytes: 16 << 20,
      smallFileBytes: 4096,
      propfindCollections: [10, 100, 1000],
      putTargets: 16,
      userCounts: [1, 10],
    };
  }
  return {
    bigFileBytes: 256 << 20,
    smallFileBytes: 4096,
    propfindCollections: [10, 100, 1000, 10000],
    putTargets: 64,
    userCounts: [1, 100, 400],
  };
}

/** Undo steps run in reverse order on success, error, SIGINT and SIGTERM alike. */
class Cleanup {
  private readonly steps: Array<{ what: string; run: () => void | Promise<void> }> = [];
  private running: Promise<void> | null = null;

  add(what: string, run: () => void | Promise<void>): void {
    this.steps.push({ what, run });
  }

  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop() as { what: string; run: () => void | Promise<void> };
        try {
          await step.run();
        } catch (error) {
          process.stderr.write(`bench: cleanup (${step.what}) failed: ${(error as Error).message}\n`);
        }
      }
    })();
    return this.running;
  }
}

function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    const output = (error as { stdout?: string; stderr?: string }).stdout ?? '';
    return output.trim() || 'unknown';
  }
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

function timestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) fail('must run as root: it creates a user and starts privdav as root');
  for (const tool of ['wrk', 'curl']) {
    if (commandOutput('sh', ['-c', `command -v ${tool}`]) === 'unknown')
      fail(`${tool} is missing: apt-get install -y ${tool}`);
  }
  ApacheServer.assertInstalled();
  const wantPrivdav = options.only !== 'apache';
  if (wantPrivdav && !options.standin && !PrivdavServer.isBuilt()) {
    fail('privdav is not built (dist/helper/main.js): run npm run build, or use --privdav-standin');
  }

  const cleanup = new Cleanup();
  // The first signal lets the current turn finish (so no server is being restarted while it is
  // torn down), the second cleans up at once.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interruption.requested) {
      process.stderr.write(`\nbench: ${signal} again, cleaning up now\n`);
      void cleanup.runAll().then(() => process.exit(130));
      return;
    }
    interruption.requested = true;
    process.stderr.write(`\nbench: ${signal}: stopping after the current turn (again to stop at once)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const report = await runBench(options, cleanup);
    const failed = report.failures.length > 0;
    process.exitCode = failed ? 1 : 0;
  } catch (error) {
    if (!(error instanceof Interrupted)) throw error;
    process.exitCode = 130;
  } finally {
    await cleanup.runAll();
  }
}

const interruption = { requested: false };

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

async function runBench(options: Options, cleanup: Cleanup): Promise<BenchReport> {
  const startedAt = new Date();
  const loadAverageBefore = loadAverage();
  // Root-only scratch space; the Apache directories inside are handed to the bench user.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-bench-'));
  fs.chmodSync(scratch, 0o711);
  cleanup.add('remove scratch directory', () => fs.rmSync(scratch, { recursive: true, force: true }));

  const sizes = dataSizes(options.mode);
  const user: BenchUser = createBenchUser();
  cleanup.add(`remove user ${user.name}`, () => removeBenchUser(user));
  log(`user ${user.name} (uid ${user.uid}); writing the data set into ${user.home}`);
  createDataSet(user, sizes);
  // Before the servers start, so that they are stopped (cleanup runs in reverse) before these go.
  const workloads = buildWorkloads(sizes).filter(
    (workload) => options.workloadIds === null || options.workloadIds.includes(workload.id),
  );
  const crowdSize = Math.max(0, ...workloads.map((workload) => workload.users ?? 0));
  let crowd: BenchUser[] = [];
  if (crowdSize > 0) {
    log(`creating ${crowdSize} more users for the "users" workloads`);
    crowd = createBenchCrowd(crowdSize);
    cleanup.add(`remove ${crowd.length} users`, () => crowd.forEach(removeBenchUser));
  }

  const servers: BenchServer[] = [];
  if (options.only !== 'apache') {
    const port = await freeLoopbackPort();
    if (options.standin) {
      servers.push(
        new ApacheServer({
          name: 'privdav',
          port,
          user,
          directory: path.join(scratch, 'standin'),
          requireAuth: true,
        }),
      );
    } else {
      const undoSystem = PrivdavServer.prepareSystem();
      cleanup.add('remove the PAM file the bench installed', undoSystem);
      servers.push(
        new PrivdavServer({
          port,
          user,
          directory: path.join(scratch, 'privdav'),
          durable: options.durable,
          accessLog: options.accessLog,
          webProcesses: 1,
        }),
      );
    }
  }
  if (options.only !== 'privdav') {
    const port = await freeLoopbackPort();
    servers.push(
      new ApacheServer({
        name: 'apache',
        port,
        user,
        directory: path.join(scratch, 'apache'),
        requireAuth: false,
      }),
    );
  }
  for (const server of servers) {
    cleanup.add(`stop ${server.name}`, () => server.stop());
    await server.start();
    log(`${server.name}: ${server.label} on 127.0.0.1:${server.port}`);
  }

  const context: TurnContext = {
    user,
    crowd,
    sizes,
    durationSeconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
    streamTransfers: options.streamTransfers,
    scratchDirectory: scratch,
  };
  const turns = new Map<string, Partial<Record<ServerName, RecordedTurn[]>>>();
  for (let round = 1; round <= options.rounds; round++) {
    // Who goes first alternates by round, so neither server always runs right after the other's writes.
    const order = round % 2 === 1 ? servers : [...servers].reverse();
    // Each round after the first starts from fresh servers, logged in and warm: the last round
    // ended with the users turns, whose hundreds of workers (and the spares their demand asks
    // for) would otherwise start and exit during this round's first turns, in their CPU figures.
    if (round > 1 && workloads.some((workload) => workload.users !== undefined))
      for (const server of servers) {
        if (interruption.requested) throw new Interrupted();
        await server.restartCold();
        await warmUp(server, context);
      }
    for (const workload of workloads) {
      for (const server of order) {
        if (workload.privdavOnly === true && server.name !== 'privdav') continue;
        if (interruption.requested) throw new Interrupted();
        const turn = await runTurn(workload, server, context, round);
        const byServer = turns.get(workload.id) ?? {};
        (byServer[server.name] ??= []).push(turn);
        turns.set(workload.id, byServer);
      }
    }
  }

  const privdav = servers.find((server): server is PrivdavServer => server instanceof PrivdavServer);
  const scaling =
    privdav === undefined || options.webProcesses.length === 0
      ? null
      : await runScaling(
          privdav,
          workloads.filter((workload) => workload.scales === true),
          context,
          options,
        );

  const workloadReports = workloads.map((workload) =>
    summarizeWorkload(workload, turns.get(workload.id) ?? {}),
  );
  const report: BenchReport = {
    metadata: {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      mode: options.mode,
      rounds: options.rounds,
      wrkSeconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
      streamTransfers: options.streamTransfers,
      host: os.hostname(),
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}`,
      kernel: `Linux ${os.release()}`,
      node: `Node ${process.version}`,
      apache: commandOutput('/usr/sbin/apache2', ['-v']).split('\n')[0].replace('Server version: ', ''),
      wrk: commandOutput('wrk', ['-v']).split('\n')[0].split(' Copyright')[0],
      curl: commandOutput('curl', ['--version']).split('\n')[0],
      servers: Object.fromEntries(servers.map((server) => [server.name, server.label])),
      loadAverageBefore,
      loadAverageAfter: loadAverage(),
    },
    workloads: workloadReports,
    memory: memoryVerdict(workloadReports),
    scaling,
    failures: [
      ...workloadReports.flatMap((workload) => workload.failures),
      ...(scaling?.rows ?? []).flatMap((row) =>
        row.turns.flatMap((turn) =>
          turn.failures.map(
            (failure) => `${row.title}, web_processes ${row.webProcesses}, round ${turn.round}: ${failure}`,
          ),
        ),
      ),
    ],
  };
  writeResults(options.output, startedAt, report);
  return report;
}

/** The machine the scaling figures are extrapolated to (issue 17). */
const estimateCores = 16;

/**
 * privdav alone at each server.web_processes count, restarted for each; within a round every count
 * runs once, the order alternating by round, so that a change of the machine's load mid-run falls
 * on all counts alike. Leaves privdav at the last count.
 */
async function runScaling(
  privdav: PrivdavServer,
  workloads: Workload[],
  context: TurnContext,
  options: Options,
): Promise<ScalingReport> {
  const turns = new Map<string, RecordedTurn[]>();
  for (let round = 1; round <= options.rounds; round++) {
    const counts = round % 2 === 1 ? options.webProcesses : [...options.webProcesses].reverse();
    for (const count of counts) {
      if (interruption.requested) throw new Interrupted();
      privdav.setWebProcesses(count);
      await privdav.restartCold();
      log(`web_processes = ${count}`);
      await warmUp(privdav, context);
      for (const workload of workloads) {
        if (interruption.requested) throw new Interrupted();
        const turn = await runTurn(workload, privdav, context, round, `web_processes ${count}`);
        const key = `${workload.id} ${count}`;
        turns.set(key, [...(turns.get(key) ?? []), turn]);
      }
    }
  }
  return scalingReport(
    workloads,
    options.webProcesses,
    (workload, count) => turns.get(`${workload.id} ${count}`) ?? [],
    estimateCores,
  );
}

async function runTurn(
  workload: Workload,
  server: BenchServer,
  context: TurnContext,
  round: number,
  variant = '',
): Promise<RecordedTurn> {
  const sampler = new ProcessMemorySampler(
    () => server.rootPid(),
    (facts) => server.roleOf(facts),
  );
  const cpu = new ProcessCpuMeter(
    () => server.rootPid(),
    (facts) => server.roleOf(facts),
  );
  sampler.start();
  let recorded: RecordedTurn;
  try {
    const result = await workload.run(server, { ...context, cpu });
    recorded = { ...result, round, processes: sampler.stop(), cpu: cpu.result() };
  } catch (error) {
    const message = (error as Error).message;
    recorded = {
      value: 0,
      p50Ms: null,
      p99Ms: null,
      failures: [message],
      notes: [],
      round,
      processes: sampler.stop(),
      cpu: null,
    };
    // A server that died (or failed to restart after a cold-start turn) gets one more chance, so one
    // crash shows as a failure of its workload rather than of every workload after it.
    if (server.rootPid() === null && !interruption.requested) {
      await server
        .start()
        .catch((restartError: Error) => recorded.failures.push(`restart failed: ${restartError.message}`));
    }
  }
  // Dirty pages from a PUT are written back now, not during the next turn.
  execFileSync('sync');
  const failed = recorded.failures.length > 0 ? `  FAILED: ${recorded.failures.join('; ')}` : '';
  const units = recorded.cpuUnits ?? 0;
  const cpuText =
    recorded.cpu === null || workload.cpuPer === null || units <= 0
      ? ''
      : `, CPU ${formatNumber(recorded.cpu.serverMicros / units)} µs/${workload.cpuPer}`;
  const where = variant === '' ? server.name : `${server.name} ${variant}`;
  log(
    `round ${round} ${workload.title} ${where}: ${formatNumber(recorded.value)} ${workload.unit}${cpuText}${failed}`,
  );
  return recorded;
}

function writeResults(directory: string, startedAt: Date, report: BenchReport): void {
  fs.mkdirSync(directory, { recursive: true });
  const base = path.join(directory, timestamp(startedAt));
  const markdown = renderMarkdown(report);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(`${base}.md`, markdown);
  fs.writeFileSync(`${base}.svg`, renderChart(report));
  process.stdout.write(`\n${markdown}\nWritten: ${base}.json, ${base}.md, ${base}.svg\n`);
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
