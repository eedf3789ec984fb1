// Locks in PostgreSQL, for several nodes serving the same homes ([locks] database = "postgresql://…"):
// the LockStore semantics of the SQLite store, with grants decided in one transaction and expiry
// judged by the database's clock. An unreachable database is LockStoreUnavailableError, never a grant.
import { Pool, type PoolClient, type PoolConfig } from 'pg';
import {
  ancestorsOf,
  belowRange,
  checkBounds,
  compatible,
  LockLimitError,
  LockStoreUnavailableError,
  recordBytes,
  type LockBounds,
  type LockRecord,
  type LockStore,
} from './lock-store';

const PARENT = "regexp_replace(root, '[^/]*$', '')";

/** Each schema version's statements, applied in order at start; the table's version says how far. */
const MIGRATIONS: string[] = [
  // Roots compare bytewise ("C"), as in SQLite: the descendant range [P + "/", P + "0") relies on it.
  `CREATE TABLE privdav_locks (
     token text PRIMARY KEY,
     root text COLLATE "C" NOT NULL,
     root_path text NOT NULL,
     principal text NOT NULL,
     scope text NOT NULL CHECK (scope IN ('exclusive', 'shared')),
     depth text NOT NULL CHECK (depth IN ('0', 'infinity')),
     owner_xml text NOT NULL,
     timeout_s integer NOT NULL,
     expires timestamptz NOT NULL
   );
   CREATE INDEX privdav_locks_by_root ON privdav_locks (root);
   CREATE INDEX privdav_locks_by_principal ON privdav_locks (principal);
   CREATE INDEX privdav_locks_by_expiry ON privdav_locks (expires);`,
  // A Depth 1 listing asks for the locks rooted at its members: their directory, "/a/b/" of "/a/b/c".
  `CREATE INDEX privdav_locks_by_parent ON privdav_locks ((${PARENT}));`,
];

/** Serialises schema migrations of nodes starting together (an arbitrary, fixed advisory-lock key). */
const MIGRATION_LOCK_KEY = 0x70726976; // "priv"
/** Deadlocks are possible only through hash collisions of advisory-lock keys; PostgreSQL breaks them. */
const GRANT_ATTEMPTS = 3;
const PURGE_INTERVAL_MS = 60_000;

// Columns as the store returns them: expiry as milliseconds left by the database's clock.
const COLUMNS = `token, root, root_path, principal, scope, depth, owner_xml, timeout_s,
  (EXTRACT(EPOCH FROM (expires - now())) * 1000)::float8 AS remaining_ms`;

interface LockRow {
  token: string;
  root: string;
  root_path: string;
  principal: string;
  scope: string;
  depth: string;
  owner_xml: string;
  timeout_s: number;
  remaining_ms: number;
}

/** A database row as a LockRecord, its expiry moved onto the caller's clock. */
function fromRow(row: LockRow, nowMs: number): LockRecord {
  return {
    token: row.token,
    root: row.root,
    rootPath: row.root_path,
    principal: row.principal,
    scope: row.scope === 'shared' ? 'shared' : 'exclusive',
    depth: row.depth === 'infinity' ? 'infinity' : 0,
    ownerXml: row.owner_xml,
    timeoutS: row.timeout_s,
    expiresMs: nowMs + Math.floor(row.remaining_ms),
  };
}

export interface PostgresLockStoreOptions {
  /** The [locks] database URL (postgresql://user:password@host:port/database). */
  url: string;
  /** Connect to this address instead of the URL's host (resolved before a chroot without /etc/hosts). */
  hostAddress?: string;
  log: (level: 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** node-postgres settings from the URL (check-config validated it); nothing is read from files. */
function poolConfig(options: PostgresLockStoreOptions): PoolConfig {
  const url = new URL(options.url);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const sslmode = url.searchParams.get('sslmode') ?? 'disable';
  const ssl: PoolConfig['ssl'] =
    sslmode === 'disable'
      ? false
      : sslmode === 'verify-full'
        ? { rejectUnauthorized: true, servername: hostname }
        : sslmode === 'verify-ca'
          ? { rejectUnauthorized: true, checkServerIdentity: () => undefined }
          : { rejectUnauthorized: false };
  return {
    host: options.hostAddress ?? hostname,
    port: url.port === '' ? 5432 : Number(url.port),
    user: decodeURIComponent(url.username),
    // '' rather than none keeps pg from looking for ~/.pgpass (not there in the chroot).
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
    ssl,
    max: 8,
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
    // A hung database must not hold a request for ever: the request gets 503 instead.
    statement_timeout: 5000,
    query_timeout: 6000,
    keepAlive: true,
    application_name: 'privdav',
  };
}

export class PostgresLockStore implements LockStore {
  private readonly pool: Pool;
  private readonly purgeTimer: NodeJS.Timeout;
  /** Settled once the schema is in place; reset after a failed attempt, so the next request retries. */
  private schema: Promise<void> | null = null;

  constructor(options: PostgresLockStoreOptions) {
    const pool = new Pool(poolConfig(options));
    const log = options.log;
    this.pool = pool;
    // An idle connection the server dropped (restart, network) must not crash the process.
    pool.on('error', (error) => log('warn', 'lock database connection lost', { error: error.message }));
    // Queries ignore expired rows; this only keeps the table small.
    this.purgeTimer = setInterval(() => {
      pool.query('DELETE FROM privdav_locks WHERE expires <= now()').catch(() => undefined);
    }, PURGE_INTERVAL_MS);
    this.purgeTimer.unref();
  }

  /**
   * Creates or migrates the schema. A node may start while the database is down: it serves reads,
   * refuses lock decisions (503), and every request tries again until this succeeds.
   */
  ensureSchema(): Promise<void> {
    if (this.schema === null) {
      this.schema = this.migrate();
      this.schema.catch(() => (this.schema = null));
    }
    return this.schema;
  }

  private async migrate(): Promise<void> {
    await this.inTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      await client.query('CREATE TABLE IF NOT EXISTS privdav_schema (version integer NOT NULL)');
      const result = await client.query<{ version: number }>('SELECT version FROM privdav_schema');
      const version = result.rows[0]?.version ?? 0;
      for (let next = version; next < MIGRATIONS.length; next++) await client.query(MIGRATIONS[next]);
      if (result.rows.length === 0)
        await client.query('INSERT INTO privdav_schema VALUES ($1)', [MIGRATIONS.length]);
      else await client.query('UPDATE privdav_schema SET version = $1', [MIGRATIONS.length]);
    });
  }

  async hasLocks(_nowMs: number): Promise<boolean> {
    const result = await this.query('SELECT 1 FROM privdav_locks WHERE expires > now() LIMIT 1', []);
    return result.length > 0;
  }

  async liveLocks(_nowMs: number): Promise<number> {
    const result = await this.query(
      'SELECT count(*)::int AS live FROM privdav_locks WHERE expires > now()',
      [],
    );
    return Number((result[0] as unknown as { live: number } | undefined)?.live ?? 0);
  }

  /**
   * One transaction: advisory locks (held to its end) on the root, exclusive, and on each of its
   * ancestors, shared, taken from the top down. Two grants that could conflict — same root, or one
   * root below the other — then always meet on one key (the upper root: exclusive for one, shared for
   * the other) and run one after the other, on whichever node; unrelated grants run in parallel.
   */
  async acquire(lock: LockRecord, nowMs: number, bounds: LockBounds): Promise<LockRecord[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transaction((client) => this.grant(client, lock, nowMs, bounds));
      } catch (error) {
        const deadlock = (error as { cause?: { code?: string } }).cause?.code === '40P01';
        if (!deadlock || attempt === GRANT_ATTEMPTS) throw error;
      }
    }
  }

  private async grant(
    client: PoolClient,
    lock: LockRecord,
    nowMs: number,
    bounds: LockBounds,
  ): Promise<LockRecord[]> {
    const ancestors = ancestorsOf(lock.root).reverse();
    await client.query(
      'SELECT pg_advisory_xact_lock_shared(hashtextextended(path, 0)) FROM unnest($1::text[]) AS path',
      [ancestors],
    );
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lock.root]);
    const existing = await this.coveringWith(client, lock.root, nowMs);
    if (lock.depth === 'infinity') existing.push(...(await this.belowWith(client, lock.root, nowMs)));
    const blocking = existing.filter((other) => !compatible(other, lock));
    if (blocking.length > 0) return blocking;
    const counts = await client.query<{ principal: number; resource: number; bytes: string }>(
      `SELECT (SELECT count(*) FROM privdav_locks WHERE principal = $1 AND expires > now())::int AS principal,
              (SELECT count(*) FROM privdav_locks WHERE root = $2 AND expires > now())::int AS resource,
              pg_total_relation_size('privdav_locks')::text AS bytes`,
      [lock.principal, lock.root],
    );
    const row = counts.rows[0];
    let bytes = Number(row.bytes);
    if (bytes + recordBytes(lock) > bounds.maxStoreBytes) {
      // The table keeps the space of removed and expired rows (until a VACUUM FULL): judged by its
      // size alone, a table that was full once would refuse every lock for ever. Near the limit,
      // count what the live locks take, measured as recordBytes measures them.
      const live = await client.query<{ bytes: string }>(
        `SELECT coalesce(sum(octet_length(token) + 2 * octet_length(root) + octet_length(root_path)
                + octet_length(principal) + octet_length(owner_xml) + 64), 0)::text AS bytes
         FROM privdav_locks WHERE expires > now()`,
      );
      bytes = Number(live.rows[0].bytes);
    }
    checkBounds(bounds, row.principal, row.resource, bytes + recordBytes(lock));
    await client.query(
      `INSERT INTO privdav_locks (token, root, root_path, principal, scope, depth, owner_xml, timeout_s, expires)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::integer, now() + make_interval(secs => $8::integer))`,
      [
        lock.token,
        lock.root,
        lock.rootPath,
        lock.principal,
        lock.scope,
        String(lock.depth),
        lock.ownerXml,
        lock.timeoutS,
      ],
    );
    return [];
  }

  async get(token: string, nowMs: number): Promise<LockRecord | null> {
    const rows = await this.query(
      `SELECT ${COLUMNS} FROM privdav_locks WHERE token = $1 AND expires > now()`,
      [token],
    );
    return rows.length === 0 ? null : fromRow(rows[0], nowMs);
  }

  async covering(realPath: string, nowMs: number): Promise<LockRecord[]> {
    return this.guard(() => this.coveringWith(this.pool, realPath, nowMs));
  }

  async below(realPath: string, nowMs: number): Promise<LockRecord[]> {
    return this.guard(() => this.belowWith(this.pool, realPath, nowMs));
  }

  async atMembers(realPath: string, nowMs: number): Promise<LockRecord[]> {
    const prefix = belowRange(realPath)[0];
    const rows = await this.query(
      `SELECT ${COLUMNS} FROM privdav_locks WHERE ${PARENT} = $1 AND root > $1 AND expires > now()`,
      [prefix],
    );
    return rows.map((row) => fromRow(row, nowMs));
  }

  async refresh(token: string, timeoutS: number, nowMs: number): Promise<LockRecord | null> {
    const rows = await this.query(
      `UPDATE privdav_locks SET timeout_s = $2::integer, expires = now() + make_interval(secs => $2::integer)
       WHERE token = $1 AND expires > now() RETURNING ${COLUMNS}`,
      [token, timeoutS],
    );
    return rows.length === 0 ? null : fromRow(rows[0], nowMs);
  }

  async remove(token: string): Promise<void> {
    await this.query('DELETE FROM privdav_locks WHERE token = $1', [token]);
  }

  async removeTree(realPath: string): Promise<void> {
    const [from, to] = belowRange(realPath);
    await this.query('DELETE FROM privdav_locks WHERE root = $1 OR (root > $2 AND root < $3)', [
      realPath,
      from,
      to,
    ]);
  }

  close(): void {
    clearInterval(this.purgeTimer);
    void this.pool.end().catch(() => undefined);
  }

  private async coveringWith(client: Queryable, realPath: string, nowMs: number): Promise<LockRecord[]> {
    const result = await client.query<LockRow>(
      `SELECT ${COLUMNS} FROM privdav_locks
       WHERE (root = $1 OR (depth = 'infinity' AND root = ANY($2::text[]))) AND expires > now()`,
      [realPath, ancestorsOf(realPath)],
    );
    return result.rows.map((row) => fromRow(row, nowMs));
  }

  private async belowWith(client: Queryable, realPath: string, nowMs: number): Promise<LockRecord[]> {
    const [from, to] = belowRange(realPath);
    const result = await client.query<LockRow>(
      `SELECT ${COLUMNS} FROM privdav_locks WHERE root > $1 AND root < $2 AND expires > now()`,
      [from, to],
    );
    return result.rows.map((row) => fromRow(row, nowMs));
  }

  private async query(text: string, values: unknown[]): Promise<LockRow[]> {
    return this.guard(async () => (await this.pool.query<LockRow>(text, values)).rows);
  }

  private async transaction<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.guard(() => this.inTransaction(body));
  }

  private async inTransaction<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollback: Error) => (broken = rollback));
      throw error;
    } finally {
      // A connection whose ROLLBACK failed is broken: the pool must not hand it out again.
      client.release(broken);
    }
  }

  /** Anything the database or the connection throws becomes LockStoreUnavailableError (fail closed). */
  private async guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      await this.ensureSchema();
      return await body();
    } catch (error) {
      if (error instanceof LockLimitError || error instanceof LockStoreUnavailableError) throw error;
      throw new LockStoreUnavailableError(error);
    }
  }
}

type Queryable = Pick<Pool, 'query'> | PoolClient;
