// A real PostgreSQL 15 (Debian's) for a test file: initdb in a temporary directory as the postgres
// account, password authentication on a free loopback port, its socket in that directory too;
// stopped and started on demand (to prove fail-closed), removed at the end.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import posix from 'posix';
import { freePort } from './daemon';

const BIN = '/usr/lib/postgresql/15/bin';
export const POSTGRES_AVAILABLE = ((): boolean => {
  try {
    execFileSync(`${BIN}/postgres`, ['--version'], { stdio: 'ignore' });
    return posix.getpwnam('postgres').uid > 0;
  } catch {
    return false;
  }
})();

export interface TestPostgres {
  port: number;
  /** postgresql://privdav:PASSWORD@127.0.0.1:PORT/DATABASE, for [locks] database. */
  url: string;
  /** A fresh, empty database on the same server (for a store test that needs its own schema). */
  createDatabase(): Promise<string>;
  stop(): void;
  start(): void;
  destroy(): void;
}

function asPostgres(command: string, args: string[]): void {
  execFileSync('runuser', ['-u', 'postgres', '--', `${BIN}/${command}`, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-pg-'));
  const account = posix.getpwnam('postgres');
  chownSync(dir, account.uid, account.gid);
  const password = randomBytes(12).toString('base64url');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  chownSync(passwordFile, account.uid, account.gid);
  const data = join(dir, 'data');
  asPostgres('initdb', [
    '-D',
    data,
    '-U',
    'privdav',
    '--auth=scram-sha-256',
    `--pwfile=${passwordFile}`,
    '-E',
    'UTF8',
  ]);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off`;
  const start = (): void =>
    asPostgres('pg_ctl', ['start', '-w', '-D', data, '-l', join(dir, 'log'), '-o', options]);
  const stop = (): void => asPostgres('pg_ctl', ['stop', '-w', '-m', 'fast', '-D', data]);
  start();
  const base = `postgresql://privdav:${password}@127.0.0.1:${port}`;
  const createDatabase = async (): Promise<string> => {
    const name = `privdav_${randomBytes(4).toString('hex')}`;
    const client = new Client({ connectionString: `${base}/postgres` });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return `${base}/${name}`;
  };
  return {
    port,
    url: await createDatabase(),
    createDatabase,
    stop,
    start,
    destroy(): void {
      try {
        stop();
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
