// Turns the per-round figures into the report: medians, the privdav/Apache ratio, targets met or
// missed, noise flags, peak memory per privdav process role; and writes it as JSON and Markdown.
import { CpuSpan } from './process-cpu';
import { ProcessPeak, peakByRole } from './process-memory';
import { ServerName } from './bench-server';
import { CpuUnit, TurnResult, Workload, percentile } from './workloads';

/** A workload is flagged noisy when a server's figures over the rounds spread more than this around their median. */
export const noisySpread = 0.15;
export const memoryTargets = { web: 150 * 1024 * 1024, worker: 60 * 1024 * 1024 };

export interface RecordedTurn extends TurnResult {
  round: number;
  processes: ProcessPeak[];
  /** The server's CPU over the turn's load; null when not measured. */
  cpu: CpuSpan | null;
}

/** CPU time per unit of work (request, entry, MiB, user), pooled over the rounds: Σ time / Σ units. */
export interface CpuFigure {
  per: CpuUnit;
  /** All of the server's processes. */
  serverMicros: number;
  /** Clock ticks the figure rests on, all rounds together (see coarseTicks). */
  ticks: number;
  /** By role (privdav: monitor / web / worker; Apache: parent / child). */
  byRoleMicros: Record<string, number>;
  /** wrk or curl, and the bench process, per unit. */
  clientMicros: number;
  /** The load generator's share of server + client CPU. */
  clientShare: number;
  /** Busy time of the machine that was neither server nor client, over the machine's capacity. */
  otherBusyShare: number;
  /** Context switches on the whole machine per unit (undefined in reports written before it was counted). */
  contextSwitches?: number;
  /** The server's time in the kernel (stime), µs per unit (undefined in older reports). */
  systemMicros?: number;
  /** The same by role (undefined in older reports). */
  byRoleSystemMicros?: Record<string, number>;
}

export interface ServerSummary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median over the rounds; null with a single round. */
  spread: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  peakRssBytesByRole: Record<string, number>;
  /** Peak RssAnon per role: memory the process holds alone (VmRSS minus shared file pages). */
  peakPrivateBytesByRole: Record<string, number>;
  cpu: CpuFigure | null;
}

export interface WorkloadReport extends Pick<
  Workload,
  'id' | 'title' | 'unit' | 'better' | 'ratioTarget' | 'maximumTarget'
> {
  turns: Partial<Record<ServerName, RecordedTurn[]>>;
  privdav: ServerSummary | null;
  apache: ServerSummary | null;
  /** privdav/Apache for throughputs, Apache/privdav for times: > 1 means privdav ahead. */
  ratio: number | null;
  /** Apache's CPU per unit over privdav's: > 1 means privdav spends less. */
  cpuRatio: number | null;
  /** null when the workload has no target or a figure is missing. */
  met: boolean | null;
  noisy: boolean;
  failures: string[];
}

export interface RunMetadata {
  startedAt: string;
  finishedAt: string;
  mode: string;
  rounds: number;
  wrkSeconds: number;
  /** Unmeasured wrk run of the same load before each wrk turn. */
  warmupSeconds: number;
  streamTransfers: number;
  host: string;
  cpus: string;
  kernel: string;
  node: string;
  apache: string;
  wrk: string;
  curl: string;
  servers: Partial<Record<ServerName, string>>;
  loadAverageBefore: string;
  loadAverageAfter: string;
}

/** One workload at one server.web_processes count (privdav only). */
export interface ScalingRow {
  id: string;
  title: string;
  webProcesses: number;
  turns: RecordedTurn[];
  /** The figure is req/s. */
  summary: ServerSummary | null;
  estimate: ThroughputEstimate | null;
}

export interface ScalingReport {
  counts: number[];
  /** The machine the estimates are for. */
  estimateCores: number;
  rows: ScalingRow[];
  /**
   * Each workload's figures at the smallest count measured, for as many web processes as the
   * estimate's cores: here, more web processes than cores only share the two cores (and wrk), which
   * inflates their CPU per request; the single process's figures are the better guide.
   */
  extrapolated: Array<{ id: string; title: string; fromWebProcesses: number; estimate: ThroughputEstimate }>;
}

/** A predicted rate and what sets it. */
export interface EstimatedRate {
  requestsPerSecond: number;
  bound: string;
}

/** What CPU time per request predicts on a machine with more cores. */
export interface ThroughputEstimate {
  /** The bench's load: one user, so their one worker is a bound too. */
  oneUser: EstimatedRate;
  /** Many users, a worker each: only the cores, the web processes and the monitor bound it. */
  manyUsers: EstimatedRate;
}

export interface BenchReport {
  metadata: RunMetadata;
  workloads: WorkloadReport[];
  /** The --web-processes runs, when asked for. */
  scaling: ScalingReport | null;
  memory: {
    webPeakBytes: number | null;
    workerPeakBytes: number | null;
    webPrivatePeakBytes: number | null;
    workerPrivatePeakBytes: number | null;
    webMet: boolean | null;
    workerMet: boolean | null;
  };
  failures: string[];
}

function median(values: number[]): number {
  return percentile(values, 50) as number;
}

/** Median of the even-rank kind: the mean of the two middle values for an even count. */
function centralMedian(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Σ over the turns of a by-role figure, per unit. */
function perUnitByRole(
  measured: RecordedTurn[],
  units: number,
  of: (span: CpuSpan) => Record<string, number>,
): Record<string, number> {
  const byRole: Record<string, number> = {};
  for (const turn of measured) {
    for (const [role, micros] of Object.entries(of(turn.cpu as CpuSpan)))
      byRole[role] = (byRole[role] ?? 0) + micros / units;
  }
  return byRole;
}

/** Pools the rounds' CPU windows; null when none was measured or no unit was served. */
export function cpuFigure(turns: RecordedTurn[], per: CpuUnit | null): CpuFigure | null {
  const measured = turns.filter((turn) => turn.cpu !== null && (turn.cpuUnits ?? 0) > 0);
  if (per === null || measured.length === 0) return null;
  const sum = (of: (span: CpuSpan) => number): number =>
    measured.reduce((total, turn) => total + of(turn.cpu as CpuSpan), 0);
  const units = measured.reduce((total, turn) => total + (turn.cpuUnits as number), 0);
  const server = sum((span) => span.serverMicros);
  const client = sum((span) => span.clientMicros);
  const other = sum((span) => span.machineBusyMicros) - server - client;
  return {
    per,
    serverMicros: server / units,
    ticks: sum((span) => span.serverTicks),
    byRoleMicros: perUnitByRole(measured, units, (span) => span.byRoleMicros),
    clientMicros: client / units,
    clientShare: server + client > 0 ? client / (server + client) : 0,
    otherBusyShare: Math.max(0, other) / sum((span) => span.machineCapacityMicros),
    // Spans from reports written before these were counted lack them: no figure rather than 0.
    contextSwitches: measured.every((turn) => turn.cpu?.machineContextSwitches !== undefined)
      ? sum((span) => span.machineContextSwitches) / units
      : undefined,
    systemMicros: measured.every((turn) => turn.cpu?.serverSystemMicros !== undefined)
      ? sum((span) => span.serverSystemMicros) / units
      : undefined,
    byRoleSystemMicros: measured.every((turn) => turn.cpu?.byRoleSystemMicros !== undefined)
      ? perUnitByRole(measured, units, (span) => span.byRoleSystemMicros)
      : undefined,
  };
}

function summarize(turns: RecordedTurn[] | undefined, cpuPer: CpuUnit | null): ServerSummary | null {
  if (turns === undefined || turns.length === 0) return null;
  const values = turns.map((turn) => turn.value);
  const middle = centralMedian(values);
  const p50 = turns.flatMap((turn) => (turn.p50Ms === null ? [] : [turn.p50Ms]));
  const p99 = turns.flatMap((turn) => (turn.p99Ms === null ? [] : [turn.p99Ms]));
  const min = Math.min(...values);
  const max = Math.max(...values);
  return {
    median: middle,
    min,
    max,
    spread: turns.length < 2 || middle === 0 ? null : (max - min) / middle,
    p50Ms: p50.length > 0 ? median(p50) : null,
    p99Ms: p99.length > 0 ? median(p99) : null,
    peakRssBytesByRole: peakByRole(turns.flatMap((turn) => turn.processes)),
    peakPrivateBytesByRole: peakByRole(
      turns.flatMap((turn) => turn.processes),
      'private',
    ),
    cpu: cpuFigure(turns, cpuPer),
  };
}

export function summarizeWorkload(
  workload: Workload,
  turns: Partial<Record<ServerName, RecordedTurn[]>>,
): WorkloadReport {
  const privdav = summarize(turns.privdav, workload.cpuPer);
  const apache = summarize(turns.apache, workload.cpuPer);
  let ratio: number | null = null;
  if (privdav !== null && apache !== null && privdav.median > 0 && apache.median > 0) {
    ratio = workload.better === 'higher' ? privdav.median / apache.median : apache.median / privdav.median;
  }
  const privdavCpu = privdav?.cpu ?? null;
  const apacheCpu = apache?.cpu ?? null;
  const cpuRatio =
    privdavCpu !== null && apacheCpu !== null && privdavCpu.serverMicros > 0 && apacheCpu.serverMicros > 0
      ? apacheCpu.serverMicros / privdavCpu.serverMicros
      : null;
  let met: boolean | null = null;
  if (workload.ratioTarget !== null && ratio !== null) met = ratio >= workload.ratioTarget;
  if (workload.maximumTarget !== null && privdav !== null) met = privdav.median <= workload.maximumTarget;
  const failures: string[] = [];
  for (const [server, list] of Object.entries(turns)) {
    for (const turn of list ?? []) {
      for (const failure of turn.failures)
        failures.push(`${workload.title}, ${server}, round ${turn.round}: ${failure}`);
    }
  }
  return {
    id: workload.id,
    title: workload.title,
    unit: workload.unit,
    better: workload.better,
    ratioTarget: workload.ratioTarget,
    maximumTarget: workload.maximumTarget,
    turns,
    privdav,
    apache,
    ratio,
    cpuRatio,
    met,
    noisy: (privdav?.spread ?? 0) > noisySpread || (apache?.spread ?? 0) > noisySpread,
    failures,
  };
}

/**
 * Requests per second on `cores` cores if only CPU limits, the load generator running elsewhere:
 * all the server's CPU time spread over the cores, but no more than each process that is one of
 * its kind can do alone — one event loop, so about one core: the monitor, the one worker of the
 * bench's single user, and the web processes, `webProcesses` of them. Apache has no such parts
 * (its threads are many): pass webProcesses null.
 */
export function estimateThroughput(
  cpu: CpuFigure,
  cores: number,
  webProcesses: number | null,
): ThroughputEstimate | null {
  if (cpu.per !== 'request' || cpu.serverMicros <= 0) return null;
  const bounds: EstimatedRate[] = [
    { bound: `${cores} cores`, requestsPerSecond: (cores * 1e6) / cpu.serverMicros },
  ];
  let worker: EstimatedRate | null = null;
  if (webProcesses !== null) {
    const role = (name: string): number => cpu.byRoleMicros[name] ?? 0;
    const processes = Math.min(webProcesses, cores);
    const web = processes === 1 ? '1 web process' : `${processes} web processes`;
    if (role('web') > 0) bounds.push({ bound: web, requestsPerSecond: (processes * 1e6) / role('web') });
    if (role('monitor') > 0) bounds.push({ bound: 'the monitor', requestsPerSecond: 1e6 / role('monitor') });
    if (role('worker') > 0) worker = { bound: 'the worker', requestsPerSecond: 1e6 / role('worker') };
  }
  const lowest = (rates: EstimatedRate[]): EstimatedRate =>
    rates.reduce((low, next) => (next.requestsPerSecond < low.requestsPerSecond ? next : low));
  const manyUsers = lowest(bounds);
  return { oneUser: worker === null ? manyUsers : lowest([...bounds, worker]), manyUsers };
}

/** The scaling runs' report: each workload at each count, and the extrapolation to estimateCores. */
export function scalingReport(
  workloads: Workload[],
  counts: number[],
  turnsOf: (workload: Workload, count: number) => RecordedTurn[],
  estimateCores: number,
): ScalingReport {
  const rows = workloads.flatMap((workload) =>
    counts.map((webProcesses): ScalingRow => {
      const summary = summarize(turnsOf(workload, webProcesses), workload.cpuPer);
      const cpu = summary?.cpu ?? null;
      return {
        id: workload.id,
        title: workload.title,
        webProcesses,
        turns: turnsOf(workload, webProcesses),
        summary,
        estimate: cpu === null ? null : estimateThroughput(cpu, estimateCores, webProcesses),
      };
    }),
  );
  const fromWebProcesses = Math.min(...counts);
  const extrapolated = rows.flatMap((row) => {
    const cpu = row.summary?.cpu ?? null;
    const estimate =
      row.webProcesses !== fromWebProcesses || cpu === null
        ? null
        : estimateThroughput(cpu, estimateCores, estimateCores);
    return estimate === null ? [] : [{ id: row.id, title: row.title, fromWebProcesses, estimate }];
  });
  return { counts, estimateCores, rows, extrapolated };
}

export function memoryVerdict(workloads: WorkloadReport[]): BenchReport['memory'] {
  const peakOf = (role: string, of: 'peakRssBytesByRole' | 'peakPrivateBytesByRole'): number | null => {
    const values = workloads.flatMap((workload) => {
      const bytes = workload.privdav?.[of]?.[role];
      return bytes === undefined ? [] : [bytes];
    });
    return values.length > 0 ? Math.max(...values) : null;
  };
  const webPeakBytes = peakOf('web', 'peakRssBytesByRole');
  const workerPeakBytes = peakOf('worker', 'peakRssBytesByRole');
  return {
    webPeakBytes,
    workerPeakBytes,
    webPrivatePeakBytes: peakOf('web', 'peakPrivateBytesByRole'),
    workerPrivatePeakBytes: peakOf('worker', 'peakPrivateBytesByRole'),
    webMet: webPeakBytes === null ? null : webPeakBytes <= memoryTargets.web,
    workerMet: workerPeakBytes === null ? null : workerPeakBytes <= memoryTargets.worker,
  };
}

export function formatNumber(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en');
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function mebibytes(bytes: number | undefined): string {
  return bytes === undefined ? '–' : `${Math.round(bytes / (1 << 20))}`;
}

function verdict(met: boolean | null): string {
  return met === null ? '' : met ? 'met' : '**missed**';
}

function targetText(workload: WorkloadReport): string {
  if (workload.ratioTarget !== null) return `≥ ${workload.ratioTarget.toFixed(1)}`;
  if (workload.maximumTarget !== null) return `≤ ${workload.maximumTarget} ${workload.unit}`;
  return '';
}

export function renderMarkdown(report: BenchReport): string {
  const { metadata } = report;
  const lines: string[] = [
    `# privdav beside Apache mod_dav_fs — ${metadata.startedAt}`,
    '',
    `${metadata.mode}, ${metadata.rounds} round(s), wrk ${metadata.wrkSeconds} s per turn ` +
      `(after ${metadata.warmupSeconds ?? 0} s of the same load, unmeasured), ` +
      `${metadata.streamTransfers} transfer(s) per big-stream turn; servers alternate turns within each round.`,
    `Host: ${metadata.host}, ${metadata.cpus}, ${metadata.kernel}; ${metadata.node}; ${metadata.apache}; ${metadata.wrk}.`,
    `privdav: ${metadata.servers.privdav ?? 'not run'}. Apache: ${metadata.servers.apache ?? 'not run'}.`,
    `Load average before / after: ${metadata.loadAverageBefore} / ${metadata.loadAverageAfter}.`,
    '',
    'Ratio > 1 means privdav is ahead (for times, Apache/privdav). Figures are medians over rounds; ' +
      `"noisy" marks a spread between rounds above ${noisySpread * 100}% (min–max over median, privdav / Apache).`,
    '',
    '| workload | unit | privdav | Apache | ratio | target | | privdav p50 / p99 ms | privdav peak RSS MiB monitor / web / worker | spread |',
    '|---|---|--:|--:|--:|--:|---|--:|--:|---|',
  ];
  for (const workload of report.workloads) {
    const { privdav, apache } = workload;
    const latency =
      privdav?.p50Ms === null || privdav?.p50Ms === undefined
        ? '–'
        : `${formatNumber(privdav.p50Ms)} / ${formatNumber(privdav.p99Ms ?? 0)}`;
    const rss = privdav?.peakRssBytesByRole;
    const memory =
      rss === undefined
        ? '–'
        : `${mebibytes(rss.monitor)} / ${mebibytes(rss.web)} / ${mebibytes(rss.worker)}`;
    const spreadText = (summary: ServerSummary | null): string =>
      summary?.spread === null || summary?.spread === undefined
        ? '–'
        : `${Math.round(summary.spread * 100)}%`;
    const spread = `${spreadText(privdav)} / ${spreadText(apache)}${workload.noisy ? ' noisy' : ''}`;
    lines.push(
      `| ${workload.title} | ${workload.unit} | ${privdav === null ? '–' : formatNumber(privdav.median)} | ` +
        `${apache === null ? '–' : formatNumber(apache.median)} | ${workload.ratio === null ? '–' : workload.ratio.toFixed(2)} | ` +
        `${targetText(workload)} | ${verdict(workload.met)} | ${latency} | ${memory} | ${spread} |`,
    );
  }
  const { memory } = report;
  lines.push(
    '',
    `Memory (peak VmRSS over all workloads, sampled every 100 ms): web process ${mebibytes(memory.webPeakBytes ?? undefined)} MiB ` +
      `(target ≤ ${memoryTargets.web / 1024 / 1024} MiB: ${verdict(memory.webMet) || 'not measured'}), ` +
      `worker ${mebibytes(memory.workerPeakBytes ?? undefined)} MiB ` +
      `(target ≤ ${memoryTargets.worker / 1024 / 1024} MiB: ${verdict(memory.workerMet) || 'not measured'}). ` +
      `Of that, private to the process (peak RssAnon; the rest is mostly the node binary's pages, shared ` +
      `by all processes): web ${mebibytes(memory.webPrivatePeakBytes ?? undefined)} MiB, ` +
      `worker ${mebibytes(memory.workerPrivatePeakBytes ?? undefined)} MiB.`,
  );
  lines.push(...cpuTable(report.workloads));
  lines.push(...scalingTable(report));
  lines.push(...usersTable(report));
  const noisy = report.workloads.filter((workload) => workload.noisy).map((workload) => workload.title);
  if (noisy.length > 0) {
    lines.push(
      '',
      `**Noisy** (spread > ${noisySpread * 100}%, do not trust these ratios alone): ${noisy.join('; ')}.`,
    );
  }
  const notes = report.workloads.flatMap((workload) =>
    Object.entries(workload.turns).flatMap(([server, turns]) =>
      (turns ?? []).flatMap((turn) =>
        turn.notes.map((note) => `${workload.title}, ${server}, round ${turn.round}: ${note}`),
      ),
    ),
  );
  for (const row of report.scaling?.rows ?? []) {
    for (const turn of row.turns)
      notes.push(
        ...turn.notes.map(
          (note) => `${row.title}, web_processes ${row.webProcesses}, round ${turn.round}: ${note}`,
        ),
      );
  }
  if (notes.length > 0) lines.push('', 'Notes:', ...notes.map((note) => `- ${note}`));
  if (report.failures.length > 0)
    lines.push('', '**Failures (wrong answers):**', ...report.failures.map((f) => `- ${f}`));
  lines.push('');
  return lines.join('\n');
}

const percent = (share: number): string => `${Math.round(share * 100)}`;

/**
 * Below this many clock ticks (10 ms each) in all, a CPU figure is marked "≈": every process's
 * times are truncated to a tick, so a few ticks are a few processes' rounding (a smoke run's short
 * turns, big streams that are mostly sendfile, the users bursts).
 */
export const coarseTicks = 50;

/** A CPU figure per unit, "≈" when it rests on few clock ticks. */
function cpuCell(cpu: CpuFigure | null | undefined): string {
  if (cpu === null || cpu === undefined) return '–';
  return `${cpu.ticks < coarseTicks ? '≈' : ''}${formatNumber(cpu.serverMicros)}`;
}

/** privdav's CPU per unit split by role, e.g. "12 / 180 / 95" (monitor / web / worker). */
export function roleSplit(cpu: CpuFigure): string {
  const role = (name: string): string => formatNumber(cpu.byRoleMicros[name] ?? 0);
  return `${role('monitor')} / ${role('web')} / ${role('worker')}`;
}

/**
 * CPU microseconds per unit of work for each server, privdav's by role: the figure that predicts
 * another machine (see bench/README.md), less blurred than req/s by wrk sharing the cores.
 */
function cpuTable(workloads: WorkloadReport[]): string[] {
  const rows = workloads.filter(
    (workload) => (workload.privdav?.cpu ?? workload.apache?.cpu ?? null) !== null,
  );
  if (rows.length === 0) return [];
  const shares = (workload: WorkloadReport, of: (cpu: CpuFigure) => number): string =>
    pair(workload, (cpu) => percent(of(cpu)));
  return [
    '',
    "CPU per unit of work (µs of utime + stime summed over all the server's processes during the load, " +
      'exited ones included, pooled over the rounds; Apache/privdav > 1: privdav spends less). ' +
      'Load generator: wrk or curl and the bench, as a share of server + load generator CPU. ' +
      "Other: the machine's busy time that was neither, as a share of all its CPUs (other work: noise). " +
      'Switches: context switches on the whole machine per unit (/proc/stat ctxt), load generator included: ' +
      'a request that wakes a sleeping process or thread pays for it in the kernel. ' +
      "Kernel: of the server's µs, those spent in the kernel (stime: system calls, the network stack); the rest ran in user space. " +
      `≈: fewer than ${coarseTicks} clock ticks in all (each process's time is truncated to 10 ms).`,
    '',
    '| workload | per | privdav µs | privdav monitor / web / worker | Apache µs | Apache/privdav | load generator % privdav / Apache | other % privdav / Apache | switches privdav / Apache | kernel µs privdav (web / worker) / Apache |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map((workload) => {
      const privdavCpu = workload.privdav?.cpu ?? null;
      const cpu = privdavCpu ?? workload.apache?.cpu;
      const roles = privdavCpu === null ? '–' : roleSplit(privdavCpu);
      return (
        `| ${workload.title} | ${cpu?.per ?? ''} | ${cpuCell(workload.privdav?.cpu)} | ${roles} | ` +
        `${cpuCell(workload.apache?.cpu)} | ${workload.cpuRatio === null ? '–' : workload.cpuRatio.toFixed(2)} | ` +
        `${shares(workload, (figure) => figure.clientShare)} | ${shares(workload, (figure) => figure.otherBusyShare)} | ` +
        `${pair(workload, (cpu) => optional(cpu.contextSwitches))} | ${pair(workload, kernelCell)} |`
      );
    }),
  ];
}

/** "privdav / Apache", each server's cell from its CPU figure ("–" where it has none). */
function pair(workload: WorkloadReport, cell: (cpu: CpuFigure, isPrivdav: boolean) => string): string {
  return [workload.privdav?.cpu, workload.apache?.cpu]
    .map((cpu, index) => (cpu === null || cpu === undefined ? '–' : cell(cpu, index === 0)))
    .join(' / ');
}

/** A figure older reports lack: "–" there. */
function optional(value: number | undefined): string {
  return value === undefined ? '–' : formatNumber(value);
}

/** Kernel µs per unit; privdav's with its web process's and worker's shares. */
function kernelCell(cpu: CpuFigure, isPrivdav: boolean): string {
  const byRole = cpu.byRoleSystemMicros;
  if (!isPrivdav || cpu.systemMicros === undefined || byRole === undefined) return optional(cpu.systemMicros);
  return `${formatNumber(cpu.systemMicros)} (${formatNumber(byRole.web ?? 0)} / ${formatNumber(byRole.worker ?? 0)})`;
}

/**
 * privdav at each web_processes count beside Apache (from the comparison, if it ran the workload):
 * req/s here, CPU per request, and what that predicts for a machine with more cores.
 */
function scalingTable(report: BenchReport): string[] {
  const { scaling } = report;
  if (scaling === null || scaling.rows.length === 0) return [];
  const cores = scaling.estimateCores;
  const lines = [
    '',
    `Several web processes (privdav only, server.web_processes = ${scaling.counts.join(', ')}; turns interleaved ` +
      `by round). Estimate: req/s on ${cores} cores if CPU alone limits and the load generator runs elsewhere — ` +
      `${cores} × 10⁶ / CPU µs per request, but no more than one core for each single process ` +
      '(the monitor, each web process, and for one user their one worker), with what sets it; ' +
      `"${cores} (µs of N)": ${cores} web processes costing what N did here. See bench/README.md.`,
    '',
    `| workload | web processes | req/s here | CPU µs/request | monitor / web / worker | other % | ${cores} cores, one user: req/s | ${cores} cores, many users: req/s |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  const rate = (estimate: ThroughputEstimate | null, of: 'oneUser' | 'manyUsers'): string =>
    estimate === null ? '–' : `${formatNumber(estimate[of].requestsPerSecond)} (${estimate[of].bound})`;
  const estimates = (estimate: ThroughputEstimate | null): string =>
    `${rate(estimate, 'oneUser')} | ${rate(estimate, 'manyUsers')}`;
  const ids = [...new Set(scaling.rows.map((row) => row.id))];
  for (const id of ids) {
    for (const row of scaling.rows.filter((candidate) => candidate.id === id)) {
      const cpu = row.summary?.cpu ?? null;
      lines.push(
        `| ${row.title} | ${row.webProcesses} | ${row.summary === null ? '–' : formatNumber(row.summary.median)} | ` +
          `${cpuCell(cpu)} | ${cpu === null ? '–' : roleSplit(cpu)} | ${cpu === null ? '–' : percent(cpu.otherBusyShare)} | ` +
          `${estimates(row.estimate)} |`,
      );
    }
    for (const row of scaling.extrapolated.filter((candidate) => candidate.id === id)) {
      lines.push(
        `| ${row.title} | ${cores} (µs of ${row.fromWebProcesses}) | – | – | – | – | ${estimates(row.estimate)} |`,
      );
    }
    const compared = report.workloads.find((workload) => workload.id === id);
    const apache = compared?.apache ?? null;
    if (compared !== undefined && apache !== null && apache.cpu !== null) {
      const estimate = estimateThroughput(apache.cpu, cores, null);
      lines.push(
        `| ${compared.title} | Apache | ${formatNumber(apache.median)} | ${cpuCell(apache.cpu)} | – | ${percent(apache.cpu.otherBusyShare)} | ` +
          `${estimates(estimate)} |`,
      );
    }
  }
  return lines;
}

/**
 * The "users" workloads side by side: N first requests at once, their p50 / p99 (median over
 * rounds), answers other than 207, and the peak total private memory (RssAnon) of each server's
 * whole process tree.
 */
function usersTable(report: BenchReport): string[] {
  const rows = report.workloads.filter((workload) => workload.id.startsWith('users-'));
  if (rows.length === 0) return [];
  const cell = (turns: RecordedTurn[] | undefined): string => {
    if (turns === undefined || turns.length === 0) return '– | – | –';
    const p50 = median(turns.map((turn) => turn.p50Ms ?? 0));
    const p99 = median(turns.map((turn) => turn.p99Ms ?? 0));
    const errors = Math.max(...turns.map((turn) => turn.users?.errors ?? 0));
    const memory = median(turns.map((turn) => turn.users?.peakTotalPrivateBytes ?? 0));
    return `${formatNumber(p50)} / ${formatNumber(p99)} | ${errors} | ${mebibytes(memory)}`;
  };
  return [
    '',
    "Users (first requests at once after a restart; errors: answers other than 207, worst round; memory: peak total RssAnon of all the server's processes):",
    '',
    '| N | privdav p50 / p99 ms | errors | private MiB | Apache p50 / p99 ms | errors | private MiB |',
    '|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (workload) =>
        `| ${workload.id.slice('users-'.length)} | ${cell(workload.turns.privdav)} | ${cell(workload.turns.apache)} |`,
    ),
  ];
}
