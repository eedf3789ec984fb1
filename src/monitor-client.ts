// The web process's side of its channel to the monitor (fd 3): AUTH and CONNECT requests, the
// one-time READY, and the init/reload notices the monitor sends. The monitor's answers are the
// only things the web process trusts without question — it is the monitor's child.

import { Channel } from '../common/channel';
import { RpcClient, closeAll } from '../common/rpc';
import { WebInit, encodeMessage } from '../common/protocol';
import { StorageError } from '../common/storage';

export interface Login {
  user: string;
  uid: number;
  cookie: string;
  expires: number;
}

export class MonitorClient {
  readonly #channel: Channel;
  readonly #rpc: RpcClient;

  constructor(fd: number, onInit: (init: WebInit) => void, onLost: () => void) {
    this.#channel = new Channel(fd);
    this.#rpc = new RpcClient(this.#channel, {
      onNotice: (message, fds) => {
        closeAll(fds);
        if (message.t === 'init') onInit(message as unknown as WebInit);
      },
      onClose: onLost,
    });
  }

  ready(): void {
    this.#channel.send(encodeMessage({ t: 'ready' }));
  }

  /** A login (cookie) or null when refused; throws when the monitor cannot answer. */
  async auth(user: string, password: string, remote: string): Promise<Login | null> {
    const { message } = await this.#rpc.call({ t: 'auth', user, password, remote });
    if (message.ok === true && typeof message.cookie === 'string') {
      return { user, uid: message.uid as number, cookie: message.cookie, expires: message.expires as number };
    }
    if (message.reason === 'unavailable') throw new StorageError('UNAVAILABLE', 'authentication is busy');
    return null;
  }

  /** A fresh channel descriptor to the cookie owner's worker. */
  async connect(cookie: string): Promise<number> {
    const { message, fds } = await this.#rpc.call({ t: 'connect', cookie });
    if (message.ok === true && fds.length === 1) return fds[0]!;
    closeAll(fds);
    const code = message.code;
    if (code === 'COOKIE_EXPIRED' || code === 'COOKIE_INVALID') throw new StorageError(code);
    throw new StorageError('UNAVAILABLE', 'the worker could not be started');
  }
}
