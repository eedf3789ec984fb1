// Single requests from Node: the cold-start request and the correctness checks that make a run fail
// when a server answers wrong. (Big streams go through curl: Node's client topped out below 1 GB/s.)
import * as http from 'node:http';
import { BenchServer } from './bench-server';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  milliseconds: number;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs?: number;
}

function headersFor(server: BenchServer, extra: Record<string, string> | undefined): Record<string, string> {
  const headers: Record<string, string> = { ...(extra ?? {}) };
  if (server.authorization !== null) headers['Authorization'] = server.authorization;
  return headers;
}

/** One request on a fresh connection; the body is collected. Timing runs from before connect to the last byte. */
export function sendRequest(
  server: BenchServer,
  method: string,
  urlPath: string,
  options: RequestOptions = {},
): Promise<HttpAnswer> {
  const headers = headersFor(server, options.headers);
  const body = typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
  if (body !== undefined) headers['Content-Length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const request = http.request(
      { host: '127.0.0.1', port: server.port, method, path: urlPath, headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
            milliseconds: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
        response.once('error', reject);
      },
    );
    request.setTimeout(options.timeoutMs ?? 30_000, () =>
      request.destroy(new Error(`${method} ${urlPath} timed out`)),
    );
    request.once('error', reject);
    request.end(body);
  });
}
