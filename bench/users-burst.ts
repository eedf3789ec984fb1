// The "users" workload's load: N users' first requests at once (a PROPFIND Depth 0 of each user's
// own root, each on a new connection), with the latency of each, the answers that were not 207,
// and the peak of the total private memory (RssAnon) of the server's whole process tree meanwhile.
import * as http from 'node:http';
import { totalPrivateBytes } from './process-memory';

export interface Credential {
  name: string;
  password: string;
}

export interface BurstResult {
  latenciesMs: number[];
  /** Answers other than 207 (a 503 included: it is a user not served), and failed connections. */
  errors: number;
  statuses: Record<string, number>;
  peakTotalPrivateBytes: number;
}

const REQUEST_TIMEOUT_MS = 180_000;

/** `users` null: the same number of unauthenticated requests (Apache serves without auth). */
export async function firstRequestBurst(
  port: number,
  count: number,
  users: Credential[] | null,
  rootPid: () => number | null,
): Promise<BurstResult> {
  let peak = 0;
  const sample = (): void => {
    const root = rootPid();
    if (root !== null) peak = Math.max(peak, totalPrivateBytes(root));
  };
  sample();
  const sampler = setInterval(sample, 200);
  const statuses: Record<string, number> = {};
  try {
    const latencies = await Promise.all(
      Array.from({ length: count }, async (_, index) => {
        const user = users?.[index] ?? null;
        const started = process.hrtime.bigint();
        const status = await propfindRoot(port, user, sourceAddress(index));
        statuses[status] = (statuses[status] ?? 0) + 1;
        return Number(process.hrtime.bigint() - started) / 1e6;
      }),
    );
    sample();
    const errors = Object.entries(statuses)
      .filter(([status]) => status !== '207')
      .reduce((sum, [, n]) => sum + n, 0);
    return { latenciesMs: latencies, errors, statuses, peakTotalPrivateBytes: peak };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * Each user from an address of their own (127.2.x.y), as users on their own machines: from one
 * address, hundreds of accounts that never logged in from it look like a guesser to the back-off.
 */
function sourceAddress(index: number): string {
  return `127.2.${Math.floor(index / 254)}.${(index % 254) + 1}`;
}

function propfindRoot(port: number, user: Credential | null, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { Depth: '0' };
    if (user !== null)
      headers.Authorization = `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'PROPFIND',
        path: '/',
        headers,
        agent: false,
        localAddress,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        response.resume();
        response.once('end', () => resolve(String(response.statusCode)));
        response.once('error', () => resolve('reset'));
      },
    );
    request.once('timeout', () => request.destroy(new Error('timeout')));
    request.once('error', (error) => resolve(error.message === 'timeout' ? 'timeout' : 'connection error'));
    request.end();
  });
}
