// PAM, as the monitor uses it: pam_authenticate + pam_acct_mgmt (node-linux-pam runs both on the
// libuv threadpool). A PamQueue runs at most `concurrency` calls at once, so logins cannot occupy
// every pool thread (main.ts sizes the pool to concurrency + POOL_THREADS_FOR_FILES), and lets at
// most `maxWaiting` wait; beyond that it is full and the caller answers 503, counting nothing
// against anyone. The shipped PAM service uses `nodelay` and the monitor applies its own constant
// failure delay; a stack that keeps pam_unix's ~2 s delay still holds only `concurrency` threads.

import { availableParallelism } from 'node:os';
import { pamAuthenticatePromise } from 'node-linux-pam';

export type PamOutcome = 'ok' | 'denied' | 'error';

/** Threadpool threads kept free of PAM for the monitor's own file work (config, NSS files, /proc). */
export const POOL_THREADS_FOR_FILES = 4;

/** `auth.pam_concurrency = 0`: one PAM call per CPU (yescrypt is CPU-bound). */
export function pamConcurrency(configured: number): number {
  return configured > 0 ? configured : availableParallelism();
}

export class PamQueue {
  readonly #concurrency: number;
  #maxWaiting: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(concurrency: number, maxWaiting: number) {
    this.#concurrency = concurrency;
    this.#maxWaiting = maxWaiting;
  }

  set maxWaiting(value: number) {
    this.#maxWaiting = value;
  }

  /** True when another call now would have to be refused: every slot busy and the queue full. */
  get full(): boolean {
    return this.#running >= this.#concurrency && this.#waiting.length >= this.#maxWaiting;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Callers check `full` first (the queue takes the call even when full, so it is never lost). */
  async authenticate(service: string, user: string, password: string, remote: string): Promise<PamOutcome> {
    // A slot is handed from a finishing call straight to the first waiter, so none can jump the queue.
    if (this.#running >= this.#concurrency) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      await pamAuthenticatePromise({ serviceName: service, username: user, password, remoteHost: remote });
      return 'ok';
    } catch (error) {
      const code = (error as { code?: number }).code;
      // 4 PAM_SYSTEM_ERR, 3 PAM_SERVICE_ERR, 1 PAM_OPEN_ERR, 2 PAM_SYMBOL_ERR, 5 PAM_BUF_ERR: the stack is broken, not the password.
      return code !== undefined && [1, 2, 3, 4, 5].includes(code) ? 'error' : 'denied';
    } finally {
      const next = this.#waiting.shift();
      if (next !== undefined) next();
      else this.#running--;
    }
  }
}
