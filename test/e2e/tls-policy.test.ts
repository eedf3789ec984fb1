// The TLS policy through the real daemon, checked with openssl s_client: TLS 1.2 only with ECDHE and
// AEAD suites (no static RSA, no CBC), TLS 1.3, nothing older; and plain HTTP on an address other
// hosts can reach is warned about by check-config.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Daemon, freePort, startDaemon } from '../support/daemon';
import { configText, runPrivdav, writeConfig } from '../support/cli';
import { makeSelfSignedPair } from '../support/certificate';

let dir: string;
let daemon: Daemon;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'privdav-tls-'));
  // RSA: the refused static-RSA suites must be possible for this certificate at all.
  const certificate = makeSelfSignedPair(dir, 'server', { commonName: '127.0.0.1', key: 'rsa' });
  daemon = await startDaemon({
    extra: { server: [`tls_cert = "${certificate.cert}"`, `tls_key = "${certificate.key}"`] },
    tls: true,
  });
});
after(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The cipher openssl s_client agreed on with these options, or null when the handshake failed. */
function negotiate(options: string[]): string | null {
  const result = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${daemon.port}`, ...options], {
    input: '',
    encoding: 'utf8',
    timeout: 10_000,
  });
  const cipher = /Cipher is (\S+)/.exec(result.stdout)?.[1];
  return result.status === 0 && cipher !== undefined && cipher !== '(NONE)' ? cipher : null;
}

test('TLS 1.2 with a static-RSA CBC suite is refused', () => {
  assert.equal(negotiate(['-tls1_2', '-cipher', 'AES128-SHA']), null);
  assert.equal(negotiate(['-tls1_2', '-cipher', 'AES256-GCM-SHA384']), null, 'static RSA, even with GCM');
  assert.equal(negotiate(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA']), null, 'ECDHE with CBC');
});

test('TLS 1.2 with ECDHE and AES-GCM, and TLS 1.3, are accepted', () => {
  assert.equal(negotiate(['-tls1_2']), 'ECDHE-RSA-AES128-GCM-SHA256');
  assert.match(negotiate(['-tls1_3']) ?? '', /^TLS_(AES|CHACHA20)/);
});

test('TLS 1.1 is refused', () => {
  assert.equal(negotiate(['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']), null);
});

test('check-config warns about plain HTTP on a non-loopback address, and not on loopback', async () => {
  const path = join(dir, 'plain.toml');
  const port = await freePort();
  writeConfig(
    path,
    configText({ port, stateDir: join(dir, 'state'), set: { server: [`listen = ["0.0.0.0:${port}"]`] } }),
  );
  const exposed = runPrivdav(['check-config', '--config', path]);
  assert.equal(exposed.status, 0);
  assert.match(
    exposed.stderr,
    /warning: server\.listen: plain HTTP on 0\.0\.0\.0:\d+, which is not a loopback address: Basic authentication sends passwords in clear/,
  );
  writeConfig(path, configText({ port, stateDir: join(dir, 'state') }));
  assert.equal(runPrivdav(['check-config', '--config', path]).stderr, '');
});
