// Debian's litmus (WebDAV compliance suite) against the protocol core over LocalStorage: every
// suite passes, 104 tests, and not one warning (Apache mod_dav_fs gets two).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { LITMUS, runLitmus, startDavTestServer } from '../support/dav-test-server';

test(
  'litmus passes 104/104 with no warnings',
  { skip: !fs.existsSync(LITMUS) && 'litmus is not installed' },
  async () => {
    const server = await startDavTestServer();
    try {
      const { output, summary } = await runLitmus(`${server.origin}/`);
      const failures = output.split('\n').filter((line) => /FAIL|WARNING/.test(line));
      assert.deepEqual(failures, [], failures.join('\n'));
      assert.equal(summary.lines.length, 5, output);
      assert.equal(summary.run, 104);
      assert.equal(summary.passed, 104);
      assert.equal(summary.failed, 0);
      assert.equal(summary.warnings, 0);
      assert.deepEqual(server.problems, []);
      console.log(summary.lines.join('\n'));
    } finally {
      await server.close();
    }
  },
);
