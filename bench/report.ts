// Turns the per-round figures into the report: medians, the privdav/Apache ratio, targets met or
// missed, noise flags, peak memory per privdav process role; and writes it as JSON and Markdown.
import { ProcessPeak, peakByRole } from './process-memory';
import { ServerName } from './bench-server';
import { TurnResult, Workload, percentile } from './workloads';

/** A workload is flagged noisy when a server's figures over the rounds spread more than this around their median. */
export const noisySpread = 0.15;
export const memoryTargets = { web: 150 * 1024 * 1024, worker: 60 * 1024 * 1024 };

export interface RecordedTurn extends TurnResult {
  round: number;
  processes: ProcessPeak[];
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

export interface BenchReport {
  metadata: RunMetadata;
  workloads: WorkloadReport[];
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

function summarize(turns: RecordedTurn[] | undefined): ServerSummary | null {
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
  };
}

export function summarizeWorkload(
  workload: Workload,
  turns: Partial<Record<ServerName, RecordedTurn[]>>,
): WorkloadReport {
  const privdav = summarize(turns.privdav);
  const apache = summarize(turns.apache);
  let ratio: number | null = null;
  if (privdav !== null && apache !== null && privdav.median > 0 && apache.median > 0) {
    ratio = workload.better === 'higher' ? privdav.median / apache.median : apache.median / privdav.median;
  }
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
    met,
    noisy: (privdav?.spread ?? 0) > noisySpread || (apache?.spread ?? 0) > noisySpread,
    failures,
  };
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
    `${metadata.mode}, ${metadata.rounds} round(s), wrk ${metadata.wrkSeconds} s per turn, ` +
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
  if (notes.length > 0) lines.push('', 'Notes:', ...notes.map((note) => `- ${note}`));
  if (report.failures.length > 0)
    lines.push('', '**Failures (wrong answers):**', ...report.failures.map((f) => `- ${f}`));
  lines.push('');
  return lines.join('\n');
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
