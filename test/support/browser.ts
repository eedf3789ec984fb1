// A real browser for the tests that prove an attack fails in one: Debian's headless Chromium with a
// fresh profile, no network beyond what the page asks for, its DOM printed once the page settled.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Opens `url` (credentials may be in it, as a user's browser would have them cached) and returns
 * the DOM Chromium dumps after the load event: what the page's scripts left there. A page that
 * never settles (a download waits forever) is ended after `timeoutMs` and gives what was printed.
 */
export function dumpDom(
  url: string,
  options: { timeoutMs?: number; flags?: string[] } = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const profile = mkdtempSync(join(tmpdir(), 'privdav-chromium-'));
  const flags = [...FLAGS, ...(options.flags ?? []), `--user-data-dir=${profile}`, '--dump-dom', url];
  const child = spawn('chromium', flags, {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let dom = '';
  child.stdout.on('data', (chunk: Buffer) => (dom += chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      resolve(dom);
    });
  });
}
