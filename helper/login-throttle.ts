// Back-off for failed logins, per user name and per remote address: after a few failures each
// further attempt is refused without asking PAM until a growing wait has passed (1 s, 2 s, 4 s ...
// up to a cap). Bounded in memory so a flood of random names cannot grow it without limit.

const FREE_FAILURES = 5;
const FORGET_AFTER_MS = 60 * 60_000;
const MAX_KEYS = 50_000;

interface Record {
  failures: number;
  lastFailure: number;
}

export class LoginThrottle {
  readonly #records = new Map<string, Record>();
  readonly #maxWaitMs: number;

  /**
   * `maxWaitMs` caps the wait. Keep it short for user names: anyone can send wrong passwords for
   * a name, and a long cap would let them lock its owner out.
   */
  constructor(maxWaitMs: number) {
    this.#maxWaitMs = maxWaitMs;
  }

  /** Milliseconds until this key may try again (0: now). */
  waitFor(key: string, now = Date.now()): number {
    const record = this.#records.get(key);
    if (record === undefined || record.failures < FREE_FAILURES) return 0;
    const wait = Math.min(this.#maxWaitMs, 1000 * 2 ** Math.min(30, record.failures - FREE_FAILURES));
    return Math.max(0, record.lastFailure + wait - now);
  }

  recordFailure(key: string, now = Date.now()): void {
    const record = this.#records.get(key);
    if (record !== undefined && now - record.lastFailure < FORGET_AFTER_MS) {
      record.failures++;
      record.lastFailure = now;
      return;
    }
    if (this.#records.size >= MAX_KEYS) this.#prune(now);
    this.#records.set(key, { failures: 1, lastFailure: now });
  }

  recordSuccess(key: string): void {
    this.#records.delete(key);
  }

  #prune(now: number): void {
    for (const [key, record] of this.#records) {
      if (now - record.lastFailure >= FORGET_AFTER_MS) this.#records.delete(key);
    }
    // Still full: forget the oldest half rather than grow.
    if (this.#records.size >= MAX_KEYS) {
      let drop = this.#records.size / 2;
      for (const key of this.#records.keys()) {
        if (drop-- <= 0) break;
        this.#records.delete(key);
      }
    }
  }
}
