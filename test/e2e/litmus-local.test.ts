// Debian's litmus (WebDAV compliance suite) against the protocol core over LocalStorage: every
// suite passes, 104 tests, and not one warning (Apache mod_dav_fs gets two).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { LITMUS, assertLitmusClean, runLitmus, startDavTestServer } from '../support/dav-test-server';

test(
  'litmus passes 104/104 with no warnings',
  { skip: !fs.existsSync(LITMUS) && 'litmus is not installed' },
  async () => {
    const server = await startDavTestServer();
    try {
      const { output, summary } = await runLitmus(`${server.origin}/`);
      assertLitmusClean(output, summary);
      assert.deepEqual(server.problems, []);
      console.log(summary.lines.join('\n'));
    } finally {
      await server.close();
    }
  },
);
