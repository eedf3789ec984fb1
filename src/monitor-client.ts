// The web process's side of its channel to the monitor (fd 3): AUTH and CONNECT requests, the
// one-time READY, and the init/reload notices the monitor sends. The monitor's answers are the
// only things the web process trusts without question — it is the monitor's child.

import { Channel } from '../common/channel';
import { RpcClient, closeAll } from '../common/rpc';
import { Ping, WebInit, encodeMessage, isRequestId } from '../common/protocol';
import { StorageError } from '../common/storage';

export interface Login {
  user: string;
  uid: number;
  cookie: string;
  expires: number;
}

/** The monitor's PAM queue is full: answer 503 with Retry-After; nothing was counted against the client. */
export class LoginBusyError extends Error {
  readonly code = 'LOGIN_BUSY';
  readonly retryAfterS: number;

  constructor(retryAfterS: number) {
    super('logins are saturated');
    this.retryAfterS = retryAfterS;
  }
}

export class MonitorClient {
  readonly #channel: Channel;
  readonly #rpc: RpcClient;

  /** Told of each call's round trip (op, seconds), for privdav_channel_call_duration_seconds. */
  observeCall: (op: string, seconds: number) => void = () => undefined;
  /** The monitor retired this user's worker (their groups changed): stop sending it new calls. */
  onWorkerRetired: (uid: number) => void = () => undefined;

  /** `onPing` answers with the number of requests answered so far (the pong proves we are alive). */
  constructor(
    fd: number,
    onInit: (init: WebInit) => void,
    onLost: () => void,
    onPing: (ping: Ping) => number = () => 0,
  ) {
    this.#channel = new Channel(fd);
    this.#rpc = new RpcClient(this.#channel, {
      onNotice: (message, fds) => {
        closeAll(fds);
        if (message.t === 'init') onInit(message as unknown as WebInit);
        if (message.t === 'worker-retired' && Number.isSafeInteger(message.uid))
          this.onWorkerRetired(message.uid as number);
        if (message.t === 'ping' && isRequestId(message.seq)) {
          const requests = onPing(message as unknown as Ping);
          this.#channel.send(encodeMessage({ t: 'pong', seq: message.seq, requests }));
        }
      },
      onClose: onLost,
    });
  }

  ready(): void {
    this.#channel.send(encodeMessage({ t: 'ready' }));
  }

  /** A login (cookie) or null when refused; throws when the monitor cannot answer. */
  async auth(user: string, password: string, remote: string): Promise<Login | null> {
    const started = performance.now();
    const { message } = await this.#rpc.call({ t: 'auth', user, password, remote });
    this.observeCall('auth', (performance.now() - started) / 1000);
    if (message.ok === true && typeof message.cookie === 'string') {
      return { user, uid: message.uid as number, cookie: message.cookie, expires: message.expires as number };
    }
    if (message.reason === 'busy') {
      const retryAfter = message.retryAfter;
      throw new LoginBusyError(
        typeof retryAfter === 'number' &&
          Number.isSafeInteger(retryAfter) &&
          retryAfter > 0 &&
          retryAfter <= 3600
          ? retryAfter
          : 5,
      );
    }
    if (message.reason === 'unavailable') throw new StorageError('UNAVAILABLE', 'authentication is busy');
    return null;
  }

  /** A fresh channel descriptor to the cookie owner's worker. */
  async connect(cookie: string): Promise<number> {
    const started = performance.now();
    const { message, fds } = await this.#rpc.call({ t: 'connect', cookie });
    this.observeCall('connect', (performance.now() - started) / 1000);
    if (message.ok === true && fds.length === 1) return fds[0]!;
    closeAll(fds);
    const code = message.code;
    if (code === 'COOKIE_EXPIRED' || code === 'COOKIE_INVALID') throw new StorageError(code);
    throw new StorageError('UNAVAILABLE', 'the worker could not be started');
  }
}
