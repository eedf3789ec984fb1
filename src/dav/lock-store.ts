// Where WebDAV locks live: the LockStore interface (keyed by a resource's real filesystem path, so
// one file reached by two URLs is one resource), SQLite for one node, memory for tests
// (PostgreSQL, for several nodes, is postgres-lock-store.ts).
import Database from 'better-sqlite3';

export type LockScope = 'exclusive' | 'shared';

export interface LockRecord {
  /** The lock token, a URI: `opaquelocktoken:<uuid>`. */
  token: string;
  /** Storage.realPath of the lock root, in realPathOf's form (src/dav/request.ts). */
  root: string;
  /** The DavPath the lock was taken on (reported as DAV:lockroot), in the same form. */
  rootPath: string;
  /** The principal who created the lock; only they may use its token. */
  principal: string;
  scope: LockScope;
  depth: 0 | 'infinity';
  /** The client's DAV:owner element as self-contained XML, or ''. */
  ownerXml: string;
  /** Seconds granted at creation or last refresh. */
  timeoutS: number;
  /** Expiry, milliseconds since the epoch. */
  expiresMs: number;
}

/** What one principal, one resource and the whole store may hold (issue: one user's locks must not fill the commons). */
export interface LockBounds {
  maxPerPrincipal: number;
  /** Locks rooted at one resource (only shared locks can be more than one). */
  maxPerResource: number;
  /** Bytes the store's data may take (SQLite: its pages in use; PostgreSQL: the table's relation size). */
  maxStoreBytes: number;
}

export type LockLimit = 'locks-per-principal' | 'locks-per-resource' | 'store-full';

/** acquire() refused a lock because a bound of LockBounds would be exceeded. */
export class LockLimitError extends Error {
  readonly code = 'LOCK_LIMIT';
  readonly limit: LockLimit;

  constructor(limit: LockLimit) {
    super(`lock refused: ${limit}`);
    this.name = 'LockLimitError';
    this.limit = limit;
  }
}

/**
 * A shared store could not be asked (database unreachable, timed out): the caller must refuse
 * what needs a lock decision (503), never treat it as "no locks".
 */
export class LockStoreUnavailableError extends Error {
  readonly code = 'LOCK_STORE_UNAVAILABLE';

  constructor(cause: unknown) {
    super(`lock database unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'LockStoreUnavailableError';
  }
}

/**
 * All methods take `nowMs` so that expiry is judged once per request (a shared store judges by its
 * own clock and reports expiresMs on the caller's). acquire() must be atomic across every process
 * and node that shares the store.
 */
export interface LockStore {
  /** True when any unexpired lock exists: lets requests skip lock lookups entirely. */
  hasLocks(nowMs: number): Promise<boolean>;
  /** Unexpired locks (the privdav_locks gauge; /healthz asks it to see the database answer). */
  liveLocks(nowMs: number): Promise<number>;
  /**
   * Stores the lock unless a conflicting one exists; returns the conflicts (empty: stored).
   * Throws LockLimitError when storing it would exceed `bounds`.
   */
  acquire(lock: LockRecord, nowMs: number, bounds: LockBounds): Promise<LockRecord[]>;
  get(token: string, nowMs: number): Promise<LockRecord | null>;
  /** Locks on the resource itself, and depth-infinity locks on its ancestors. */
  covering(realPath: string, nowMs: number): Promise<LockRecord[]>;
  /** Locks rooted strictly below the resource. */
  below(realPath: string, nowMs: number): Promise<LockRecord[]>;
  /**
   * Locks rooted at the resource's direct members: what a Depth 1 listing shows (locks further
   * down cover no member), without fetching every lock of the subtree.
   */
  atMembers(realPath: string, nowMs: number): Promise<LockRecord[]>;
  /** Extends a lock; returns it updated, or null if it no longer exists. */
  refresh(token: string, timeoutS: number, nowMs: number): Promise<LockRecord | null>;
  remove(token: string): Promise<void>;
  /** Removes the locks rooted at realPath or below it (after DELETE or MOVE). */
  removeTree(realPath: string): Promise<void>;
  close(): void;
}

/** Proper ancestors of a canonical absolute path, nearest first: /a/b/c → /a/b, /a, /. */
export function ancestorsOf(realPath: string): string[] {
  const result: string[] = [];
  let path = realPath;
  while (path.length > 1) {
    const slash = path.lastIndexOf('/');
    path = slash <= 0 ? '/' : path.slice(0, slash);
    result.push(path);
  }
  return result;
}

function isBelow(candidate: string, realPath: string): boolean {
  const prefix = realPath.endsWith('/') ? realPath : realPath + '/';
  return candidate.length > prefix.length && candidate.startsWith(prefix);
}

/** Throws LockLimitError when one more lock would exceed a bound (counts are before the new lock). */
export function checkBounds(
  bounds: LockBounds,
  ofPrincipal: number,
  atResource: number,
  storeBytes: number,
): void {
  if (ofPrincipal >= bounds.maxPerPrincipal) throw new LockLimitError('locks-per-principal');
  if (atResource >= bounds.maxPerResource) throw new LockLimitError('locks-per-resource');
  if (storeBytes > bounds.maxStoreBytes) throw new LockLimitError('store-full');
}

/** What a lock takes in a store, roughly: its text fields. */
export function recordBytes(lock: LockRecord): number {
  const text = lock.token + lock.root + lock.root + lock.rootPath + lock.principal + lock.ownerXml;
  return Buffer.byteLength(text) + 64;
}

/** Whether a new lock may coexist with an existing one (RFC 4918 §6.2: only shared with shared). */
export function compatible(existing: LockRecord, wanted: LockRecord): boolean {
  return existing.scope === 'shared' && wanted.scope === 'shared';
}

export class MemoryLockStore implements LockStore {
  private readonly locks = new Map<string, LockRecord>();

  async hasLocks(nowMs: number): Promise<boolean> {
    for (const lock of this.locks.values()) if (lock.expiresMs > nowMs) return true;
    return false;
  }

  async liveLocks(nowMs: number): Promise<number> {
    let live = 0;
    for (const lock of this.locks.values()) if (lock.expiresMs > nowMs) live++;
    return live;
  }

  async acquire(lock: LockRecord, nowMs: number, bounds: LockBounds): Promise<LockRecord[]> {
    for (const [token, existing] of this.locks) if (existing.expiresMs <= nowMs) this.locks.delete(token);
    const conflicts = [...this.coveringNow(lock.root, nowMs)];
    if (lock.depth === 'infinity') conflicts.push(...this.belowNow(lock.root, nowMs));
    const blocking = conflicts.filter((existing) => !compatible(existing, lock));
    if (blocking.length > 0) return blocking;
    const all = [...this.locks.values()];
    const bytes = all.reduce((sum, existing) => sum + recordBytes(existing), recordBytes(lock));
    checkBounds(
      bounds,
      all.filter((existing) => existing.principal === lock.principal).length,
      all.filter((existing) => existing.root === lock.root).length,
      bytes,
    );
    this.locks.set(lock.token, { ...lock });
    return [];
  }

  async get(token: string, nowMs: number): Promise<LockRecord | null> {
    const lock = this.locks.get(token);
    return lock !== undefined && lock.expiresMs > nowMs ? { ...lock } : null;
  }

  async covering(realPath: string, nowMs: number): Promise<LockRecord[]> {
    return this.coveringNow(realPath, nowMs);
  }

  async below(realPath: string, nowMs: number): Promise<LockRecord[]> {
    return this.belowNow(realPath, nowMs);
  }

  async atMembers(realPath: string, nowMs: number): Promise<LockRecord[]> {
    const prefix = belowRange(realPath)[0];
    return this.belowNow(realPath, nowMs).filter((lock) => !lock.root.includes('/', prefix.length));
  }

  async refresh(token: string, timeoutS: number, nowMs: number): Promise<LockRecord | null> {
    const lock = this.locks.get(token);
    if (lock === undefined || lock.expiresMs <= nowMs) return null;
    lock.timeoutS = timeoutS;
    lock.expiresMs = nowMs + timeoutS * 1000;
    return { ...lock };
  }

  async remove(token: string): Promise<void> {
    this.locks.delete(token);
  }

  async removeTree(realPath: string): Promise<void> {
    for (const [token, lock] of this.locks) {
      if (lock.root === realPath || isBelow(lock.root, realPath)) this.locks.delete(token);
    }
  }

  close(): void {
    this.locks.clear();
  }

  private coveringNow(realPath: string, nowMs: number): LockRecord[] {
    const ancestors = new Set(ancestorsOf(realPath));
    const result: LockRecord[] = [];
    for (const lock of this.locks.values()) {
      if (lock.expiresMs <= nowMs) continue;
      if (lock.root === realPath || (lock.depth === 'infinity' && ancestors.has(lock.root)))
        result.push({ ...lock });
    }
    return result;
  }

  private belowNow(realPath: string, nowMs: number): LockRecord[] {
    const result: LockRecord[] = [];
    for (const lock of this.locks.values()) {
      if (lock.expiresMs > nowMs && isBelow(lock.root, realPath)) result.push({ ...lock });
    }
    return result;
  }
}

interface LockRow {
  token: string;
  root: string;
  root_path: string;
  principal: string;
  scope: string;
  depth: string;
  owner_xml: string;
  timeout_s: number;
  expires_ms: number;
}

function fromRow(row: LockRow): LockRecord {
  return {
    token: row.token,
    root: row.root,
    rootPath: row.root_path,
    principal: row.principal,
    scope: row.scope === 'shared' ? 'shared' : 'exclusive',
    depth: row.depth === 'infinity' ? 'infinity' : 0,
    ownerXml: row.owner_xml,
    timeoutS: row.timeout_s,
    expiresMs: row.expires_ms,
  };
}

/**
 * A root's directory with its trailing slash ("/a/b/c" → "/a/b/"): rtrim strips the characters of
 * the last name (every character that is not "/"). Indexed, so a Depth 1 listing finds its members'
 * locks without scanning the subtree's.
 */
const SQLITE_PARENT = "rtrim(root, replace(root, '/', ''))";

/**
 * Locks in an SQLite file under state_dir, so they survive a restart of the web process.
 * better-sqlite3 is synchronous; each statement is a short indexed lookup.
 */
export class SqliteLockStore implements LockStore {
  private readonly db: Database.Database;
  private readonly statements: {
    any: Database.Statement<[number]>;
    live: Database.Statement<[number]>;
    insert: Database.Statement<[LockRow]>;
    get: Database.Statement<[string, number]>;
    covering: Database.Statement<[string, string, number]>;
    below: Database.Statement<[string, string, number]>;
    atMembers: Database.Statement<[string, string, number]>;
    refresh: Database.Statement<[number, number, string, number]>;
    remove: Database.Statement<[string]>;
    removeTree: Database.Statement<[string, string, string]>;
    purge: Database.Statement<[number]>;
    countOfPrincipal: Database.Statement<[string, number]>;
    countAtRoot: Database.Statement<[string, number]>;
  };
  private readonly acquireTransaction: (lock: LockRecord, nowMs: number, bounds: LockBounds) => LockRecord[];

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS locks (
        token TEXT PRIMARY KEY,
        root TEXT NOT NULL,
        root_path TEXT NOT NULL,
        principal TEXT NOT NULL,
        scope TEXT NOT NULL,
        depth TEXT NOT NULL,
        owner_xml TEXT NOT NULL,
        timeout_s INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS locks_by_root ON locks (root);
      CREATE INDEX IF NOT EXISTS locks_by_expiry ON locks (expires_ms);
      CREATE INDEX IF NOT EXISTS locks_by_principal ON locks (principal);
      CREATE INDEX IF NOT EXISTS locks_by_parent ON locks (${SQLITE_PARENT});
    `);
    this.statements = {
      any: this.db.prepare('SELECT 1 FROM locks WHERE expires_ms > ? LIMIT 1'),
      live: this.db.prepare('SELECT count(*) FROM locks WHERE expires_ms > ?'),
      insert: this.db.prepare(
        `INSERT INTO locks (token, root, root_path, principal, scope, depth, owner_xml, timeout_s, expires_ms)
         VALUES (@token, @root, @root_path, @principal, @scope, @depth, @owner_xml, @timeout_s, @expires_ms)`,
      ),
      get: this.db.prepare('SELECT * FROM locks WHERE token = ? AND expires_ms > ?'),
      covering: this.db.prepare(
        `SELECT * FROM locks WHERE (root = ? OR (depth = 'infinity' AND root IN (SELECT value FROM json_each(?))))
         AND expires_ms > ?`,
      ),
      below: this.db.prepare('SELECT * FROM locks WHERE root > ? AND root < ? AND expires_ms > ?'),
      // The range index finds the subtree; the test on the rest of the name keeps direct members.
      atMembers: this.db.prepare(
        `SELECT * FROM locks WHERE ${SQLITE_PARENT} = ? AND root > ? AND expires_ms > ?`,
      ),
      refresh: this.db.prepare(
        'UPDATE locks SET timeout_s = ?, expires_ms = ? WHERE token = ? AND expires_ms > ?',
      ),
      remove: this.db.prepare('DELETE FROM locks WHERE token = ?'),
      removeTree: this.db.prepare('DELETE FROM locks WHERE root = ? OR (root > ? AND root < ?)'),
      purge: this.db.prepare('DELETE FROM locks WHERE expires_ms <= ?'),
      countOfPrincipal: this.db.prepare('SELECT COUNT(*) FROM locks WHERE principal = ? AND expires_ms > ?'),
      countAtRoot: this.db.prepare('SELECT COUNT(*) FROM locks WHERE root = ? AND expires_ms > ?'),
    };
    this.acquireTransaction = this.db.transaction(
      (lock: LockRecord, nowMs: number, bounds: LockBounds): LockRecord[] => {
        this.statements.purge.run(nowMs);
        const existing = this.coveringNow(lock.root, nowMs);
        if (lock.depth === 'infinity') existing.push(...this.belowNow(lock.root, nowMs));
        const blocking = existing.filter((other) => !compatible(other, lock));
        if (blocking.length === 0) {
          checkBounds(
            bounds,
            this.count(this.statements.countOfPrincipal, lock.principal, nowMs),
            this.count(this.statements.countAtRoot, lock.root, nowMs),
            this.bytesInUse() + recordBytes(lock),
          );
          this.statements.insert.run({
            token: lock.token,
            root: lock.root,
            root_path: lock.rootPath,
            principal: lock.principal,
            scope: lock.scope,
            depth: String(lock.depth),
            owner_xml: lock.ownerXml,
            timeout_s: lock.timeoutS,
            expires_ms: lock.expiresMs,
          });
        }
        return blocking;
      },
    );
  }

  async hasLocks(nowMs: number): Promise<boolean> {
    return this.statements.any.get(nowMs) !== undefined;
  }

  async liveLocks(nowMs: number): Promise<number> {
    return Number(this.statements.live.pluck().get(nowMs));
  }

  async acquire(lock: LockRecord, nowMs: number, bounds: LockBounds): Promise<LockRecord[]> {
    return this.acquireTransaction(lock, nowMs, bounds);
  }

  /** Bytes of the file's pages that hold data (freed pages are reused before the file grows). */
  bytesInUse(): number {
    const pages = Number(this.db.pragma('page_count', { simple: true }));
    const free = Number(this.db.pragma('freelist_count', { simple: true }));
    return (pages - free) * Number(this.db.pragma('page_size', { simple: true }));
  }

  private count(statement: Database.Statement<[string, number]>, key: string, nowMs: number): number {
    return Number((statement.pluck().get(key, nowMs) as number | bigint | undefined) ?? 0);
  }

  async get(token: string, nowMs: number): Promise<LockRecord | null> {
    const row = this.statements.get.get(token, nowMs) as LockRow | undefined;
    return row === undefined ? null : fromRow(row);
  }

  async covering(realPath: string, nowMs: number): Promise<LockRecord[]> {
    return this.coveringNow(realPath, nowMs);
  }

  async below(realPath: string, nowMs: number): Promise<LockRecord[]> {
    return this.belowNow(realPath, nowMs);
  }

  async atMembers(realPath: string, nowMs: number): Promise<LockRecord[]> {
    const prefix = belowRange(realPath)[0];
    return (this.statements.atMembers.all(prefix, prefix, nowMs) as LockRow[]).map(fromRow);
  }

  async refresh(token: string, timeoutS: number, nowMs: number): Promise<LockRecord | null> {
    const changed = this.statements.refresh.run(timeoutS, nowMs + timeoutS * 1000, token, nowMs).changes;
    return changed === 0 ? null : this.get(token, nowMs);
  }

  async remove(token: string): Promise<void> {
    this.statements.remove.run(token);
  }

  async removeTree(realPath: string): Promise<void> {
    const [from, to] = belowRange(realPath);
    this.statements.removeTree.run(realPath, from, to);
  }

  close(): void {
    this.db.close();
  }

  private coveringNow(realPath: string, nowMs: number): LockRecord[] {
    const rows = this.statements.covering.all(
      realPath,
      JSON.stringify(ancestorsOf(realPath)),
      nowMs,
    ) as LockRow[];
    return rows.map(fromRow);
  }

  private belowNow(realPath: string, nowMs: number): LockRecord[] {
    const [from, to] = belowRange(realPath);
    return (this.statements.below.all(from, to, nowMs) as LockRow[]).map(fromRow);
  }
}

/** Descendants of P are the roots in the half-open range [P + "/", P + "0"): "0" follows "/". */
export function belowRange(realPath: string): [string, string] {
  const base = realPath.endsWith('/') ? realPath.slice(0, -1) : realPath;
  return [base + '/', base + '0'];
}
