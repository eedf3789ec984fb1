// A real worker (helper/worker.js, spawned as root, dropped to the user) with no monitor: this
// process plays the monitor's part (init, and CONNECT handing over fresh channel ends) and talks
// to it through the real PrivsepStorage. For tests that count or forge what crosses the channel,
// and for bench/floor/dav-floor.ts, which measures the privilege-separated path without the daemon.

import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Channel } from '../../common/channel';
import { deriveUserKey, issueCookie, newMasterKey } from '../../helper/cookie';
import { lookUpAccount, workerIdentity } from '../../helper/accounts';
import { encodeMessage, WorkerSettings } from '../../common/protocol';
import { closeFd, socketpair } from '../../native';
import { PrivsepStorage, Session, WorkerChannels } from '../../src/storage/privsep-storage';

export interface UserWorker {
  worker: ChildProcess;
  /** The monitor's end of the worker's control channel. */
  control: Channel;
  channels: WorkerChannels;
  session: Session;
  storage: PrivsepStorage;
  close(): void;
}

export function startUserWorker(userName: string, settings: Partial<WorkerSettings> = {}): UserWorker {
  const account = lookUpAccount(userName);
  if (account === null) throw new Error(`no account ${userName}`);
  const [monitorEnd, workerEnd] = socketpair();
  const worker = spawn(process.execPath, [join(__dirname, '..', '..', 'helper', 'worker.js')], {
    stdio: ['ignore', 'inherit', 'inherit', workerEnd],
    env: { PRIVDAV_WORKER: JSON.stringify(workerIdentity(account)) },
  });
  closeFd(workerEnd);
  const control = new Channel(monitorEnd);
  const userKey = deriveUserKey(newMasterKey(), account.uid);
  const fullSettings: WorkerSettings = {
    layout: 'home',
    subdir: '',
    idleTimeoutMs: 60_000,
    durable: false,
    maxInfinityEntries: 100_000,
    minUid: 1000,
    onlyUid: null,
    ...settings,
  };
  control.send(encodeMessage({ t: 'init', key: userKey.toString('base64'), settings: fullSettings }));
  const connector = {
    async connect(): Promise<number> {
      const [workerSide, webSide] = socketpair();
      control.send(encodeMessage({ t: 'attach' }), [workerSide]);
      return webSide;
    },
  };
  const now = Date.now();
  const session: Session = {
    user: userName,
    uid: account.uid,
    cookie: issueCookie(userKey, {
      uid: account.uid,
      gid: account.gid,
      user: userName,
      issued: now,
      expires: now + 24 * 3600_000,
    }),
    refresh: () => Promise.reject(new Error('no monitor here')),
  };
  const channels = new WorkerChannels(connector, () => ({ callMs: 60_000, treeMs: 600_000 }));
  return {
    worker,
    control,
    channels,
    session,
    storage: new PrivsepStorage(channels, session),
    close(): void {
      control.destroy();
      worker.kill('SIGKILL');
    },
  };
}
