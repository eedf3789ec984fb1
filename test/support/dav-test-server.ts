// A real node:http server running the WebDAV handler over LocalStorage on a temporary directory,
// with a fresh SqliteLockStore: what the protocol core's unit tests and litmus talk to.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Storage } from '../../common/storage';
import { LocalStorage } from '../../helper/local-storage';
import { createDavHandler, type DavOptions } from '../../src/dav/handler';
import { SqliteLockStore } from '../../src/dav/lock-store';

export interface DavTestServer {
  /** http://127.0.0.1:PORT */
  origin: string;
  port: number;
  /** The directory served as "/". */
  root: string;
  lockStore: SqliteLockStore;
  /** Things the handler logged at warn or error level (tests assert there were none). */
  problems: string[];
  close(): Promise<void>;
}

export interface DavTestServerOptions extends Partial<Omit<DavOptions, 'lockStore'>> {
  /** Serve this Storage instead of a LocalStorage on `root` (e.g. a PrivsepStorage to a real worker). */
  storage?: Storage;
  /** Reuse a lock database (to prove locks survive a restart). */
  lockFile?: string;
  /** Serve this directory instead of a fresh temporary one. */
  root?: string;
}

/** Requests name their principal in this header (default "alice"): lock ownership needs two. */
export const PRINCIPAL_HEADER = 'x-test-principal';

export async function startDavTestServer(options: DavTestServerOptions = {}): Promise<DavTestServer> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-dav-'));
  const root = options.root ?? path.join(scratch, 'share');
  fs.mkdirSync(root, { recursive: true });
  const lockStore = new SqliteLockStore(options.lockFile ?? path.join(scratch, 'locks.sqlite'));
  const storage = options.storage ?? new LocalStorage({ layout: { kind: 'home', root }, durable: false });
  const problems: string[] = [];
  const handler = createDavHandler({
    lockStore,
    maxXmlBytes: options.maxXmlBytes ?? 1024 * 1024,
    maxInfinityEntries: options.maxInfinityEntries ?? 10000,
    maxPropfindProperties: options.maxPropfindProperties ?? 200,
    contentOrigin: options.contentOrigin ?? null,
    maxLockTimeoutS: options.maxLockTimeoutS ?? 3600,
    maxLockOwnerBytes: options.maxLockOwnerBytes ?? 4096,
    lockBounds: options.lockBounds ?? {
      maxPerPrincipal: 1000,
      maxPerResource: 64,
      maxStoreBytes: 256 * 1024 * 1024,
    },
    maxUploadBytes: options.maxUploadBytes ?? 0,
    publicUrl: options.publicUrl ?? null,
    hide: options.hide ?? [],
    log: (level, message, fields) => {
      if (level === 'warn' || level === 'error') problems.push(`${message} ${JSON.stringify(fields ?? {})}`);
    },
  });
  const server = http.createServer((req, res) => {
    const principal = req.headers[PRINCIPAL_HEADER];
    void handler(req, res, { storage, principal: typeof principal === 'string' ? principal : 'alice' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    root,
    lockStore,
    problems,
    async close(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      lockStore.close();
      fs.rmSync(scratch, { recursive: true, force: true });
    },
  };
}

export interface DavResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface DavRequestOptions {
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** One request on a fresh connection; `rawPath` is sent exactly as given (no URL normalisation). */
export function davRequest(
  server: DavTestServer,
  method: string,
  rawPath: string,
  options: DavRequestOptions = {},
): Promise<DavResponse> {
  return new Promise<DavResponse>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method, path: rawPath, headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A lockinfo body for LOCK. */
export function lockBody(scope: 'exclusive' | 'shared', owner = 'tester'): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">' +
    `<D:lockscope><D:${scope}/></D:lockscope><D:locktype><D:write/></D:locktype>` +
    `<D:owner>${owner}</D:owner></D:lockinfo>`
  );
}

/** Takes a lock and returns its token (without the angle brackets). */
export async function takeLock(
  server: DavTestServer,
  rawPath: string,
  scope: 'exclusive' | 'shared' = 'exclusive',
  headers: Record<string, string> = {},
): Promise<string> {
  const res = await davRequest(server, 'LOCK', rawPath, { headers, body: lockBody(scope) });
  const token = /^<(.+)>$/.exec(String(res.headers['lock-token'] ?? ''));
  if ((res.status !== 200 && res.status !== 201) || token === null) {
    throw new Error(`LOCK ${rawPath} gave ${res.status}: ${res.body}`);
  }
  return token[1];
}

export const LITMUS = '/usr/bin/litmus';

export interface LitmusSummary {
  run: number;
  passed: number;
  failed: number;
  warnings: number;
  /** The `<- summary for …` lines, for reports. */
  lines: string[];
}

/** Reads litmus's per-suite summary lines and its warning counts. */
export function parseLitmusOutput(output: string): LitmusSummary {
  const summary: LitmusSummary = { run: 0, passed: 0, failed: 0, warnings: 0, lines: [] };
  const suites = /<- summary for `[^']+': of (\d+) tests run: (\d+) passed, (\d+) failed\.[^\n]*/g;
  for (const match of output.matchAll(suites)) {
    summary.lines.push(match[0]);
    summary.run += Number(match[1]);
    summary.passed += Number(match[2]);
    summary.failed += Number(match[3]);
  }
  for (const match of output.matchAll(/-> (\d+) warnings? (?:was|were) issued/g))
    summary.warnings += Number(match[1]);
  return summary;
}

/** Asserts a litmus run passed every one of its 104 tests with no warning; returns the summary lines. */
export function assertLitmusClean(output: string, summary: LitmusSummary): string[] {
  const failures = output.split('\n').filter((line) => /FAIL|WARNING/.test(line));
  assert.deepEqual(failures, [], failures.join('\n'));
  assert.equal(summary.lines.length, 5, output);
  assert.equal(summary.run, 104);
  assert.equal(summary.passed, 104);
  assert.equal(summary.failed, 0);
  assert.equal(summary.warnings, 0);
  return summary.lines;
}

/** Runs litmus against a collection URL (it creates litmus/ below it), in a scratch directory. */
export async function runLitmus(
  url: string,
  credentials?: { name: string; password: string },
): Promise<{ output: string; summary: LitmusSummary }> {
  const args = credentials === undefined ? [url] : [url, credentials.name, credentials.password];
  // litmus writes debug.log and child.log into its working directory.
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-litmus-'));
  try {
    const output = await new Promise<string>((resolve) => {
      execFile(LITMUS, args, { cwd: workDir, timeout: 180_000 }, (_error, stdout, stderr) =>
        resolve(stdout + stderr),
      );
    });
    return { output, summary: parseLitmusOutput(output) };
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}
