// The Debian package round trip: `npm run package` builds dist/privdav_<version>_amd64.deb, lintian
// finds no errors, apt installs it, the installed /usr/bin/privdav checks its config and serves a
// real user from /usr/lib/privdav, and a purge leaves nothing but what Debian policy keeps (the
// privdav account). /etc/pam.d/privdav, which the other tests need, is the same file before and after.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configText, writeConfig } from '../support/cli';
import { freePort, request, untilReady } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

const ROOT = join(__dirname, '..', '..', '..');
const PAM_FILE = '/etc/pam.d/privdav';
const PAM_SOURCE = join(ROOT, 'config', 'pam.d', 'privdav');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const DEB = join(ROOT, 'dist', `privdav_${VERSION}_amd64.deb`);
/** What the package installs; none of it may remain after a purge. */
const INSTALLED = [
  '/usr/lib/privdav',
  '/usr/bin/privdav',
  '/etc/privdav',
  '/lib/systemd/system/privdav.service',
  '/usr/share/man/man8/privdav.8.gz',
  '/usr/share/doc/privdav',
  '/var/lib/privdav',
  '/etc/systemd/system/multi-user.target.wants/privdav.service',
];

let users: TestUsers;
let scratch: string;

/** apt and dpkg, one at a time with the other helpers' installs. */
function apt(args: string[]): string {
  return execFileSync(
    'flock',
    [
      '/tmp/privdav-apt.lock',
      'apt-get',
      '-y',
      '-o',
      'Dpkg::Options::=--force-confdef',
      '-o',
      'Dpkg::Options::=--force-confold',
      ...args,
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

function installed(): boolean {
  const status = spawnSync('dpkg-query', ['-W', '-f=${Status}', 'privdav'], { encoding: 'utf8' });
  return (
    status.status === 0 && status.stdout.includes('installed') && !status.stdout.includes('not-installed')
  );
}

/** Puts the tree's PAM file back (atomically: other tests may be logging in right now). */
function restorePamFile(): void {
  const next = `${PAM_FILE}.privdav-test`;
  copyFileSync(PAM_SOURCE, next);
  renameSync(next, PAM_FILE);
}

before(() => {
  users = createUsers();
  scratch = mkdtempSync(join(tmpdir(), 'privdav-package-'));
  assert.ok(!installed(), 'privdav is not installed as a package before the test');
  assert.deepEqual(readFileSync(PAM_FILE), readFileSync(PAM_SOURCE), `${PAM_FILE} is the tree's`);
});
after(() => {
  if (installed()) apt(['purge', 'privdav']);
  restorePamFile();
  users.remove();
  rmSync(scratch, { recursive: true, force: true });
});

describe('Debian package', () => {
  test('npm run package builds the .deb with the daemon, its modules, unit, PAM file, conffile, manual and docs; lintian finds no errors', () => {
    const built = execFileSync('bash', [join(ROOT, 'scripts', 'package.sh'), '--no-build'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(built.trim(), `dist/privdav_${VERSION}_amd64.deb`);
    const listing = execFileSync('dpkg-deb', ['-c', DEB], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const paths = listing.split('\n').map((line) => line.split(/\s+/).slice(5).join(' '));
    for (const path of [
      './usr/lib/privdav/dist/helper/main.js',
      './usr/lib/privdav/dist/src/web.js',
      './usr/lib/privdav/native/build/Release/privdav_native.node',
      './usr/lib/privdav/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      './usr/lib/privdav/node_modules/node-linux-pam/build/Release/node-linux-pam.node',
      './usr/lib/privdav/node_modules/prom-client/package.json',
      './usr/bin/privdav -> ../lib/privdav/bin/privdav',
      './etc/privdav/privdav.toml',
      './etc/pam.d/privdav',
      './lib/systemd/system/privdav.service',
      './usr/share/man/man8/privdav.8.gz',
      './usr/share/doc/privdav/README.md.gz',
      './usr/share/doc/privdav/copyright',
      './usr/share/doc/privdav/changelog.gz',
    ])
      assert.ok(paths.includes(path), `${path} is in the package`);
    // Production modules only: no compiler, linter or test runner.
    for (const dev of ['typescript', 'eslint', 'prettier', 'node-gyp', '@types'])
      assert.ok(
        !paths.some((path) => path.startsWith(`./usr/lib/privdav/node_modules/${dev}/`)),
        `${dev} is not`,
      );
    assert.ok(!paths.some((path) => path.startsWith('./usr/lib/privdav/dist/test/')), 'no tests');
    const outside = paths.filter((path) => path !== '' && !path.startsWith('./usr/lib/privdav/'));
    process.stdout.write(
      `# dpkg-deb -c, outside /usr/lib/privdav:\n${outside.map((path) => `#   ${path}`).join('\n')}\n`,
    );
    process.stdout.write(`# ${paths.length - outside.length} entries under /usr/lib/privdav\n`);

    const control = execFileSync('dpkg-deb', ['-f', DEB, 'Depends'], { encoding: 'utf8' });
    assert.match(control, /nodejs \(>= 20\.19\)/);
    assert.equal(
      execFileSync('dpkg-deb', ['-I', DEB, 'conffiles'], { encoding: 'utf8' }),
      '/etc/privdav/privdav.toml\n/etc/pam.d/privdav\n',
    );
    const unit = execFileSync(
      'sh',
      ['-c', `dpkg-deb --fsys-tarfile ${DEB} | tar -xO ./lib/systemd/system/privdav.service`],
      {
        encoding: 'utf8',
      },
    );
    assert.match(unit, /^ExecStart=\/usr\/bin\/privdav serve --config \/etc\/privdav\/privdav.toml$/m);
    assert.match(unit, /^WatchdogSec=/m);

    const lintian = spawnSync('lintian', ['--tag-display-limit', '0', DEB], { encoding: 'utf8' });
    const tags = `${lintian.stdout}${lintian.stderr}`.split('\n').filter((line) => /^[EWI]: /.test(line));
    process.stdout.write(
      `# lintian: ${tags.length === 0 ? 'no errors, no warnings' : tags.join('\n#   ')}\n`,
    );
    assert.deepEqual(
      tags.filter((line) => line.startsWith('E: ')),
      [],
      'lintian reports no errors',
    );
  });

  test('installed with apt: enabled, not started; check-config passes; it serves a real user; a purge leaves only the account', async () => {
    apt(['install', DEB]);
    assert.ok(installed());
    assert.deepEqual(readFileSync(PAM_FILE), readFileSync(PAM_SOURCE), "the packaged PAM file is the tree's");
    for (const path of INSTALLED) assert.ok(existsSync(path), `${path} exists after install`);
    const account = execFileSync('getent', ['passwd', 'privdav'], { encoding: 'utf8' });
    assert.match(account, /^privdav:x:\d+:\d+:/);
    const state = execFileSync('stat', ['-c', '%U %a', '/var/lib/privdav'], { encoding: 'utf8' }).trim();
    assert.equal(state, 'privdav 700');
    // Enabled (the wants link) but not started: the admin reviews the config first.
    assert.ok(!spawnSync('pgrep', ['-f', '/usr/lib/privdav/dist/helper/main.js']).stdout.length);

    const check = spawnSync('/usr/bin/privdav', ['check-config'], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    assert.equal(check.stdout, '/etc/privdav/privdav.toml: OK\n');
    assert.match(
      execFileSync('/usr/bin/privdav', ['--version'], { encoding: 'utf8' }),
      new RegExp(`^privdav ${VERSION}\n$`),
    );

    // The installed files serve: /usr/bin/privdav on a test config and a free port.
    const port = await freePort();
    const config = join(scratch, 'privdav.toml');
    writeConfig(config, configText({ port, stateDir: join(scratch, 'state') }));
    const daemon = spawn('/usr/bin/privdav', ['serve', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await untilReady(daemon, port);
      const put = await request({ port }, '/from-the-package.txt', {
        method: 'PUT',
        user: users.alice,
        body: 'packaged\n',
      });
      assert.equal(put.status, 201);
      const get = await request({ port }, '/from-the-package.txt', { user: users.alice });
      assert.equal(get.text, 'packaged\n');
      const web = execFileSync('pgrep', ['-P', String(daemon.pid), '-f', 'web.js'], {
        encoding: 'utf8',
      }).trim();
      assert.match(readFileSync(`/proc/${web}/cmdline`, 'utf8'), /\/usr\/lib\/privdav\/dist\/src\/web\.js/);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((resolve) => daemon.once('exit', resolve));
    }

    apt(['purge', 'privdav']);
    restorePamFile();
    assert.ok(!installed());
    const left = INSTALLED.filter((path) => existsSync(path));
    assert.deepEqual(left, [], 'nothing of the package is left');
    assert.ok(!existsSync('/var/lib/systemd/deb-systemd-helper-enabled/privdav.service.dsh-also'));
    // Debian keeps system accounts on purge: files elsewhere may still carry the uid.
    assert.match(execFileSync('getent', ['passwd', 'privdav'], { encoding: 'utf8' }), /^privdav:/);
    assert.deepEqual(readFileSync(PAM_FILE), readFileSync(PAM_SOURCE));
  });
});
