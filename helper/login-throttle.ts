// The login back-off, keyed so that the innocent pass (DESIGN invariant 8). Every attempt is
// counted when it arrives, before PAM, so N guesses sent at once are throttled exactly like N sent
// one after another. Three limits, each bounded in memory:
//   - the (account, source) pair backs off long (1 s, 2 s, 4 s ... up to pairMaxWaitMs);
//   - the account, for sources it never logged in from, backs off up to accountMaxWaitMs — this
//     bounds a distributed attack on one account whatever the number of addresses;
//   - the source, for accounts that never logged in from it, has a rate (token bucket), so one
//     address cannot spray every account, and a neighbour behind it is not locked out by a guesser.
// A pair that logged in successfully is remembered (rememberSourcesMs): its owner skips the account
// and source limits, so a distributed attack on the account does not keep them out.

export interface ThrottlePolicy {
  /** Attempts a key makes freely before the back-off starts. */
  freeAttempts: number;
  pairMaxWaitMs: number;
  accountMaxWaitMs: number;
  sourceGuessesPerMinute: number;
  rememberSourcesMs: number;
}

export type Admission =
  { admitted: true; known: boolean } | { admitted: false; why: 'pair' | 'account' | 'source' };

const FIRST_WAIT_MS = 1000;
/** A back-off record is forgotten after this long without attempts (or twice its cap, if longer). */
const FORGET_AFTER_MS = 60 * 60_000;
const MAX_RECORDS = 50_000;
const MAX_ACCOUNTS_REMEMBERED = 100_000;
/** Sources remembered per account; the least recently used goes first. */
const MAX_SOURCES_PER_ACCOUNT = 32;

interface Record {
  attempts: number;
  last: number;
  /** Earliest time the next attempt is admitted. */
  next: number;
}

/** Exponential back-off per key, charged on arrival. The Map is kept in order of last attempt. */
export class Backoff {
  readonly #records = new Map<string, Record>();
  readonly #free: number;

  constructor(freeAttempts: number) {
    this.#free = freeAttempts;
  }

  /** Milliseconds until this key may make another attempt (0: now). */
  waitFor(key: string, capMs: number, now: number): number {
    const record = this.#live(key, capMs, now);
    return record === undefined ? 0 : Math.max(0, record.next - now);
  }

  /** Counts an attempt that is being let through. */
  charge(key: string, capMs: number, now: number): void {
    const record = this.#live(key, capMs, now) ?? { attempts: 0, last: now, next: now };
    record.attempts++;
    record.last = now;
    const over = record.attempts - this.#free;
    record.next = over < 0 ? now : now + Math.min(capMs, FIRST_WAIT_MS * 2 ** Math.min(30, over));
    // Delete and set again: the Map's order is the order of last attempts, so pruning drops the
    // quietest keys first and a flood of new names cannot push out the account under attack.
    this.#records.delete(key);
    if (this.#records.size >= MAX_RECORDS) this.#prune(now);
    this.#records.set(key, record);
  }

  clear(key: string): void {
    this.#records.delete(key);
  }

  /** Takes back the last charge (an attempt that turned out to be no guess: overload). */
  uncharge(key: string, capMs: number): void {
    const record = this.#records.get(key);
    if (record === undefined) return;
    if (--record.attempts <= 0) {
      this.#records.delete(key);
      return;
    }
    const over = record.attempts - this.#free;
    record.next =
      over < 0 ? record.last : record.last + Math.min(capMs, FIRST_WAIT_MS * 2 ** Math.min(30, over));
  }

  get size(): number {
    return this.#records.size;
  }

  #live(key: string, capMs: number, now: number): Record | undefined {
    const record = this.#records.get(key);
    if (record !== undefined && now - record.last > Math.max(FORGET_AFTER_MS, 2 * capMs)) {
      this.#records.delete(key);
      return undefined;
    }
    return record;
  }

  #prune(now: number): void {
    let drop = this.#records.size - MAX_RECORDS / 2;
    for (const [key, record] of this.#records) {
      if (drop-- <= 0 && now - record.last <= FORGET_AFTER_MS) break;
      this.#records.delete(key);
    }
  }
}

/** A token bucket per key: `perMinute` tokens a minute, as many in reserve. */
export class RateLimit {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #perMinute: number;

  constructor(perMinute: number) {
    this.#perMinute = perMinute;
  }

  set perMinute(value: number) {
    this.#perMinute = value;
  }

  available(key: string, now: number): boolean {
    return this.#tokens(key, now) >= 1;
  }

  take(key: string, now: number): void {
    this.#set(key, this.#tokens(key, now) - 1, now);
  }

  /** Gives back a token taken for an attempt that turned out to be no guess (a correct password). */
  giveBack(key: string, now: number): void {
    this.#set(key, Math.min(this.#perMinute, this.#tokens(key, now) + 1), now);
  }

  #tokens(key: string, now: number): number {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return this.#perMinute;
    return Math.min(this.#perMinute, bucket.tokens + ((now - bucket.at) * this.#perMinute) / 60_000);
  }

  #set(key: string, tokens: number, now: number): void {
    this.#buckets.delete(key);
    if (tokens >= this.#perMinute) return;
    if (this.#buckets.size >= MAX_RECORDS) {
      // Full buckets are forgotten anyway; then the ones refilled longest ago.
      let drop = this.#buckets.size - MAX_RECORDS / 2;
      for (const bucketKey of this.#buckets.keys()) {
        if (drop-- <= 0) break;
        this.#buckets.delete(bucketKey);
      }
    }
    this.#buckets.set(key, { tokens, at: now });
  }
}

/** (account, source) pairs that logged in successfully, with the time of the last success. */
export class KnownSources {
  readonly #accounts = new Map<string, Map<string, number>>();
  #ttlMs: number;

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  set ttlMs(value: number) {
    this.#ttlMs = value;
  }

  has(account: string, source: string, now: number): boolean {
    const seen = this.#accounts.get(account)?.get(source);
    return seen !== undefined && now - seen < this.#ttlMs;
  }

  remember(account: string, source: string, now: number): void {
    if (this.#ttlMs === 0) return;
    let sources = this.#accounts.get(account);
    if (sources === undefined) {
      if (this.#accounts.size >= MAX_ACCOUNTS_REMEMBERED) {
        this.#accounts.delete(this.#accounts.keys().next().value as string);
      }
      sources = new Map();
    }
    this.#accounts.delete(account);
    this.#accounts.set(account, sources);
    sources.delete(source);
    sources.set(source, now);
    while (sources.size > MAX_SOURCES_PER_ACCOUNT) sources.delete(sources.keys().next().value as string);
  }
}

export class LoginThrottle {
  #policy: ThrottlePolicy;
  readonly #pairs: Backoff;
  readonly #accounts: Backoff;
  readonly #sources: RateLimit;
  readonly #known: KnownSources;

  constructor(policy: ThrottlePolicy) {
    this.#policy = policy;
    this.#pairs = new Backoff(policy.freeAttempts);
    this.#accounts = new Backoff(policy.freeAttempts);
    this.#sources = new RateLimit(policy.sourceGuessesPerMinute);
    this.#known = new KnownSources(policy.rememberSourcesMs);
  }

  /** On reload: new caps apply to the next attempt; what was counted stays counted. */
  set policy(policy: ThrottlePolicy) {
    this.#policy = policy;
    this.#sources.perMinute = policy.sourceGuessesPerMinute;
    this.#known.ttlMs = policy.rememberSourcesMs;
  }

  /**
   * Decides an attempt as it arrives and, when it is let through, counts it at once. `source` is
   * the grouped address (sourceKey), or null for an exempt one: an address that tells nothing
   * about who is behind it (a proxy) has no pair or source limit and is never a known source —
   * only the account's own limit applies to it.
   */
  admit(account: string, source: string | null, now = Date.now()): Admission {
    const policy = this.#policy;
    const known = source !== null && this.#known.has(account, source, now);
    const pair = source === null ? null : `${account}\0${source}`;
    // A known pair's own back-off is capped like the account's: an attacker behind the owner's
    // address may slow the owner down, not lock them out for long.
    const pairCap = known ? policy.accountMaxWaitMs : policy.pairMaxWaitMs;
    if (pair !== null && this.#pairs.waitFor(pair, pairCap, now) > 0) return { admitted: false, why: 'pair' };
    if (!known && this.#accounts.waitFor(account, policy.accountMaxWaitMs, now) > 0)
      return { admitted: false, why: 'account' };
    if (!known && source !== null && !this.#sources.available(source, now))
      return { admitted: false, why: 'source' };
    if (pair !== null) this.#pairs.charge(pair, pairCap, now);
    if (!known) this.#accounts.charge(account, policy.accountMaxWaitMs, now);
    if (!known && source !== null) this.#sources.take(source, now);
    return { admitted: true, known };
  }

  /** An admitted attempt was never decided (PAM saturated): nothing of it stays counted. */
  cancel(account: string, source: string | null, known: boolean, now = Date.now()): void {
    const policy = this.#policy;
    if (source !== null)
      this.#pairs.uncharge(`${account}\0${source}`, known ? policy.accountMaxWaitMs : policy.pairMaxWaitMs);
    if (!known) this.#accounts.uncharge(account, policy.accountMaxWaitMs);
    if (!known && source !== null) this.#sources.giveBack(source, now);
  }

  /** PAM accepted the password: this pair starts afresh and is remembered. */
  succeeded(account: string, source: string | null, known: boolean, now = Date.now()): void {
    if (source === null) return;
    this.#pairs.clear(`${account}\0${source}`);
    if (!known) this.#sources.giveBack(source, now);
    this.#known.remember(account, source, now);
  }
}
