// PAM, as the monitor uses it: pam_authenticate + pam_acct_mgmt (node-linux-pam runs both on the
// libuv threadpool). Calls are limited to a few at a time so a burst of logins cannot occupy
// every pool thread; the shipped PAM service uses `nodelay` and the monitor applies its own
// constant failure delay instead of pam_unix's, which would hold a thread for ~2 s.

import { pamAuthenticatePromise } from 'node-linux-pam';

export type PamOutcome = 'ok' | 'denied' | 'error';

const MAX_CONCURRENT = 2;
const MAX_QUEUED = 256;

let running = 0;
const queue: Array<() => void> = [];

export async function pamAuthenticate(
  service: string,
  user: string,
  password: string,
  remote: string,
): Promise<PamOutcome> {
  if (running >= MAX_CONCURRENT) {
    if (queue.length >= MAX_QUEUED) return 'error';
    await new Promise<void>((resolve) => queue.push(resolve));
  }
  running++;
  try {
    await pamAuthenticatePromise({ serviceName: service, username: user, password, remoteHost: remote });
    return 'ok';
  } catch (error) {
    const code = (error as { code?: number }).code;
    // 4 PAM_SYSTEM_ERR, 3 PAM_SERVICE_ERR, 1 PAM_OPEN_ERR, 2 PAM_SYMBOL_ERR, 5 PAM_BUF_ERR: the stack is broken, not the password.
    return code !== undefined && [1, 2, 3, 4, 5].includes(code) ? 'error' : 'denied';
  } finally {
    running--;
    queue.shift()?.();
  }
}
