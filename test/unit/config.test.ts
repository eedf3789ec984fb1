// Behaviour of the configuration reader: defaults, the bundled file, and that every mistake an admin can
// make is reported with its key and line — all of them at once.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { makeSelfSignedPair } from '../support/certificate';
import {
  changesNeedingRestart,
  ConfigError,
  configWarnings,
  type ConfigProblem,
  DEFAULT_CONFIG_PATH,
  WORKER_MEMORY_BUDGET,
  defaultConfig,
  defaultMaxWorkers,
  loadConfig,
  parseConfig,
} from '../../helper/config';

const BUNDLED_CONFIG = path.resolve(__dirname, '../../../config/privdav.toml');

/** The problems parseConfig reports for `text`; fails the test if it accepts it. */
function problemsOf(text: string): ConfigProblem[] {
  try {
    parseConfig(text, 'test.toml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail(`expected problems in:\n${text}`);
}

/** The single problem reported for `text`. */
function problemOf(text: string): ConfigProblem {
  const problems = problemsOf(text);
  assert.equal(problems.length, 1, JSON.stringify(problems, null, 2));
  return problems[0];
}

function withTemporaryDirectory(run: (directory: string) => void): void {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'privdav-config-'));
  try {
    run(directory);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

describe('defaults and the bundled file', () => {
  test('an empty file gives the defaults', () => {
    assert.deepEqual(parseConfig('', null), defaultConfig());
  });

  test('the bundled config/privdav.toml sets every key to its default', () => {
    const config = loadConfig(BUNDLED_CONFIG);
    assert.deepEqual(config, { ...defaultConfig(), source: BUNDLED_CONFIG });
  });

  test('the bundled file mentions every key the reader knows', () => {
    const bundled = fs.readFileSync(BUNDLED_CONFIG, 'utf8');
    // Renaming a key in the schema without the file would make this problem list non-empty.
    const renamed = bundled.replace(/^(\w+) = /gm, 'x_$1 = ');
    const unknown = problemsOf(renamed).filter((problem) => problem.message.includes('unknown key'));
    const { source: _source, ...sections } = defaultConfig();
    const keyCount = Object.values(sections).reduce(
      (count, section) => count + Object.keys(section).length,
      0,
    );
    assert.equal(unknown.length, keyCount);
  });

  test('the defaults listen on 127.0.0.1:8080, keep state in /var/lib/privdav and read /etc/privdav', () => {
    const config = defaultConfig();
    assert.deepEqual(config.server.listen, [{ host: '127.0.0.1', port: 8080, text: '127.0.0.1:8080' }]);
    assert.equal(config.server.stateDir, '/var/lib/privdav');
    assert.equal(DEFAULT_CONFIG_PATH, '/etc/privdav/privdav.toml');
  });

  test('values that are set replace the defaults and nothing else', () => {
    const config = parseConfig('[auth]\nmin_uid = 500\n[log]\nlevel = "debug"\n', 'x.toml');
    const expected = defaultConfig();
    expected.auth.minUid = 500;
    expected.log.level = 'debug';
    expected.source = 'x.toml';
    assert.deepEqual(config, expected);
  });
});

describe('problems name their key and line', () => {
  test('a string where an integer belongs names what was expected', () => {
    const problem = problemOf('[auth]\n\nmin_uid = "1000"\n');
    assert.deepEqual([problem.key, problem.line], ['auth.min_uid', 3]);
    assert.match(problem.message, /expected an integer, got a string \("1000"\)/);
  });

  test('a float where an integer belongs is refused', () => {
    const problem = problemOf('[server]\nweb_processes = 2.0\n');
    assert.deepEqual([problem.key, problem.line], ['server.web_processes', 2]);
    assert.match(problem.message, /expected an integer, got a float/);
  });

  test('an out-of-range integer names the bound', () => {
    const problem = problemOf('[server]\nweb_processes = 17\n');
    assert.match(problem.message, /17 is too large: the maximum is 16/);
  });

  test('several problems are all reported, in line order, each with its own line', () => {
    const problems = problemsOf(
      [
        '[server]',
        'user = "root"',
        'web_processes = 0',
        '[auth]',
        'min_uid = 0',
        '[log]',
        'level = "loud"',
      ].join('\n'),
    );
    assert.deepEqual(
      problems.map((problem) => [problem.key, problem.line]),
      [
        ['server.user', 2],
        ['server.web_processes', 3],
        ['auth.min_uid', 5],
        ['log.level', 7],
      ],
    );
  });

  test('the error message lists every problem as FILE:LINE: key: message', () => {
    assert.throws(
      () => parseConfig('[auth]\nmin_uid = 0\nrealm = ""\n', '/etc/privdav/privdav.toml'),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.code, 'PRIVDAV_CONFIG');
        assert.equal(
          error.message,
          '/etc/privdav/privdav.toml:2: auth.min_uid: 0 is too small: the minimum is 1 (uid 0 is root, who can never log in)\n' +
            '/etc/privdav/privdav.toml:3: auth.realm: must not be empty',
        );
        return true;
      },
    );
  });

  test('a key written as a dotted key is found on its line', () => {
    const problem = problemOf('# comment\nauth.min_uid = 0\n');
    assert.deepEqual([problem.key, problem.line], ['auth.min_uid', 2]);
  });

  test('a key inside an inline table is found on its line', () => {
    const problem = problemOf('\n\nauth = { realm = "r", min_uid = 0 }\n');
    assert.deepEqual([problem.key, problem.line], ['auth.min_uid', 3]);
  });

  test('a quoted key is found on its line', () => {
    const problem = problemOf('[auth]\n"min_uid" = 0\n');
    assert.deepEqual([problem.key, problem.line], ['auth.min_uid', 2]);
  });

  test('a multi-line string before a key does not confuse the line', () => {
    const text = '[auth]\nrealm = """\nmin_uid = 5\n"""\nmin_uid = 0\n';
    const problems = problemsOf(text);
    const minUid = problems.find((problem) => problem.key === 'auth.min_uid');
    assert.equal(minUid?.line, 5);
  });

  test("a bad entry of a multi-line array is reported on the entry's own line", () => {
    const problem = problemOf('[auth]\ndeny_users = [\n  "alice",\n  "bad name",\n]\n');
    assert.deepEqual([problem.key, problem.line], ['auth.deny_users', 4]);
    assert.match(problem.message, /entry 2: "bad name" is not a valid user or group name/);
  });

  test('a section that is not a table is refused', () => {
    const problem = problemOf('log = "debug"\n');
    assert.deepEqual([problem.key, problem.line], ['log', 1]);
    assert.match(problem.message, /expected a table \[log\]/);
  });
});

describe('unknown names', () => {
  test('a misspelt key gets a suggestion', () => {
    const problem = problemOf('[server]\n\nlisten = ["127.0.0.1:80"]\nstate_directory = "/srv"\n');
    assert.deepEqual([problem.key, problem.line], ['server.state_directory', 4]);
    assert.match(problem.message, /unknown key; did you mean server\.state_dir\?/);
  });

  test('a key in the wrong section names the right one', () => {
    const problem = problemOf('[server]\nmin_uid = 1000\n');
    assert.equal(problem.key, 'server.min_uid');
    assert.match(problem.message, /did you mean auth\.min_uid\? \(it belongs in \[auth\]\)/);
  });

  test('a key above every section is pointed to its section', () => {
    const problem = problemOf('realm = "x"\n[auth]\n');
    assert.deepEqual([problem.key, problem.line], ['realm', 1]);
    assert.match(problem.message, /did you mean auth\.realm\?/);
  });

  test('a misspelt section gets a suggestion', () => {
    const problem = problemOf('[limit]\nmax_connections = 5\n');
    assert.deepEqual([problem.key, problem.line], ['limit', 1]);
    assert.match(problem.message, /unknown section; did you mean \[limits\]\?/);
  });

  test("a key far from every known one lists the section's keys", () => {
    const problem = problemOf('[storage]\ncompression = true\n');
    assert.match(problem.message, /unknown key; \[storage\] has durable/);
  });
});

describe('TOML syntax errors', () => {
  test("a syntax error is reported with the parser's line", () => {
    const problem = problemOf('[server]\nuser = "privdav"\nweb_processes = \n');
    assert.equal(problem.key, '');
    assert.equal(problem.line, 3);
    assert.match(problem.message, /^TOML syntax error: /);
  });

  test('a key defined twice is a syntax error on the second line', () => {
    const problem = problemOf('[auth]\nmin_uid = 1000\nmin_uid = 2000\n');
    assert.equal(problem.line, 3);
  });

  test('the message of a syntax error has no key part', () => {
    assert.throws(() => parseConfig('[server\n', 'f.toml'), { message: /^f\.toml:1: TOML syntax error: / });
  });
});

describe('durations', () => {
  const credentialTtl = (value: string): number =>
    parseConfig(`[auth]\ncredential_ttl = ${value}\n`, null).auth.credentialTtlMs;

  test('units ms, s, m, h, d and combinations are accepted', () => {
    assert.equal(credentialTtl('"15000ms"'), 15_000);
    assert.equal(credentialTtl('"90s"'), 90_000);
    assert.equal(credentialTtl('"5m"'), 300_000);
    assert.equal(credentialTtl('"2h"'), 7_200_000);
    assert.equal(credentialTtl('"1d"'), 86_400_000);
    assert.equal(credentialTtl('"1h30m"'), 5_400_000);
  });

  test('a bare integer is refused with the expected form', () => {
    const problem = problemOf('[auth]\ncredential_ttl = 600\n');
    assert.deepEqual([problem.key, problem.line], ['auth.credential_ttl', 2]);
    assert.match(problem.message, /expected a duration string like "1500ms", "10s".*got an integer \(600\)/);
  });

  test('a number without a unit or with an unknown unit is refused', () => {
    assert.match(problemOf('[auth]\ncredential_ttl = "600"\n').message, /"600" is not a duration string/);
    assert.match(problemOf('[auth]\ncredential_ttl = "10 min"\n').message, /is not a duration string/);
  });

  test('a duration out of range names the bound in the same form', () => {
    assert.match(
      problemOf('[auth]\ncredential_ttl = "5s"\n').message,
      /"5s" is too small: the minimum is "10s"/,
    );
    assert.match(problemOf('[auth]\nfailure_delay = "500ms"\n').message, /too small: the minimum is "1s"/);
    assert.match(problemOf('[auth]\nfailure_delay = "11s"\n').message, /too large: the maximum is "10s"/);
  });

  test('lock bounds: owner bytes, locks per user and per resource, the database size', () => {
    const limits = parseConfig(
      '[limits]\nmax_lock_owner_bytes = "1KiB"\nmax_locks_per_user = 10\nmax_locks_per_resource = 2\nmax_lock_db_bytes = "8MiB"\n',
      null,
    ).limits;
    assert.equal(limits.maxLockOwnerBytes, 1024);
    assert.equal(limits.maxLocksPerUser, 10);
    assert.equal(limits.maxLocksPerResource, 2);
    assert.equal(limits.maxLockDbBytes, 8 * 1024 * 1024);
    assert.deepEqual(
      [defaultConfig().limits.maxLockOwnerBytes, defaultConfig().limits.maxLocksPerUser],
      [4096, 1000],
    );
    const problem = problemOf('[limits]\nmax_locks_per_user = 0\n');
    assert.equal(problem.key, 'limits.max_locks_per_user');
    assert.equal(problem.line, 2);
    assert.match(problemOf('[limits]\nmax_lock_db_bytes = "1KiB"\n').message, /too small/);
  });

  test('locks.database is "sqlite" or a postgresql:// URL with host and database', () => {
    assert.equal(defaultConfig().locks.database, 'sqlite');
    const url = 'postgresql://privdav:s%40cret@db.example.org:5433/privdav?sslmode=verify-full';
    assert.equal(parseConfig(`[locks]\ndatabase = "${url}"\n`, null).locks.database, url);
    const problem = (value: string): ConfigProblem => problemOf(`[locks]\n\ndatabase = "${value}"\n`);
    assert.equal(problem('mysql://db/x').key, 'locks.database');
    assert.equal(problem('mysql://db/x').line, 3);
    assert.match(problem('mysql://db/x').message, /scheme "mysql" is not supported/);
    assert.match(problem('postgresql:///privdav').message, /names no host/);
    assert.match(problem('postgresql://db.example.org').message, /names no database/);
    assert.match(problem('postgresql://db.example.org/a/b').message, /names no database/);
    assert.match(problem('postgresql://db/x?host=/run/postgresql').message, /"host" is not supported/);
    assert.match(problem('postgresql://db/x?sslmode=maybe').message, /sslmode must be one of/);
    assert.match(problem('sqlite3').message, /is not "sqlite" or a URL/);
    assert.deepEqual(
      changesNeedingRestart(defaultConfig(), parseConfig(`[locks]\ndatabase = "${url}"\n`, null)),
      ['locks.database'],
    );
  });

  test('a password in locks.database is refused in a file every account can read', () => {
    withTemporaryDirectory((directory) => {
      const file = path.join(directory, 'privdav.toml');
      fs.writeFileSync(file, '[locks]\ndatabase = "postgresql://privdav:pw@127.0.0.1/privdav"\n', {
        mode: 0o644,
      });
      fs.chmodSync(file, 0o644);
      assert.throws(() => loadConfig(file), /locks\.database.*readable by every account \(mode 644\)/s);
      fs.chmodSync(file, 0o640);
      assert.equal(loadConfig(file).locks.database, 'postgresql://privdav:pw@127.0.0.1/privdav');
    });
  });

  test('the worker deadlines default to 2 minutes per call and 1 hour per tree operation, and are read with key and line', () => {
    const defaults = parseConfig('', null).limits;
    assert.equal(defaults.workerCallTimeoutMs, 120_000);
    assert.equal(defaults.workerTreeTimeoutMs, 3_600_000);
    const set = parseConfig(
      '[limits]\nworker_call_timeout = "30s"\nworker_tree_timeout = "3h"\n',
      null,
    ).limits;
    assert.equal(set.workerCallTimeoutMs, 30_000);
    assert.equal(set.workerTreeTimeoutMs, 3 * 3_600_000);
    const problem = problemOf('[limits]\n\nworker_call_timeout = "500ms"\n');
    assert.deepEqual([problem.key, problem.line], ['limits.worker_call_timeout', 3]);
    assert.match(
      problemOf('[limits]\nworker_tree_timeout = "8d"\n').message,
      /too large: the maximum is "7d"/,
    );
  });

  test('the lock timeout is kept in whole seconds', () => {
    assert.equal(parseConfig('[limits]\nmax_lock_timeout = "2h"\n', null).limits.maxLockTimeoutS, 7200);
    assert.match(
      problemOf('[limits]\nmax_lock_timeout = "1500ms"\n').message,
      /not a whole number of seconds/,
    );
  });
});

describe('sizes', () => {
  const maxXml = (value: string): number =>
    parseConfig(`[limits]\nmax_xml_bytes = ${value}\n`, null).limits.maxXmlBytes;

  test('integers are bytes; KiB/MiB/GiB are powers of 1024 and kB/MB/GB powers of 1000', () => {
    assert.equal(maxXml('4096'), 4096);
    assert.equal(maxXml('"2048B"'), 2048);
    assert.equal(maxXml('"512KiB"'), 512 * 1024);
    assert.equal(maxXml('"2MiB"'), 2 * 1024 * 1024);
    assert.equal(maxXml('"2 MiB"'), 2 * 1024 * 1024);
    assert.equal(maxXml('"500kB"'), 500_000);
    assert.equal(maxXml('"2MB"'), 2_000_000);
    assert.equal(
      parseConfig('[limits]\nmax_upload_bytes = "3GiB"\n', null).limits.maxUploadBytes,
      3 * 1024 ** 3,
    );
  });

  test('max_upload_bytes = 0 means unlimited and is accepted', () => {
    assert.equal(parseConfig('[limits]\nmax_upload_bytes = 0\n', null).limits.maxUploadBytes, 0);
  });

  test('an unknown unit is refused with the list of units', () => {
    const problem = problemOf('[limits]\nmax_xml_bytes = "1 megabyte"\n');
    assert.deepEqual([problem.key, problem.line], ['limits.max_xml_bytes', 2]);
    assert.match(problem.message, /units: B, KiB, MiB/);
  });

  test('a size out of range names the bound', () => {
    assert.match(
      problemOf('[limits]\nmax_header_bytes = 100\n').message,
      /100 is too small: the minimum is 1 KiB \(1024\)/,
    );
    assert.match(
      problemOf('[limits]\nmax_header_bytes = "2MiB"\n').message,
      /too large: the maximum is 1 MiB/,
    );
    assert.match(problemOf('[limits]\nmax_upload_bytes = -1\n').message, /-1 is too small/);
  });
});

describe('listen addresses', () => {
  const listen = (...addresses: string[]): string[] =>
    parseConfig(`[server]\nlisten = ${JSON.stringify(addresses)}\n`, null).server.listen.map(
      (address) => address.text,
    );

  test('IPv4, bracketed IPv6 and the wildcards are accepted', () => {
    const config = parseConfig('[server]\nlisten = ["0.0.0.0:443", "[::]:443", "[::1]:8080"]\n', null);
    assert.deepEqual(config.server.listen, [
      { host: '0.0.0.0', port: 443, text: '0.0.0.0:443' },
      { host: '::', port: 443, text: '[::]:443' },
      { host: '::1', port: 8080, text: '[::1]:8080' },
    ]);
  });

  test('IPv6 addresses are written in their short form', () => {
    assert.deepEqual(listen('[0:0:0:0:0:0:0:1]:80'), ['[::1]:80']);
  });

  test('IPv6 without brackets is refused with the bracketed form', () => {
    const problem = problemOf('[server]\nlisten = ["::1:8080"]\n');
    assert.deepEqual([problem.key, problem.line], ['server.listen', 2]);
    assert.match(problem.message, /write IPv6 addresses in brackets, e\.g\. "\[::1\]:8080"/);
  });

  test('host names are refused', () => {
    assert.match(problemOf('[server]\nlisten = ["localhost:8080"]\n').message, /host names are not accepted/);
  });

  test('ports must be 1 to 65535', () => {
    for (const address of ['127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:http', '127.0.0.1:', '127.0.0.1']) {
      const problem = problemOf(`[server]\nlisten = ["${address}"]\n`);
      assert.equal(problem.key, 'server.listen', address);
    }
    assert.match(
      problemOf('[server]\nlisten = ["127.0.0.1:70000"]\n').message,
      /port "70000" is not a number from 1 to 65535/,
    );
    assert.deepEqual(listen('127.0.0.1:1', '127.0.0.1:65535'), ['127.0.0.1:1', '127.0.0.1:65535']);
  });

  test('an empty list is refused', () => {
    assert.match(problemOf('[server]\nlisten = []\n').message, /at least one address/);
  });

  test('a duplicate address is refused, also when written differently', () => {
    const problem = problemOf('[server]\nlisten = [\n  "[::1]:80",\n  "[0::1]:80",\n]\n');
    assert.equal(problem.line, 4);
    assert.match(problem.message, /entry 2: \[::1\]:80 is listed twice/);
  });

  test('a wildcard and a specific address on one port are refused: the second bind would fail', () => {
    const problem = problemOf('[server]\nlisten = ["127.0.0.1:80", "0.0.0.0:80"]\n');
    assert.match(problem.message, /0\.0\.0\.0:80 overlaps 127\.0\.0\.1:80/);
    assert.deepEqual(listen('127.0.0.1:80', '0.0.0.0:81', '[::]:80'), [
      '127.0.0.1:80',
      '0.0.0.0:81',
      '[::]:80',
    ]);
  });

  test('every bad entry is reported, each on its line', () => {
    const problems = problemsOf('[server]\nlisten = [\n  "a:1",\n  "127.0.0.1:80",\n  "b:2",\n]\n');
    assert.deepEqual(
      problems.map((problem) => problem.line),
      [3, 5],
    );
  });
});

describe('security-relevant refusals', () => {
  test('content_origin is an origin, kept in its normal form; "" means none', () => {
    assert.equal(parseConfig('[server]\ncontent_origin = ""\n', null).server.contentOrigin, null);
    assert.equal(
      parseConfig('[server]\ncontent_origin = "https://Files.Example.org:443/"\n', null).server.contentOrigin,
      'https://files.example.org',
    );
    assert.equal(
      parseConfig('[server]\ncontent_origin = "http://files.example.org:8080"\n', null).server.contentOrigin,
      'http://files.example.org:8080',
    );
    for (const bad of [
      'files.example.org',
      'ftp://files.example.org',
      'https://files.example.org/raw',
      'https://u:p@files.example.org',
      'https://files.example.org?x',
    ]) {
      const problem = problemOf(`[server]\n\ncontent_origin = "${bad}"\n`);
      assert.deepEqual([problem.key, problem.line], ['server.content_origin', 3], bad);
      assert.match(problem.message, /origin|scheme and host only/, bad);
    }
  });

  test('max_propfind_properties is a positive integer with a bound', () => {
    assert.equal(
      parseConfig('[limits]\nmax_propfind_properties = 50\n', null).limits.maxPropfindProperties,
      50,
    );
    const problem = problemOf('[limits]\nmax_propfind_properties = 0\n');
    assert.deepEqual([problem.key, problem.line], ['limits.max_propfind_properties', 2]);
  });

  test('tls_cert without tls_key is refused, and the other way round', () => {
    const certOnly = problemOf('[server]\ntls_cert = "/etc/privdav/cert.pem"\n');
    assert.deepEqual([certOnly.key, certOnly.line], ['server.tls_cert', 2]);
    assert.match(certOnly.message, /set both \(HTTPS\) or neither/);
    const keyOnly = problemOf('[server]\ntls_cert = ""\n\ntls_key = "/etc/privdav/key.pem"\n');
    assert.deepEqual([keyOnly.key, keyOnly.line], ['server.tls_key', 4]);
  });

  test('tls_cert and tls_key together are accepted by parseConfig without touching the files', () => {
    const config = parseConfig(
      '[server]\ntls_cert = "/nonexistent/cert.pem"\ntls_key = "/nonexistent/key.pem"\n',
      null,
    );
    assert.equal(config.server.tlsCert, '/nonexistent/cert.pem');
    assert.equal(config.server.tlsKey, '/nonexistent/key.pem');
  });

  test('relative TLS paths are refused', () => {
    const problem = problemOf('[server]\ntls_cert = "cert.pem"\ntls_key = "/etc/key.pem"\n');
    assert.deepEqual([problem.key, problem.line], ['server.tls_cert', 2]);
    assert.match(problem.message, /not an absolute path/);
  });

  test('min_uid = 0 is refused: it would make root eligible', () => {
    const problem = problemOf('[auth]\nmin_uid = 0\n');
    assert.deepEqual([problem.key, problem.line], ['auth.min_uid', 2]);
    assert.match(problem.message, /uid 0 is root/);
  });

  test('user = "root" is refused for the web process', () => {
    const problem = problemOf('[server]\nuser = "root"\n');
    assert.deepEqual([problem.key, problem.line], ['server.user', 2]);
    assert.match(problem.message, /"root" is refused/);
  });

  test('root in allow_users is refused: root can never log in', () => {
    assert.match(
      problemOf('[auth]\nallow_users = ["alice", "root"]\n').message,
      /entry 2: root can never log in/,
    );
  });

  test('subdir with ".." is refused', () => {
    for (const subdir of ['..', '../other', 'WebDAV/../..', 'a/./b']) {
      const problem = problemOf(`[shares]\nsubdir = "${subdir}"\n`);
      assert.deepEqual([problem.key, problem.line], ['shares.subdir', 2], subdir);
    }
  });

  test('subdir with a leading "/" or a NUL is refused', () => {
    assert.match(problemOf('[shares]\nsubdir = "/srv/dav"\n').message, /no leading "\/"/);
    assert.match(problemOf('[shares]\nsubdir = "a\\u0000b"\n').message, /control character/);
  });

  test('subdir is normalised: repeated and trailing slashes go', () => {
    assert.equal(
      parseConfig('[shares]\nsubdir = "Documents//WebDAV/"\n', null).shares.subdir,
      'Documents/WebDAV',
    );
  });

  test('public_url keeps only the origin, and "" means none', () => {
    assert.equal(
      parseConfig('[server]\npublic_url = "HTTPS://Dav.Example.org:443/"\n', null).server.publicUrl,
      'https://dav.example.org',
    );
    assert.equal(
      parseConfig('[server]\npublic_url = "http://dav.example.org:8443"\n', null).server.publicUrl,
      'http://dav.example.org:8443',
    );
    assert.equal(parseConfig('[server]\npublic_url = ""\n', null).server.publicUrl, null);
  });

  test('public_url with a path, a query, credentials or another scheme is refused on its line', () => {
    for (const [url, message] of [
      ['https://dav.example.org/dav', /has a path/],
      ['https://dav.example.org/?a=1', /only scheme, host and port/],
      ['https://user:pw@dav.example.org', /only scheme, host and port/],
      ['ftp://dav.example.org', /https:\/\/ or http:\/\//],
      ['dav.example.org', /not a URL/],
    ] as const) {
      const problem = problemOf(`[server]\n\npublic_url = "${url}"\n`);
      assert.deepEqual([problem.key, problem.line], ['server.public_url', 3], url);
      assert.match(problem.message, message, url);
    }
  });

  test('shares.hide takes name patterns; a "/" or an empty pattern is refused', () => {
    assert.deepEqual(parseConfig('[shares]\nhide = [".DS_Store", "._*"]\n', null).shares.hide, [
      '.DS_Store',
      '._*',
    ]);
    assert.match(problemOf('[shares]\nhide = ["a/b"]\n').message, /entry 1: .*patterns match single names/);
    assert.match(problemOf('[shares]\nhide = ["ok", ""]\n').message, /entry 2: must not be empty/);
    assert.equal(problemOf('[shares]\nhide = ".DS_Store"\n').key, 'shares.hide');
  });

  test('state_dir must be absolute and not "/"', () => {
    assert.match(problemOf('[server]\nstate_dir = "var/lib/privdav"\n').message, /not an absolute path/);
    assert.match(problemOf('[server]\nstate_dir = "/"\n').message, /must not be "\/"/);
  });

  test('a pam_service that is not a plain file name is refused', () => {
    assert.equal(problemOf('[auth]\npam_service = "../shadow"\n').key, 'auth.pam_service');
    assert.equal(problemOf('[auth]\npam_service = ".."\n').key, 'auth.pam_service');
  });

  test('a realm with a quote is refused: it goes into a quoted header value', () => {
    assert.equal(problemOf('[auth]\nrealm = \'my "realm"\'\n').key, 'auth.realm');
  });
});

describe('login back-off, connections and TLS policy', () => {
  test('the back-off, PAM and connection keys are read with their units', () => {
    const config = parseConfig(
      [
        '[auth]',
        'pam_concurrency = 3',
        'pam_queue = 10',
        'backoff_pair_max = "1h"',
        'backoff_account_max = "30s"',
        'source_guesses_per_minute = 20',
        'remember_sources = "7d"',
        'ipv6_prefix = 56',
        'throttle_exempt = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]',
        '[limits]',
        'max_connections_per_address = 16',
        'header_timeout = "10s"',
        'header_timeout_max = "30s"',
        'header_min_rate = 1000',
        '[server]',
        'tls_min_version = "TLSv1.3"',
        'tls_ciphers = "ECDHE-RSA-AES128-GCM-SHA256"',
      ].join('\n'),
      null,
    );
    assert.deepEqual(
      [
        config.auth.pamConcurrency,
        config.auth.pamQueue,
        config.auth.pairMaxWaitMs,
        config.auth.accountMaxWaitMs,
      ],
      [3, 10, 3600_000, 30_000],
    );
    assert.deepEqual(
      [config.auth.sourceGuessesPerMinute, config.auth.rememberSourcesMs, config.auth.ipv6Prefix],
      [20, 7 * 24 * 3600_000, 56],
    );
    assert.deepEqual(config.auth.throttleExempt, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1']);
    assert.deepEqual(
      [
        config.limits.maxConnectionsPerAddress,
        config.limits.headerTimeoutMs,
        config.limits.headerTimeoutMaxMs,
      ],
      [16, 10_000, 30_000],
    );
    assert.equal(config.limits.headerMinRate, 1000);
    assert.equal(config.server.tlsMinVersion, 'TLSv1.3');
  });

  test('a malformed exemption names its entry and line', () => {
    const problem = problemOf('[auth]\nthrottle_exempt = [\n  "10.0.0.0/8",\n  "10.0.0.0/33",\n]\n');
    assert.deepEqual([problem.key, problem.line], ['auth.throttle_exempt', 4]);
    assert.match(problem.message, /entry 2: .*prefix length must be 0 to 32/);
    assert.match(problemOf('[auth]\nthrottle_exempt = ["proxy.example"]\n').message, /not a numeric address/);
  });

  test('header_timeout_max shorter than header_timeout is refused', () => {
    const problem = problemOf('[limits]\nheader_timeout = "30s"\nheader_timeout_max = "10s"\n');
    assert.deepEqual([problem.key, problem.line], ['limits.header_timeout_max', 3]);
  });

  test('a TLS cipher list OpenSSL cannot use is refused, and TLS below 1.2 cannot be asked for', () => {
    assert.match(problemOf('[server]\ntls_ciphers = "NO-SUCH-CIPHER"\n').message, /not usable/);
    assert.match(problemOf('[server]\ntls_ciphers = "ECDHE;rm"\n').message, /not an OpenSSL cipher list/);
    assert.equal(problemOf('[server]\ntls_min_version = "TLSv1"\n').key, 'server.tls_min_version');
  });

  test('the default TLS 1.2 suites are ECDHE with AEAD ciphers only', () => {
    for (const suite of defaultConfig().server.tlsCiphers.split(':'))
      assert.match(suite, /^ECDHE-.*(GCM|POLY1305)/);
  });

  test('plain HTTP on a non-loopback address is warned about, on loopback it is not', () => {
    const exposed = parseConfig(
      '[server]\nlisten = ["0.0.0.0:8080", "127.0.0.1:8081", "[::1]:8082"]\n',
      null,
    );
    const warnings = configWarnings(exposed);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^server\.listen: plain HTTP on 0\.0\.0\.0:8080, which is not a loopback/);
    assert.deepEqual(
      configWarnings(parseConfig('[server]\nlisten = ["127.0.0.2:8080", "[::1]:8080"]\n', null)),
      [],
    );
  });
});

describe('loadConfig', () => {
  test('a missing file names the path and what to do', () => {
    assert.throws(
      () => loadConfig('/nonexistent/privdav.toml'),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /^\/nonexistent\/privdav\.toml: the configuration file does not exist; create it/,
        );
        assert.match(error.message, /--config FILE/);
        return true;
      },
    );
  });

  test('a file other accounts can write is refused: root trusts it', () => {
    withTemporaryDirectory((directory) => {
      const file = path.join(directory, 'privdav.toml');
      fs.writeFileSync(file, '');
      fs.chmodSync(file, 0o666);
      assert.throws(() => loadConfig(file), /writable by other accounts \(mode 666\); run chmod go-w/);
      fs.chmodSync(file, 0o644);
      assert.equal(loadConfig(file).source, file);
    });
  });

  test('TLS files that do not exist are reported with their keys and lines', () => {
    withTemporaryDirectory((directory) => {
      const file = path.join(directory, 'privdav.toml');
      fs.writeFileSync(
        file,
        `[server]\ntls_cert = "${directory}/cert.pem"\ntls_key = "${directory}/key.pem"\n`,
      );
      assert.throws(
        () => loadConfig(file),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.deepEqual(
            error.problems.map((problem) => [problem.key, problem.line]),
            [
              ['server.tls_cert', 2],
              ['server.tls_key', 3],
            ],
          );
          assert.match(error.problems[0].message, /cert\.pem does not exist/);
          return true;
        },
      );
    });
  });

  test('a certificate and its key load; a key of another certificate is refused', () => {
    withTemporaryDirectory((directory) => {
      const makePair = (name: string): void => {
        makeSelfSignedPair(directory, name, { commonName: 'privdav-test' });
      };
      makePair('one');
      makePair('two');
      const file = path.join(directory, 'privdav.toml');
      fs.writeFileSync(
        file,
        `[server]\ntls_cert = "${directory}/one.crt"\ntls_key = "${directory}/one.key"\n`,
      );
      assert.equal(loadConfig(file).server.tlsKey, `${directory}/one.key`);

      fs.writeFileSync(
        file,
        `[server]\ntls_cert = "${directory}/one.crt"\ntls_key = "${directory}/two.key"\n`,
      );
      assert.throws(
        () => loadConfig(file),
        /:3: server\.tls_key: .*two\.key is not the private key of the certificate/,
      );

      fs.writeFileSync(
        file,
        `[server]\ntls_cert = "${directory}/one.key"\ntls_key = "${directory}/one.key"\n`,
      );
      assert.throws(() => loadConfig(file), /:2: server\.tls_cert: .*does not contain a PEM certificate/);
    });
  });
});

describe('workers: max_workers, spare_workers, worker_starts', () => {
  test('max_workers defaults to half the memory at WORKER_MEMORY_BUDGET each, at least 16', () => {
    const GIB = 1024 ** 3;
    assert.equal(WORKER_MEMORY_BUDGET, 32 * 1024 * 1024);
    assert.equal(defaultMaxWorkers(24 * GIB), 384);
    assert.equal(defaultMaxWorkers(4 * GIB), 64);
    assert.equal(defaultMaxWorkers(512 * 1024 * 1024), 16, 'a small machine still serves 16 users');
    assert.equal(defaultConfig().server.maxWorkers, defaultMaxWorkers(os.totalmem()));
  });

  test('0 means derived from the machine; a number is taken as written', () => {
    const derived = parseConfig('[server]\nmax_workers = 0\nworker_starts = 0\n', null).server;
    assert.equal(derived.maxWorkers, defaultMaxWorkers(os.totalmem()));
    assert.equal(derived.workerStarts, Math.min(64, os.availableParallelism()));
    const set = parseConfig('[server]\nmax_workers = 8\nspare_workers = 0\nworker_starts = 3\n', null).server;
    assert.deepEqual([set.maxWorkers, set.spareWorkers, set.workerStarts], [8, 0, 3]);
  });

  test('out-of-range values are refused with key and line', () => {
    const problems = problemsOf('[server]\nmax_workers = -1\nspare_workers = 65\nworker_starts = 65\n');
    assert.deepEqual(
      problems.map((problem) => [problem.key, problem.line]),
      [
        ['server.max_workers', 2],
        ['server.spare_workers', 3],
        ['server.worker_starts', 4],
      ],
    );
  });
});

describe('reload', () => {
  test('changes to sockets, identities and process counts need a restart; the rest reload', () => {
    const running = defaultConfig();
    const reloaded = parseConfig(
      [
        '[server]',
        'listen = ["127.0.0.1:9090"]',
        'web_processes = 2',
        'worker_idle_timeout = "1m"',
        '[auth]',
        'min_uid = 2000',
        'credential_ttl = "1h"',
        '[limits]',
        'max_connections = 10',
      ].join('\n'),
      null,
    );
    assert.deepEqual(changesNeedingRestart(running, reloaded), ['server.listen', 'server.web_processes']);
    assert.deepEqual(changesNeedingRestart(running, defaultConfig()), []);
  });
});

describe('[log] and [metrics]', () => {
  test('log.format is "logfmt" or "json", log.access a boolean; both reported with key and line', () => {
    const config = parseConfig('[log]\nformat = "json"\naccess = false\n', null);
    assert.equal(config.log.format, 'json');
    assert.equal(config.log.access, false);
    const problems = problemsOf('[log]\nformat = "xml"\naccess = "yes"\n');
    assert.deepEqual(
      problems.map((problem) => [problem.key, problem.line]),
      [
        ['log.format', 2],
        ['log.access', 3],
      ],
    );
  });

  test('metrics.listen is off by default, takes addresses, and may not share a port with server.listen', () => {
    assert.deepEqual(defaultConfig().metrics.listen, []);
    const config = parseConfig('[metrics]\nlisten = ["127.0.0.1:9464", "[::1]:9464"]\n', null);
    assert.deepEqual(
      config.metrics.listen.map((address) => address.text),
      ['127.0.0.1:9464', '[::1]:9464'],
    );
    const clash = problemOf('[server]\nlisten = ["0.0.0.0:8443"]\n[metrics]\nlisten = ["127.0.0.1:8443"]\n');
    assert.equal(clash.key, 'metrics.listen');
    assert.equal(clash.line, 4);
    assert.match(
      clash.message,
      /127\.0\.0\.1:8443 overlaps server\.listen 0\.0\.0\.0:8443: use a port of its own/,
    );
    assert.equal(problemOf('[metrics]\nlisten = ["localhost:9464"]\n').key, 'metrics.listen');
  });

  test('log.format and metrics.listen need a restart; log.access reloads', () => {
    const reloaded = parseConfig(
      '[log]\nformat = "json"\naccess = false\n[metrics]\nlisten = ["127.0.0.1:9464"]\n',
      null,
    );
    assert.deepEqual(changesNeedingRestart(defaultConfig(), reloaded), ['log.format', 'metrics.listen']);
  });
});
