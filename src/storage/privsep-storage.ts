// PrivsepStorage: the Storage the web process uses. Each call is one message to the user's
// worker (pipelined on one channel per user), answered with plain data and, for open calls, a
// descriptor. The web process never opens a user's file itself. Listings arrive in batches.

import { Channel } from '../../common/channel';
import { RpcClient, RpcClosedError, Reply, closeAll } from '../../common/rpc';
import { entryFromWire, type StorageOp } from '../../common/protocol';
import { MonitorClient } from '../monitor-client';
import {
  ALL_STORAGE_ERROR_CODES,
  DavPath,
  DeadProps,
  Depth,
  Entry,
  ListOptions,
  MemberError,
  OpenedFile,
  PropPatchOp,
  PropSelection,
  Space,
  Stat,
  Storage,
  StorageError,
  StorageErrorCode,
  Times,
  TransferOptions,
  TransferResult,
  Upload,
} from '../../common/storage';

/** The authenticated user behind a request; `refresh` logs in again with the request's password. */
export interface Session {
  readonly user: string;
  readonly uid: number;
  cookie: string;
  refresh(): Promise<void>;
}

/** Calls that do nothing a second time would undo: safe to resend after a lost worker. */
const RETRYABLE = new Set<StorageOp>([
  'stat',
  'realPath',
  'list',
  'openRead',
  'openWrite',
  'getProps',
  'space',
  'setTimes',
  'checkWritable',
]);

/** What WorkerChannels needs of the monitor: a fresh channel descriptor to the cookie owner's worker. */
export type WorkerConnector = Pick<MonitorClient, 'connect'>;

/** One channel per user to that user's worker, opened through the monitor on first use. */
export class WorkerChannels {
  readonly #monitor: WorkerConnector;
  readonly #channels = new Map<number, Promise<RpcClient>>();

  constructor(monitor: WorkerConnector) {
    this.#monitor = monitor;
  }

  get(session: Session): Promise<RpcClient> {
    let pending = this.#channels.get(session.uid);
    if (pending === undefined) {
      pending = this.#open(session);
      this.#channels.set(session.uid, pending);
      pending.catch(() => this.#channels.delete(session.uid));
    }
    return pending;
  }

  async #open(session: Session): Promise<RpcClient> {
    const fd = await this.#monitor.connect(session.cookie);
    let rpc: RpcClient | null = null;
    rpc = new RpcClient(new Channel(fd), {
      onClose: () => {
        // Forget this channel only if it is still the current one.
        void this.#channels.get(session.uid)?.then((current) => {
          if (current === rpc) this.#channels.delete(session.uid);
        });
      },
    });
    return rpc;
  }

  /**
   * After a reload that changed the workers' settings the monitor retires the running workers:
   * new requests go to fresh ones, calls in flight finish on the old channels, which then close.
   */
  retireAll(): void {
    for (const pending of this.#channels.values())
      void pending.then(
        (rpc) => rpc.closeWhenIdle(),
        () => undefined,
      );
    this.#channels.clear();
  }

  /** Number of users with an open channel (for tests and status). */
  get size(): number {
    return this.#channels.size;
  }
}

export class PrivsepStorage implements Storage {
  readonly #channels: WorkerChannels;
  readonly #session: Session;

  constructor(channels: WorkerChannels, session: Session) {
    this.#channels = channels;
    this.#session = session;
  }

  async stat(path: DavPath): Promise<Stat | null> {
    return (await this.#call('stat', [path])).result as Stat | null;
  }

  async realPath(path: DavPath): Promise<string> {
    const result = (await this.#call('realPath', [path])).result;
    if (typeof result !== 'string') throw protocolError('realPath');
    return result;
  }

  async *list(path: DavPath, depth: Depth, options: ListOptions): AsyncIterable<Entry> {
    for (let attempt = 0; ; attempt++) {
      const rpc = await this.#connect(attempt);
      let first = true;
      try {
        for await (const reply of rpc.stream({
          op: 'list',
          cookie: this.#session.cookie,
          args: [path, depth, options],
        })) {
          closeAll(reply.fds);
          const result = unwrap(reply);
          first = false;
          if (!Array.isArray(result)) throw protocolError('list');
          for (const wire of result) {
            const entry = entryFromWire(wire);
            if (entry === null) throw protocolError('list');
            yield entry;
          }
        }
        return;
      } catch (error) {
        // Only a failure before the first batch can be retried without repeating entries.
        if (!first || attempt > 0 || !(await this.#recover(error))) throw asStorageError(error);
      }
    }
  }

  async openRead(path: DavPath): Promise<OpenedFile> {
    const reply = await this.#call('openRead', [path]);
    if (reply.fds.length !== 1) {
      closeAll(reply.fds);
      throw protocolError('openRead');
    }
    return { fd: reply.fds[0]!, stat: (reply.result as { stat: Stat }).stat };
  }

  async openWrite(path: DavPath): Promise<Upload> {
    const reply = await this.#call('openWrite', [path]);
    const result = reply.result as { uploadId?: unknown; existing?: Stat | null } | null;
    if (reply.fds.length !== 1 || typeof result?.uploadId !== 'number') {
      closeAll(reply.fds);
      throw protocolError('openWrite');
    }
    const fd = reply.fds[0]!;
    const uploadId = result.uploadId;
    let settled = false;
    const settle = (): void => {
      if (settled) throw new StorageError('PROTOCOL', 'upload already finished');
      settled = true;
      closeAll([fd]);
    };
    return {
      fd,
      existing: result.existing ?? null,
      commit: async (size?: number) => {
        settle();
        return (await this.#call('commitWrite', size === undefined ? [uploadId] : [uploadId, size]))
          .result as Stat;
      },
      abort: async () => {
        settle();
        await this.#call('abortWrite', [uploadId]).catch(() => undefined);
      },
    };
  }

  async mkcol(path: DavPath): Promise<void> {
    await this.#call('mkcol', [path]);
  }

  async remove(path: DavPath): Promise<MemberError[]> {
    return (await this.#call('remove', [path])).result as MemberError[];
  }

  async copy(from: DavPath, to: DavPath, options: TransferOptions): Promise<TransferResult> {
    return (await this.#call('copy', [from, to, options])).result as TransferResult;
  }

  async move(from: DavPath, to: DavPath, options: Omit<TransferOptions, 'depth'>): Promise<TransferResult> {
    return (await this.#call('move', [from, to, options])).result as TransferResult;
  }

  async getProps(path: DavPath, selection: PropSelection): Promise<DeadProps> {
    return (await this.#call('getProps', [path, selection])).result as DeadProps;
  }

  async patchProps(path: DavPath, ops: PropPatchOp[]): Promise<void> {
    await this.#call('patchProps', [path, ops]);
  }

  async setTimes(path: DavPath, times: Times): Promise<void> {
    await this.#call('setTimes', [path, times]);
  }

  async checkWritable(path: DavPath): Promise<void> {
    await this.#call('checkWritable', [path]);
  }

  async space(path: DavPath): Promise<Space> {
    return (await this.#call('space', [path])).result as Space;
  }

  async #connect(attempt: number): Promise<RpcClient> {
    try {
      return await this.#channels.get(this.#session);
    } catch (error) {
      if (attempt === 0 && (await this.#recover(error))) return this.#channels.get(this.#session);
      throw asStorageError(error);
    }
  }

  /** After a failure: true when a second try may succeed (credentials renewed, or the worker gone). */
  async #recover(error: unknown): Promise<boolean> {
    if (error instanceof StorageError && error.code === 'COOKIE_EXPIRED') {
      await this.#session.refresh();
      return true;
    }
    return error instanceof RpcClosedError;
  }

  async #call(op: StorageOp, args: unknown[]): Promise<{ result: unknown; fds: number[] }> {
    for (let attempt = 0; ; attempt++) {
      const rpc = await this.#connect(attempt);
      try {
        const reply = await rpc.call({ op, cookie: this.#session.cookie, args });
        return { result: unwrap(reply), fds: reply.fds };
      } catch (error) {
        const retry =
          attempt === 0 &&
          (error instanceof RpcClosedError ? RETRYABLE.has(op) : true) &&
          (await this.#recover(error));
        if (!retry) throw asStorageError(error);
      }
    }
  }
}

function unwrap(reply: Reply): unknown {
  const message = reply.message;
  if (message.ok === true) return message.result ?? null;
  closeAll(reply.fds);
  const code = (ALL_STORAGE_ERROR_CODES as readonly string[]).includes(message.code as string)
    ? (message.code as StorageErrorCode)
    : 'INTERNAL';
  const property = typeof message.property === 'string' ? message.property : undefined;
  throw new StorageError(code, typeof message.message === 'string' ? message.message : code, property);
}

function protocolError(op: string): StorageError {
  return new StorageError('PROTOCOL', `malformed ${op} reply from the worker`);
}

function asStorageError(error: unknown): StorageError {
  if (error instanceof RpcClosedError) return new StorageError('UNAVAILABLE', 'the worker went away');
  return StorageError.from(error);
}
