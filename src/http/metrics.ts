// The web process's Prometheus metrics and /healthz, served on the metrics listeners the monitor
// bound for it (never the WebDAV port). Request counters are its own; logins, workers and memory
// are the monitor's, which arrive with each ping over the channel (the monitor serves no HTTP).

import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { LOGIN_RESULTS, type MonitorStats } from '../../common/protocol';
import { fileBodyBytes } from './send-file';

/** Methods counted by name; anything else (a client's invention) is "other", so labels stay few. */
const KNOWN_METHODS = new Set([
  'OPTIONS',
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'MKCOL',
  'COPY',
  'MOVE',
  'PROPFIND',
  'PROPPATCH',
  'LOCK',
  'UNLOCK',
  'POST',
  'PATCH',
]);
/** A monitor silent for this long is not answering (it pings every 2 s at most). */
const MONITOR_SILENT_MS = 10_000;
const HEALTH_CHECK_MS = 2_000;

export function methodLabel(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : 'other';
}

export interface MetricsSources {
  /** Open client connections on the WebDAV listeners. */
  connections(): Promise<number>;
  /** Unexpired locks; rejects when the lock database does not answer. */
  locks(): Promise<number>;
}

/** Escapes a label value for the text exposition format. */
function labelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/**
 * A histogram with one label, counted with plain arithmetic on every request and written out in
 * the Prometheus text format only when scraped: prom-client's observe() validates and hashes the
 * labels each time, several microseconds of every request's cost in the shared web process.
 */
class RequestHistogram {
  readonly #series = new Map<string, { buckets: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly label: string,
    readonly bounds: readonly number[],
  ) {}

  observe(labelValue: string, value: number): void {
    let series = this.#series.get(labelValue);
    if (series === undefined) {
      series = { buckets: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.#series.set(labelValue, series);
    }
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        series.buckets[i]!++;
        break;
      }
    }
    series.sum += value;
    series.count++;
  }

  /** The exposition text: cumulative buckets, +Inf, _sum and _count per label value. */
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [value, series] of this.#series) {
      const label = `${this.label}="${labelValue(value)}"`;
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += series.buckets[i]!;
        lines.push(`${this.name}_bucket{le="${bound}",${label}} ${cumulative}`);
      });
      lines.push(`${this.name}_bucket{le="+Inf",${label}} ${series.count}`);
      lines.push(`${this.name}_sum{${label}} ${series.sum}`);
      lines.push(`${this.name}_count{${label}} ${series.count}`);
    }
    return lines.join('\n');
  }
}

export class SiteMetrics {
  readonly registry = new Registry();
  /** Answered requests by "METHOD status" (the counter's labels, joined). */
  readonly #requests = new Map<string, number>();
  readonly #bytes = { in: 0, out: 0 };
  readonly #duration = new RequestHistogram(
    'privdav_http_request_duration_seconds',
    'Time from a request arriving to its response being sent, by method',
    'method',
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  readonly #channelCalls = new RequestHistogram(
    'privdav_channel_call_duration_seconds',
    'Round trips to the monitor and the workers, by operation',
    'op',
    [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  );
  readonly #sources: MetricsSources;
  #monitor: MonitorStats | null = null;
  #monitorSeenAt = 0;
  /** Requests answered since start: the pong carries it, STATUS= shows the rate. */
  answered = 0;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    const registers = [this.registry];
    const requests = this.#requests;
    new Counter({
      name: 'privdav_http_requests_total',
      help: 'HTTP requests answered, by method and status',
      labelNames: ['method', 'status'],
      registers,
      collect() {
        this.reset();
        for (const [key, count] of requests) {
          const space = key.indexOf(' ');
          this.inc({ method: key.slice(0, space), status: key.slice(space + 1) }, count);
        }
      },
    });
    const bytes = this.#bytes;
    new Counter({
      name: 'privdav_http_bytes_total',
      help: 'Bytes on client connections (headers included), by direction (in, out)',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        this.inc({ direction: 'in' }, bytes.in);
        this.inc({ direction: 'out' }, bytes.out);
      },
    });
    new Counter({
      name: 'privdav_file_body_bytes_total',
      help: 'Response body bytes written into client sockets straight from files, by way (sendfile; copy: written from a mapping, to clients on this host)',
      labelNames: ['way'],
      registers,
      collect() {
        this.reset();
        this.inc({ way: 'sendfile' }, fileBodyBytes.sendfile);
        this.inc({ way: 'copy' }, fileBodyBytes.copy);
      },
    });
    const monitorStats = (): MonitorStats | null => this.#monitor;
    new Counter({
      name: 'privdav_logins_total',
      help: 'Logins the monitor answered, by result (ok, wrong, refused, backoff, overload)',
      labelNames: ['result'],
      registers,
      collect() {
        const stats = monitorStats();
        this.reset();
        if (stats === null) return;
        for (const result of LOGIN_RESULTS) this.inc({ result }, stats.logins[result]);
      },
    });
    new Gauge({
      name: 'privdav_workers',
      help: 'User worker processes running (one per active user)',
      registers,
      collect() {
        this.set(monitorStats()?.workers ?? 0);
      },
    });
    new Counter({
      name: 'privdav_worker_starts_total',
      help: 'User worker processes started since the daemon started',
      registers,
      collect() {
        this.reset();
        this.inc(monitorStats()?.workerStarts ?? 0);
      },
    });
    new Gauge({
      name: 'privdav_resident_memory_bytes',
      help: 'Resident memory (VmRSS) by role, summed over the processes of that role',
      labelNames: ['role'],
      registers,
      collect() {
        const memory = monitorStats()?.residentBytes;
        if (memory === undefined) return;
        for (const role of ['monitor', 'web', 'worker'] as const) this.set({ role }, memory[role]);
      },
    });
    new Gauge({
      name: 'privdav_locks',
      help: 'WebDAV locks held (unexpired)',
      registers,
      async collect() {
        // A database that does not answer is /healthz's to report; the scrape still succeeds.
        this.set(await sources.locks().catch(() => Number.NaN));
      },
    });
    new Gauge({
      name: 'privdav_connections',
      help: 'Open client connections on the WebDAV listeners',
      registers,
      async collect() {
        this.set(await sources.connections());
      },
    });
  }

  observeRequest(
    method: string | undefined,
    status: number,
    seconds: number,
    bytesIn: number,
    bytesOut: number,
  ): void {
    const label = methodLabel(method);
    this.answered++;
    const key = `${label} ${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    this.#duration.observe(label, seconds);
    this.#bytes.in += bytesIn;
    this.#bytes.out += bytesOut;
  }

  observeChannelCall(op: string, seconds: number): void {
    this.#channelCalls.observe(op, seconds);
  }

  /** The whole exposition: prom-client's metrics, then the histograms counted here. */
  async exposition(): Promise<string> {
    const registered = await this.registry.metrics();
    return `${registered}\n${this.#duration.render()}\n\n${this.#channelCalls.render()}\n`;
  }

  setMonitorStats(stats: MonitorStats): void {
    this.#monitor = stats;
    this.#monitorSeenAt = Date.now();
  }

  /** Null when healthy, else what does not answer. */
  async healthProblem(): Promise<string | null> {
    if (Date.now() - this.#monitorSeenAt > MONITOR_SILENT_MS) return 'the monitor channel is silent';
    try {
      await withDeadline(this.#sources.locks(), HEALTH_CHECK_MS);
    } catch (error) {
      return `the lock database does not answer: ${(error as Error).message}`;
    }
    return null;
  }

  /** An HTTP server for the metrics listeners: GET /metrics and /healthz, nothing else. */
  createServer(): http.Server {
    const server = http.createServer({ maxHeaderSize: 8192 }, (req, res) => {
      void this.#answer(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`${(error as Error).message}\n`);
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5_000;
    return server;
  }

  async #answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      return void res.end('405 Method not allowed\n');
    }
    if (path === '/metrics') {
      const body = await this.exposition();
      res.writeHead(200, { 'Content-Type': this.registry.contentType });
      return void res.end(req.method === 'HEAD' ? undefined : body);
    }
    if (path === '/healthz') {
      const problem = await this.healthProblem();
      res.writeHead(problem === null ? 200 : 503, { 'Content-Type': 'text/plain' });
      return void res.end(req.method === 'HEAD' ? undefined : `${problem ?? 'ok'}\n`);
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('404 Not found: /metrics or /healthz\n');
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}
