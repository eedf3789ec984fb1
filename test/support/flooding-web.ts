// A compromised web process for the descriptor tests: spawned by the real monitor in place of
// src/web.ts, it logs in as alice, then stops reading and sends CONNECT after CONNECT, so the
// monitor's replies (each carrying a channel descriptor) fill its queue until send refuses them.
// Writes {done, sent} to a JSON file (argv[2]); parameters (alice, count) come from argv[3].

import { readFileSync, writeFileSync } from 'node:fs';
import { Channel } from '../../common/channel';
import { RpcClient, closeAll } from '../../common/rpc';
import { encodeMessage } from '../../common/protocol';

interface Params {
  alice: { name: string; password: string };
  connects: number;
}

const [resultFile, paramsFile] = process.argv.slice(2);
const params = JSON.parse(readFileSync(paramsFile!, 'utf8')) as Params;

async function main(): Promise<void> {
  const channel = new Channel(3);
  const rpc = new RpcClient(channel, { onNotice: (_message, fds) => closeAll(fds) });
  channel.send(encodeMessage({ t: 'ready' }));
  const alice = await rpc.call({
    t: 'auth',
    user: params.alice.name,
    password: params.alice.password,
    remote: '',
  });
  const cookie = alice.message.cookie;
  // Give the test time to attach strace to the monitor before the flood.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  channel.pause();
  let sent = 0;
  for (let id = 1_000_000; sent < params.connects; id++) {
    try {
      channel.send(encodeMessage({ t: 'connect', id, cookie }));
      sent++;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  writeFileSync(resultFile!, JSON.stringify({ done: true, sent, authOk: alice.message.ok }));
  // Stay, not reading: the monitor keeps its queue until this process goes away.
  setInterval(() => undefined, 60_000);
}

main().catch((error: unknown) => {
  writeFileSync(resultFile!, JSON.stringify({ error: String(error) }));
  process.exit(1);
});
