// The single big streams (GET and PUT of 256 MiB) through curl. Node's http client reached only
// ~0.7 GB/s discarding a GET on this machine (raw sockets ~1.5-2.3), curl ~2.3-2.8, so curl it is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchServer } from './bench-server';
import { runCommand } from './wrk-load';

export interface StreamResult {
  status: number;
  bytes: number;
  seconds: number;
}

/**
 * Credentials go into a curl config file readable by root only rather than onto the command
 * line, where any local user could read them from /proc.
 */
function curlConfig(server: BenchServer, directory: string): string[] {
  if (server.authorization === null) return [];
  const file = path.join(directory, `curl-${server.name}.conf`);
  fs.writeFileSync(file, `header = "Authorization: ${server.authorization}"\n`, { mode: 0o600 });
  return ['-K', file];
}

async function runCurl(args: string[]): Promise<StreamResult> {
  const output = await runCommand('curl', ['-s', '-S', '-o', '/dev/null', ...args]);
  const [status, bytes, seconds] = output.trim().split(' ').map(Number);
  return { status, bytes, seconds };
}

/** GET with the body thrown away (written to /dev/null). */
export function downloadToNull(
  server: BenchServer,
  urlPath: string,
  directory: string,
): Promise<StreamResult> {
  return runCurl([
    ...curlConfig(server, directory),
    '-w',
    '%{http_code} %{size_download} %{time_total}',
    `http://127.0.0.1:${server.port}${urlPath}`,
  ]);
}

/**
 * PUT of a local file. `Expect:` is cleared so that curl does not wait for "100 Continue" (it
 * would pause up to a second if a server did not send one), the same for both servers.
 */
export function uploadFile(
  server: BenchServer,
  urlPath: string,
  sourceFile: string,
  directory: string,
): Promise<StreamResult> {
  return runCurl([
    ...curlConfig(server, directory),
    '-H',
    'Expect:',
    '-H',
    'Content-Type: application/octet-stream',
    '-T',
    sourceFile,
    '-w',
    '%{http_code} %{size_upload} %{time_total}',
    `http://127.0.0.1:${server.port}${urlPath}`,
  ]);
}
