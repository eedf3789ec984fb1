// The "isolation" workload (issue 12): one user's 4 KiB GET, timed, while other users run the
// heaviest requests the web process serves. privdav only: Apache has no users to keep apart.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { BenchServer } from './bench-server';
import { BenchUser, dataPaths } from './bench-user';
import type { BenchContext, TurnResult } from './workloads';

/** Properties a heavy PROPFIND names: the daemon's default cap (limits.max_propfind_properties). */
const HEAVY_PROPERTIES = 200;
/** Readers of the HTML listing that never read past the first bytes. */
const SLOW_READERS = 20;
/** Fewest GETs a turn times, however short the turn: a p99 of fewer says little. */
const MIN_SAMPLES = 200;

function basic(user: BenchUser): string {
  return `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;
}

function propfindNaming(count: number): string {
  let names = '';
  for (let index = 0; index < count; index++) names += `<p${index} xmlns="urn:bench:many"/>`;
  return `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>${names}</D:prop></D:propfind>`;
}

/**
 * The measured user (crowd 0) gets a 4 KiB file; the slow readers' user (crowd 1) a directory as
 * large as the heavy user's largest, so their listings are as costly. Made once per run.
 */
function prepare(context: BenchContext, entries: number): { quiet: BenchUser; readers: BenchUser } {
  const [quiet, readers] = context.crowd;
  if (quiet === undefined || readers === undefined)
    throw new Error('the isolation workload needs 2 more users');
  const small = path.join(quiet.home, dataPaths.smallFile);
  if (!fs.existsSync(small)) {
    fs.copyFileSync(path.join(context.user.home, dataPaths.smallFile), small);
    fs.chownSync(small, quiet.uid, quiet.gid);
  }
  const listing = path.join(readers.home, 'listing');
  if (!fs.existsSync(listing)) {
    fs.mkdirSync(listing);
    for (let index = 0; index < entries; index++) {
      const file = path.join(listing, `entry-${String(index).padStart(5, '0')}.txt`);
      fs.writeFileSync(file, 'privdav bench entry\n');
      fs.chownSync(file, readers.uid, readers.gid);
    }
    fs.chownSync(listing, readers.uid, readers.gid);
  }
  return { quiet, readers };
}

/**
 * curl as `user` in a loop until `stop()`; the statuses it saw are counted. curl processes make the
 * load, so the bench's own event loop times only the quiet user's GETs. Credentials go into a
 * root-only config file, not onto the command line.
 */
function curlLoop(
  user: BenchUser,
  scratch: string,
  name: string,
  args: string[],
): { statuses: Map<string, number>; done: Promise<void>; stop: () => void } {
  const config = path.join(scratch, `isolation-${name}.conf`);
  fs.writeFileSync(config, `header = "Authorization: ${basic(user)}"\n`, { mode: 0o600 });
  const statuses = new Map<string, number>();
  let stopped = false;
  const once = (): Promise<string> =>
    new Promise((resolve) => {
      const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-K', config, ...args], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('close', () => resolve(output || 'none'));
    });
  const done = (async () => {
    while (!stopped) {
      const status = await once();
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  })();
  return { statuses, done, stop: () => (stopped = true) };
}

function propfindArgs(server: BenchServer, depth: string, urlPath: string, bodyFile?: string): string[] {
  const args = ['-X', 'PROPFIND', '-H', `Depth: ${depth}`, '-H', 'Content-Type: application/xml'];
  if (bodyFile !== undefined) args.push('--data-binary', `@${bodyFile}`);
  return [...args, `http://127.0.0.1:${server.port}${urlPath}`];
}

/** A GET that never reads past the first bytes of its answer; resolves once the status line came. */
function slowReader(server: BenchServer, user: BenchUser, urlPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1', () => {
      socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${basic(user)}\r\n\r\n`);
    });
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      if (/^HTTP\/1\.1 200 /.test(chunk.toString('latin1'))) resolve(socket);
      else reject(new Error(`slow reader: ${chunk.toString('latin1').split('\r\n')[0]}`));
    });
    socket.once('error', reject);
  });
}

/** One GET on a fresh connection: its time to the last byte in ms, or the reason it was wrong. */
function timedGet(server: BenchServer, user: BenchUser, expected: Buffer): Promise<number | string> {
  return new Promise((resolve) => {
    const started = performance.now();
    const request = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: dataPaths.smallFile,
        headers: { Authorization: basic(user) },
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const milliseconds = performance.now() - started;
          if (response.statusCode !== 200) resolve(`GET status ${response.statusCode}`);
          else if (!Buffer.concat(chunks).equals(expected)) resolve('GET body differs from the file');
          else resolve(milliseconds);
        });
        response.on('error', (error) => resolve(`GET: ${error.message}`));
      },
    );
    request.on('error', (error) => resolve(`GET: ${error.message}`));
    request.end();
  });
}

export async function isolationTurn(
  server: BenchServer,
  context: BenchContext,
  entries: number,
  percentile: (samples: number[], rank: number) => number | null,
): Promise<TurnResult> {
  const { quiet, readers } = prepare(context, entries);
  const expected = fs.readFileSync(path.join(quiet.home, dataPaths.smallFile));
  const bodyFile = path.join(context.scratchDirectory, 'isolation-propfind.xml');
  fs.writeFileSync(bodyFile, propfindNaming(HEAVY_PROPERTIES));
  const failures: string[] = [];
  // A first GET logs the quiet user in and starts their worker: that is cold-start, not isolation.
  const first = await timedGet(server, quiet, expected);
  if (typeof first === 'string') failures.push(first);

  const collection = `${dataPaths.propfindCollection(entries)}/`;
  const heavy = [
    curlLoop(context.user, context.scratchDirectory, 'a', propfindArgs(server, '1', collection, bodyFile)),
    curlLoop(context.user, context.scratchDirectory, 'b', propfindArgs(server, '1', collection, bodyFile)),
    curlLoop(context.user, context.scratchDirectory, 'c', propfindArgs(server, 'infinity', '/propfind/')),
  ];
  const sockets: net.Socket[] = [];
  const latencies: number[] = [];
  try {
    for (let index = 0; index < SLOW_READERS; index++)
      sockets.push(await slowReader(server, readers, '/listing/'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const until = performance.now() + context.durationSeconds * 1000;
    while (performance.now() < until || latencies.length < MIN_SAMPLES) {
      const answer = await timedGet(server, quiet, expected);
      if (typeof answer === 'string') {
        failures.push(answer);
        break;
      }
      latencies.push(answer);
    }
  } finally {
    for (const socket of sockets) socket.destroy();
    for (const loop of heavy) loop.stop();
    await Promise.all(heavy.map((loop) => loop.done));
  }
  const notes: string[] = [];
  for (const [index, loop] of heavy.entries()) {
    const answers = [...loop.statuses].map(([status, count]) => `${count} x ${status}`).join(', ');
    notes.push(
      `heavy ${['PROPFIND 200 properties', 'PROPFIND 200 properties', 'PROPFIND Depth: infinity'][index]}: ${answers}`,
    );
    if ([...loop.statuses.keys()].some((status) => status !== '207'))
      failures.push(`heavy requests answered other than 207: ${answers}`);
  }
  const p99 = percentile(latencies, 99) ?? 0;
  return { value: p99, p50Ms: percentile(latencies, 50), p99Ms: p99, failures, notes };
}
