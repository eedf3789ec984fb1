// HTTPS with the real daemon: a certificate swapped under it is taken on SIGHUP (new connections
// get it, open ones finish on the old one; the log names subject and expiry and warns when it ends
// soon; a bad pair keeps the old one and says why), and SIGTERM during large TLS downloads never
// cuts one short.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { makeSelfSignedPair } from '../support/certificate';
import { configText, writeConfig } from '../support/cli';
import { Daemon, freePort, sleep, startDaemonWithConfig } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

let users: TestUsers;
let scratch: string;
const started: Daemon[] = [];
before(() => {
  users = createUsers();
  scratch = mkdtempSync(join(tmpdir(), 'privdav-tls-'));
});
after(async () => {
  await Promise.all(started.map((daemon) => daemon.stop()));
  users.remove();
});

/** A self-signed pair made by openssl, as an admin (or certbot) would put it in place. */
function makePair(name: string, days: number): { cert: string; key: string } {
  const { cert, key } = makeSelfSignedPair(scratch, name, { days });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

/** The subject openssl s_client is shown by a fresh connection. */
function servedSubject(port: number): string {
  const output = execFileSync(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost'],
    {
      input: '',
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'ignore'],
      timeout: 10_000,
    },
  );
  return /^subject=(.*)$/m.exec(output)?.[1]?.trim() ?? `no subject in:\n${output}`;
}

async function startTls(files: { cert: string; key: string }, extra: string[] = []): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'privdav-tls-daemon-'));
  const port = await freePort();
  const path = join(dir, 'privdav.toml');
  writeConfig(
    path,
    configText({
      port,
      stateDir: join(dir, 'state'),
      set: { server: [`tls_cert = "${files.cert}"`, `tls_key = "${files.key}"`, ...extra] },
    }),
  );
  const daemon = await startDaemonWithConfig(path, port, dir, { tls: true });
  started.push(daemon);
  return daemon;
}

async function waitForLog(daemon: Daemon, pattern: RegExp, from: number): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const recent = daemon.output().slice(from);
    if (pattern.test(recent)) return recent;
    assert.ok(Date.now() < deadline, `the log never showed ${pattern}:\n${recent}`);
    await sleep(50);
  }
}

function authorization(): string {
  return `Basic ${Buffer.from(`${users.alice.name}:${users.alice.password}`).toString('base64')}`;
}

describe('certificate reload', () => {
  test('SIGHUP after a swap: new connections get the new certificate, an open one keeps the old; a bad pair is refused and the running one stays', async () => {
    const files = { cert: join(scratch, 'live.crt'), key: join(scratch, 'live.key') };
    const old = makePair('privdav-old', 365);
    writeFileSync(files.cert, old.cert);
    writeFileSync(files.key, old.key, { mode: 0o600 });
    const daemon = await startTls(files);
    assert.match(daemon.output(), /certificate loaded subject="?CN=privdav-old"? expires=\d{4}-/);
    assert.equal(servedSubject(daemon.port), 'CN = privdav-old');

    // A keep-alive connection opened on the old certificate.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const ask = (): Promise<{ status: number; subject: string }> =>
      new Promise((resolve, reject) => {
        https
          .request(
            {
              host: '127.0.0.1',
              port: daemon.port,
              path: '/',
              method: 'PROPFIND',
              agent,
              headers: { Authorization: authorization(), Depth: '0' },
            },
            (res) => {
              const subject = String((res.socket as tls.TLSSocket).getPeerCertificate().subject.CN);
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode!, subject }));
            },
          )
          .on('error', reject)
          .end();
      });
    assert.deepEqual(await ask(), { status: 207, subject: 'privdav-old' });

    const renewed = makePair('privdav-new', 5);
    writeFileSync(files.cert, renewed.cert);
    writeFileSync(files.key, renewed.key, { mode: 0o600 });
    let from = daemon.output().length;
    process.kill(daemon.pid, 'SIGHUP');
    const log = await waitForLog(daemon, /certificate replaced/, from);
    assert.match(log, /certificate loaded subject="?CN=privdav-new"? expires=\d{4}-/);
    assert.match(log, /warn monitor\[\d+\]: the certificate expires within 14 days subject="?CN=privdav-new/);
    assert.equal(servedSubject(daemon.port), 'CN = privdav-new', 'a new connection gets the new certificate');
    assert.deepEqual(
      await ask(),
      { status: 207, subject: 'privdav-old' },
      'the open connection finishes on the old one',
    );
    agent.destroy();

    // A key that is not the certificate's: the reload is refused with the reason, the running pair stays.
    writeFileSync(files.key, makePair('privdav-other', 30).key, { mode: 0o600 });
    from = daemon.output().length;
    process.kill(daemon.pid, 'SIGHUP');
    const refused = await waitForLog(daemon, /reload failed; keeping the running configuration/, from);
    assert.match(refused, /server\.tls_key: .* is not the private key of the certificate/);
    assert.equal(servedSubject(daemon.port), 'CN = privdav-new');
  });
});

describe('drain', () => {
  test('SIGTERM during large TLS downloads: every download is complete, round after round', async () => {
    const files = { cert: join(scratch, 'drain.crt'), key: join(scratch, 'drain.key') };
    const pair = makePair('privdav-drain', 30);
    writeFileSync(files.cert, pair.cert);
    writeFileSync(files.key, pair.key, { mode: 0o600 });
    const size = 12 * 1024 * 1024;
    const content = Buffer.alloc(size, 7);
    const target = join(users.alice.home, 'big.bin');
    writeFileSync(target, content);
    chownSync(target, users.alice.uid, users.alice.gid);
    let daemon = await startTls(files);

    /** A client reading at about `bytesPerSecond`, so the response's tail is still buffered when SIGTERM comes. */
    const download = (port: number, bytesPerSecond: number): Promise<{ status: number; received: number }> =>
      new Promise((resolve, reject) => {
        const startedAt = Date.now();
        https
          .get(
            {
              host: '127.0.0.1',
              port,
              path: '/big.bin',
              agent: false,
              rejectUnauthorized: false,
              headers: { Authorization: authorization() },
            },
            (res) => {
              let received = 0;
              res.on('data', (chunk: Buffer) => {
                received += chunk.length;
                const ahead = (received / bytesPerSecond) * 1000 - (Date.now() - startedAt);
                if (ahead > 20) {
                  res.pause();
                  setTimeout(() => res.resume(), ahead);
                }
              });
              res.on('end', () => resolve({ status: res.statusCode!, received }));
              res.on('error', () => resolve({ status: res.statusCode!, received }));
              res.on('aborted', () => resolve({ status: res.statusCode!, received }));
            },
          )
          .on('error', reject);
      });

    const rounds = 6;
    const perRound = 3;
    let truncated = 0;
    for (let round = 0; round < rounds; round++) {
      // Each client at its own pace: their ends fall at different moments of the drain.
      const downloads = Array.from({ length: perRound }, (_, index) =>
        download(daemon.port, (8 + 4 * index) << 20),
      );
      await sleep(400 + 150 * (round % 3));
      process.kill(daemon.pid, 'SIGTERM');
      const results = await Promise.all(downloads);
      for (const result of results) {
        assert.equal(result.status, 200);
        if (result.received !== size) truncated++;
      }
      // restart() waits for this daemon's exit, then starts it again on the same config and port.
      if (round < rounds - 1) {
        daemon = await daemon.restart();
        started.push(daemon);
      }
    }
    process.stdout.write(
      `# drain over TLS: ${rounds * perRound} downloads of ${size >> 20} MiB, ${truncated} truncated\n`,
    );
    assert.equal(truncated, 0, `${truncated} of ${rounds * perRound} downloads were cut short`);
  });
});
