// Runs wrk (Debian package `wrk`) for the concurrent workloads. Each run gets a generated Lua script:
// the workload's request part, the Authorization header, and a done() hook that prints the summary
// as one JSON line, so nothing depends on wrk's human-readable output.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchServer } from './bench-server';

export interface WrkResult {
  durationSeconds: number;
  requests: number;
  requestsPerSecond: number;
  bytes: number;
  /** Responses with a status >= 400. */
  statusErrors: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
}

export interface WrkRun {
  server: BenchServer;
  urlPath: string;
  connections: number;
  threads: number;
  durationSeconds: number;
  /** Lua run in each wrk thread: sets wrk.method/body/headers, or defines request(). */
  luaRequest: string;
  /** Where the generated script is written (the run's private temporary directory). */
  scriptDirectory: string;
}

const resultMarker = 'WRK_RESULT ';

const luaDone = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${resultMarker}{"durationMicros":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50Micros":%d,"p99Micros":%d,"meanMicros":%.1f,"maxMicros":%d}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
`;

/** Lua string literal for arbitrary text (long brackets cannot hold every string; escapes can). */
export function luaString(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, (c) => (c === '\n' ? '\\n' : '\\r'))}"`;
}

let scriptCounter = 0;

export async function runWrk(run: WrkRun): Promise<WrkResult> {
  const auth =
    run.server.authorization === null
      ? ''
      : `wrk.headers["Authorization"] = ${luaString(run.server.authorization)}\n`;
  const script = `${auth}${run.luaRequest}\n${luaDone}`;
  const scriptPath = path.join(run.scriptDirectory, `wrk-${process.pid}-${scriptCounter++}.lua`);
  // The script may carry the bench user's password (Basic auth): readable by root only.
  fs.writeFileSync(scriptPath, script, { mode: 0o600 });
  const args = [
    `-t${run.threads}`,
    `-c${run.connections}`,
    `-d${run.durationSeconds}s`,
    '--timeout',
    '20s',
    '-s',
    scriptPath,
    `http://127.0.0.1:${run.server.port}${run.urlPath}`,
  ];
  try {
    const output = await runCommand('wrk', args);
    const line = output.split('\n').find((candidate) => candidate.startsWith(resultMarker));
    if (line === undefined) throw new Error(`wrk printed no result:\n${output.slice(-2000)}`);
    const raw = JSON.parse(line.slice(resultMarker.length)) as Record<string, number>;
    const durationSeconds = raw.durationMicros / 1e6;
    return {
      durationSeconds,
      requests: raw.requests,
      requestsPerSecond: raw.requests / durationSeconds,
      bytes: raw.bytes,
      statusErrors: raw.status,
      socketErrors: { connect: raw.connect, read: raw.read, write: raw.write, timeout: raw.timeout },
      p50Ms: raw.p50Micros / 1000,
      p99Ms: raw.p99Micros / 1000,
      meanMs: raw.meanMicros / 1000,
      maxMs: raw.maxMicros / 1000,
    };
  } finally {
    fs.rmSync(scriptPath, { force: true });
  }
}

/** Runs a command without blocking the event loop (the memory sampler keeps ticking), returns stdout. */
export function runCommand(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new Error(
            `${command} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}${stdout.slice(-2000)}`,
          ),
        );
    });
  });
}
