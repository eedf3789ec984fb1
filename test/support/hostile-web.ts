// A compromised web process, for the security tests: spawned by the real monitor in place of
// src/web.ts, it sends garbage and forged requests down the real channels and writes what came
// back to a JSON file (argv[2]). Parameters come from a JSON file (argv[3]).

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Channel } from '../../common/channel';
import { RpcClient, closeAll } from '../../common/rpc';
import { encodeMessage } from '../../common/protocol';
import { dupFd } from '../../native';

interface Params {
  alice: { name: string; password: string };
  bob: { name: string; password: string };
  /** Wait this long, then try the first cookie again: it should have expired. */
  expireAfterMs: number;
}

const [resultFile, paramsFile] = process.argv.slice(2);
const params = JSON.parse(readFileSync(paramsFile!, 'utf8')) as Params;
const results: Record<string, unknown> = {};
const save = (): void => writeFileSync(resultFile!, JSON.stringify(results, null, 2));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([promise, sleep(ms).then(() => 'timeout' as const)]);
}

function garbage(i: number): { payload: Buffer; fds: number[] } {
  const kinds = [
    () => randomBytes(1 + (i % 2000)),
    () => Buffer.from(JSON.stringify({ t: 'auth', id: 'x', user: 5 })),
    () => Buffer.from(JSON.stringify({ t: 'connect', id: i, cookie: randomBytes(40).toString('base64url') })),
    () => Buffer.from(JSON.stringify({ t: 'nonsense', id: i })),
    () => Buffer.from(JSON.stringify({ t: 'ready' })),
    () => Buffer.from(JSON.stringify([1, 2, 3])),
    () => Buffer.from('{"t":"auth","id":1,"user":"' + 'a'.repeat(5000) + '","password":"x","remote":""}'),
    () => Buffer.from(JSON.stringify({ t: '__proto__', id: i })),
    () => Buffer.from(JSON.stringify({ t: 'connect', id: -1, cookie: null })),
    () => Buffer.from('null'),
    // Watchdog answers with fields out of range: refused, and no keep-alive is earned by them.
    () => Buffer.from(JSON.stringify({ t: 'pong', seq: -1, requests: 'many' })),
    () => Buffer.from(JSON.stringify({ t: 'pong', seq: 1e300, requests: Number.MAX_VALUE })),
  ];
  const payload = kinds[i % kinds.length]!();
  // Now and then a descriptor rides along: the monitor must close it, not keep it.
  return { payload, fds: i % 97 === 0 ? [dupFd(0)] : [] };
}

async function main(): Promise<void> {
  const channel = new Channel(3);
  const rpc = new RpcClient(channel, { onNotice: (_message, fds) => closeAll(fds) });
  const auth = (user: string, password: string) =>
    rpc.call({ t: 'auth', user, password, remote: '127.0.0.9' }).then((reply) => reply.message);

  results.authBeforeReady = await withTimeout(auth(params.alice.name, params.alice.password), 1500);
  channel.send(encodeMessage({ t: 'ready' }));

  let sent = 0;
  for (let i = 0; i < 10_000; i++) {
    const { payload, fds } = garbage(i);
    try {
      channel.send(payload.subarray(0, 100_000), fds);
      sent++;
    } catch {
      await sleep(5);
    }
    if (i % 500 === 0) await sleep(1);
  }
  results.garbageSent = sent;

  const alice = await auth(params.alice.name, params.alice.password);
  results.aliceAuth = { ok: alice.ok };
  results.nulUser = await auth(`${params.alice.name}\0junk`, params.alice.password);
  results.nulPassword = await auth(params.alice.name, `${params.alice.password}\0junk`);
  results.bobAuth = { ok: (await auth(params.bob.name, params.bob.password)).ok };
  const bob = await auth(params.bob.name, params.bob.password);
  const aliceCookie = alice.cookie as string;

  const connect = await rpc.call({ t: 'connect', cookie: aliceCookie });
  results.connect = { ok: connect.message.ok, fds: connect.fds.length };
  const forgedConnect = await rpc.call({ t: 'connect', cookie: flip(aliceCookie) });
  results.forgedConnect = forgedConnect.message;
  closeAll(forgedConnect.fds);
  const worker = new RpcClient(new Channel(connect.fds[0]!));
  const stat = (cookie: unknown) =>
    worker.call({ op: 'stat', cookie, args: ['/'] }).then((reply) => reply.message);

  results.validCookie = await stat(aliceCookie);
  results.flippedBit = await stat(flip(aliceCookie));
  results.otherUidCookie = await stat(bob.cookie);
  results.noCookie = await stat(undefined);
  results.badOp = (await worker.call({ op: 'unlink', cookie: aliceCookie, args: ['/'] })).message;
  results.escape = (await worker.call({ op: 'stat', cookie: aliceCookie, args: ['/../../etc'] })).message;
  results.nulPath = (await worker.call({ op: 'stat', cookie: aliceCookie, args: ['/a\0b'] })).message;
  save();
  await sleep(params.expireAfterMs);
  results.expiredCookie = await stat(aliceCookie);
  results.afterExpiryAuth = { ok: (await auth(params.alice.name, params.alice.password)).ok };
  results.done = true;
  save();
  // Stay up like a web process would, until the monitor stops us.
  setInterval(() => undefined, 60_000);
}

/** The same cookie with one bit of its tag flipped. */
function flip(cookie: string): string {
  const bytes = Buffer.from(cookie, 'base64url');
  bytes[bytes.length - 1] ^= 0x01;
  return bytes.toString('base64url');
}

main().catch((error: unknown) => {
  results.error = String((error as Error).stack ?? error);
  save();
});
