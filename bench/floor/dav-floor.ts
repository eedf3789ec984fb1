// The steps between Node's floor and the daemon, for bench/floor/run.sh: privdav's DAV handler in
// one node:http process with no PAM, access log, metrics or connection limits, over
//  - "local": storage in this same process (LocalStorage), which takes the user's uid once
//    listening — one process doing what Apache's does;
//  - "privsep": a real worker of the user (PrivsepStorage: the channel round trip, the worker's
//    open as the user, the descriptor passed back with SCM_RIGHTS) — the invariants' cost, without
//    the daemon's other per-request work.
// Usage (as root): node dav-floor.js local|privsep PORT USER DURABLE(true|false) STATE_DIRECTORY
import * as http from 'node:http';
import { join } from 'node:path';
import type { Storage } from '../../common/storage';
import { lookUpAccount } from '../../helper/accounts';
import { LocalStorage } from '../../helper/local-storage';
import { createDavHandler } from '../../src/dav/handler';
import { SqliteLockStore } from '../../src/dav/lock-store';
import { startUserWorker } from '../../test/support/user-worker';

const [mode, port, user, durableArgument, state] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const account = lookUpAccount(user);
if (account === null || (mode !== 'local' && mode !== 'privsep')) {
  process.stderr.write('usage: dav-floor.js local|privsep PORT USER DURABLE STATE_DIRECTORY\n');
  process.exit(2);
}
const durable = durableArgument === 'true';
const storage: Storage =
  mode === 'local'
    ? new LocalStorage({ layout: { kind: 'home', root: account.home }, durable })
    : startUserWorker(user, { durable }).storage;
const handler = createDavHandler({
  lockStore: new SqliteLockStore(join(state, `locks-${mode}.sqlite`)),
  maxXmlBytes: 1024 * 1024,
  maxInfinityEntries: 100_000,
  maxPropfindProperties: 200,
  contentOrigin: null,
  maxLockTimeoutS: 3600,
  maxLockOwnerBytes: 4096,
  lockBounds: { maxPerPrincipal: 1000, maxPerResource: 64, maxStoreBytes: 256 * 1024 * 1024 },
  maxUploadBytes: 0,
});
const server = http.createServer((req, res) => void handler(req, res, { storage, principal: user }));
server.listen(Number(port), '127.0.0.1', () => {
  if (mode === 'local') {
    process.setgroups!([account.gid]);
    process.setgid!(account.gid);
    process.setuid!(account.uid);
  }
});
// An exit, not the default death, so that `node --cpu-prof` writes its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
