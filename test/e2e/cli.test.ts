// The `privdav` command as an admin meets it: --version, --help, usage errors, check-config's
// reports (every problem, with file, line and key), and `serve` failing early and clearly when
// the account or the listen address is not usable.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../support/daemon';
import { PRIVDAV_BIN, configText, runPrivdav, tryConnect, writeConfig } from '../support/cli';

const ROOT = join(__dirname, '..', '..', '..');
const BUNDLED_CONFIG = join(ROOT, 'config', 'privdav.toml');

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'privdav-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('--version, --help and usage errors', () => {
  test('--version prints the package version and exits 0', () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = runPrivdav(['--version']);
    assert.equal(result.status, 0);
    assert.equal(result.stdout, `privdav ${version}\n`);
    assert.equal(result.stderr, '');
  });

  test('--help prints the usage with every command on stdout and exits 0', () => {
    const result = runPrivdav(['--help']);
    assert.equal(result.status, 0);
    assert.match(result.stdout, /^Usage: privdav/);
    for (const word of ['serve', 'check-config', '--config FILE', '--version', '/etc/privdav/privdav.toml']) {
      assert.ok(result.stdout.includes(word), `usage mentions ${word}`);
    }
    assert.equal(result.stderr, '');
  });

  test('an unknown argument exits 2 with the argument named and the usage on stderr', () => {
    for (const args of [['--frobnicate'], ['start'], ['check-config', 'extra']]) {
      const result = runPrivdav(args);
      assert.equal(result.status, 2, `privdav ${args.join(' ')}`);
      assert.ok(result.stderr.includes(`unknown argument: ${args.at(-1)}`), result.stderr);
      assert.match(result.stderr, /Usage: privdav/);
      assert.equal(result.stdout, '');
    }
  });

  test('--config without a file name exits 2 and says what is missing', () => {
    const result = runPrivdav(['check-config', '--config']);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--config needs a file name/);
  });
});

describe('check-config', () => {
  test('the bundled config/privdav.toml is OK', () => {
    const result = runPrivdav(['check-config', '--config', BUNDLED_CONFIG]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /OK/);
    assert.equal(result.stderr, '');
  });

  test('a minimal file (one key, defaults for the rest) is OK, also as --config=FILE', () => {
    const file = join(dir, 'minimal.toml');
    writeConfig(file, '[server]\nlisten = ["127.0.0.1:8080"]\n');
    const result = runPrivdav(['check-config', `--config=${file}`]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${file}: OK\n`);
  });

  test('check-config also reports a server.user or PAM service missing from this machine', () => {
    const file = join(dir, 'missing-system.toml');
    writeConfig(
      file,
      '[server]\nuser = "nosuchprivdavuser"\n[auth]\npam_service = "nosuch-privdav-service"\n',
    );
    const result = runPrivdav(['check-config', '--config', file]);
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /server\.user: the account "nosuchprivdavuser" does not exist; create it with useradd/,
    );
    assert.match(result.stderr, /auth\.pam_service: \/etc\/pam\.d\/nosuch-privdav-service does not exist/);
  });

  test('a file with three different errors: exit 1, every problem as FILE:LINE: key: message', () => {
    const file = join(dir, 'three-errors.toml');
    writeConfig(
      file,
      [
        '[server]', //                              1
        'listen = ["localhost:8080"]', //           2  host names are not accepted
        'user = "privdav"', //                      3
        '', //                                      4
        '[auth]', //                                5
        'min_uid = 0', //                           6  root's uid
        '', //                                      7
        '[shares]', //                              8
        'layout = "flat"', //                       9  not home or tilde
        '', //                                      10
      ].join('\n'),
    );
    const result = runPrivdav(['check-config', '--config', file]);
    assert.equal(result.status, 1);
    assert.doesNotMatch(result.stdout, /OK/);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 3, result.stderr);
    const expected: Array<[number, string, RegExp]> = [
      [2, 'server.listen', /localhost/],
      [6, 'auth.min_uid', /too small|root/],
      [9, 'shares.layout', /"home" or "tilde"/],
    ];
    expected.forEach(([line, key, message], index) => {
      const prefix = `${file}:${line}: ${key}: `;
      assert.ok(lines[index]!.startsWith(prefix), `expected "${prefix}..." got "${lines[index]}"`);
      assert.match(lines[index]!.slice(prefix.length), message);
    });
  });

  test('a TOML syntax error names the file and line', () => {
    const file = join(dir, 'syntax.toml');
    writeConfig(file, '[server]\nuser = "privdav"\nlisten = [\n');
    const result = runPrivdav(['check-config', '--config', file]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, new RegExp(`^${escape(file)}:\\d+: TOML syntax error`));
  });

  test('a missing file exits 1 with a message that says what to do', () => {
    const file = join(dir, 'nowhere', 'privdav.toml');
    const result = runPrivdav(['check-config', '--config', file]);
    assert.equal(result.status, 1);
    assert.ok(result.stderr.startsWith(`${file}: `), result.stderr);
    assert.match(result.stderr, /does not exist/);
    assert.match(result.stderr, /config\/privdav\.toml/, 'points at the commented example');
    assert.match(result.stderr, /--config FILE/);
  });

  test('a config file others can write is refused with the chmod that fixes it', () => {
    const file = join(dir, 'world-writable.toml');
    writeConfig(file, '[server]\nuser = "privdav"\n');
    chmodSync(file, 0o666);
    const result = runPrivdav(['check-config', '--config', file]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /writable by other accounts/);
    assert.match(result.stderr, /chmod go-w/);
  });
});

describe('serve fails at start, clearly', () => {
  test('server.user that does not exist: exit 1 naming the key and how to create the account', async () => {
    const port = await freePort();
    const file = join(dir, 'no-such-user.toml');
    const stateDir = join(dir, 'state-no-user');
    writeConfig(file, configText({ port, stateDir, set: { server: ['user = "pdnosuchacct"'] } }));
    // check-config reports this file OK today (it checks the file, not the system); serve must not.
    const result = runServe(file);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /server\.user "pdnosuchacct" does not exist/);
    assert.match(result.stderr, /useradd --system .*pdnosuchacct/);
    assert.equal(await tryConnect(port), 'ECONNREFUSED', 'nothing was left listening');
  });

  test('a listen address already in use: exit 1 naming the address, the cause and the key', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const file = join(dir, 'in-use.toml');
      writeConfig(file, configText({ port, stateDir: join(dir, 'state-in-use') }));
      const result = runServe(file);
      assert.equal(result.status, 1, result.stderr);
      assert.ok(result.stderr.includes(`cannot listen on 127.0.0.1:${port}`), result.stderr);
      assert.match(result.stderr, /EADDRINUSE|in use/);
      assert.match(result.stderr, /server\.listen/);
      // It failed before it started anything: no web process was spawned.
      assert.doesNotMatch(result.stderr, /web process started/);
    } finally {
      blocker.close();
    }
  });

  test('serve with an invalid file exits 1 with the same report as check-config', async () => {
    const file = join(dir, 'invalid-serve.toml');
    writeConfig(file, '[limits]\nmax_upload_bytes = "lots"\n');
    const result = runServe(file);
    assert.equal(result.status, 1);
    assert.match(result.stderr, new RegExp(`^${escape(file)}:2: limits\\.max_upload_bytes: `));
  });
});

/** `privdav serve --config FILE`, expected to fail at once: bounded so a daemon that starts anyway fails the test. */
function runServe(file: string): { status: number | null; stderr: string } {
  const result = spawnSync(PRIVDAV_BIN, ['serve', '--config', file], { encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined || result.signal !== null) {
    return { status: null, stderr: `serve did not exit by itself (${result.signal}): ${result.stderr}` };
  }
  return { status: result.status, stderr: result.stderr };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
