// PrivsepStorage: the Storage the web process uses. Each call is one message to the user's
// worker (pipelined on one channel per user), answered with plain data and, for open calls, a
// descriptor. The web process never opens a user's file itself. Listings arrive in batches.

import { Channel, releaseMessage } from '../../common/channel';
import {
  RpcClient,
  RpcClosedError,
  RpcTimeoutError,
  RpcUnreadError,
  Reply,
  closeAll,
} from '../../common/rpc';
import {
  MAX_INLINE_BYTES,
  STORAGE_PROTOCOL,
  isStorageErrorCode,
  type ArgsOf,
  type OperationSpec,
  type PartOf,
  type ResultOf,
  type StorageOp,
} from '../../common/storage-protocol';
import { isRequestId } from '../../common/protocol';
import { MonitorClient } from '../monitor-client';
import {
  DavPath,
  Depth,
  Entry,
  ListOptions,
  MemberError,
  OpenedFile,
  PropPatchOp,
  PutResult,
  RenderTemplate,
  RenderedResponses,
  Space,
  Stat,
  Storage,
  StorageError,
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

/** The declarations, typed per operation (so a generic op indexes its own spec). */
const PROTOCOL: { [O in StorageOp]: OperationSpec<ArgsOf<O>, ResultOf<O>, PartOf<O>> } = STORAGE_PROTOCOL;

/** A call's answer after every reply passed its declaration's decoder. */
interface Answer<O extends StorageOp> {
  result: ResultOf<O>;
  /** Results of the `more: true` replies before the last, in order. */
  parts: PartOf<O>[];
  fds: number[];
}

/** What WorkerChannels needs of the monitor: a fresh channel descriptor to the cookie owner's worker. */
export type WorkerConnector = Pick<MonitorClient, 'connect'>;

/** How long a call waits for the worker's (next) reply: ordinary calls, and tree operations. */
export interface WorkerDeadlines {
  callMs: number;
  treeMs: number;
}

/** One channel per user to that user's worker, opened through the monitor on first use. */
export class WorkerChannels {
  readonly #monitor: WorkerConnector;
  readonly #channels = new Map<number, Promise<RpcClient>>();
  /** Read at each call, so a reload applies at once. */
  readonly deadlines: () => WorkerDeadlines;
  /** Told of each storage call's round trip (op, seconds), for privdav_channel_call_duration_seconds. */
  readonly observeCall: (op: string, seconds: number) => void;

  constructor(
    monitor: WorkerConnector,
    deadlines: () => WorkerDeadlines,
    observeCall: (op: string, seconds: number) => void = () => undefined,
  ) {
    this.#monitor = monitor;
    this.deadlines = deadlines;
    this.observeCall = observeCall;
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
      // A worker retiring while idle (its idle timeout, or to make room for another user) says so
      // first: what it has not answered, it has not read.
      onNotice: (message, fds) => {
        closeAll(fds);
        if (message.t === 'closing') rpc?.closeUnread();
      },
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

  /**
   * One user's worker is being replaced (their groups changed): new calls go to a new channel. The
   * old one is left to the worker, which closes it once its calls and open uploads are done.
   */
  retire(uid: number): void {
    this.#channels.delete(uid);
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
    return (await this.#call('stat', [path])).result;
  }

  async realPath(path: DavPath): Promise<string> {
    return (await this.#call('realPath', [path])).result;
  }

  list(path: DavPath, depth: Depth, options: ListOptions): AsyncIterable<Entry> {
    return entriesOf<Entry>(this.#listBatches<never>(path, depth, options, noRendered));
  }

  listRendered(
    path: DavPath,
    options: ListOptions,
    template: RenderTemplate,
  ): AsyncIterable<Entry | RenderedResponses> {
    return entriesOf(this.#listBatches(path, 1, { ...options, props: 'all', render: template }, renderedOf));
  }

  async *#listBatches<T>(
    path: DavPath,
    depth: Depth,
    options: ListOptions,
    rendered: (reply: Reply) => T | null,
  ): AsyncGenerator<Array<Entry | T>> {
    const args: ArgsOf<'list'> = [path, depth, options];
    for (let attempt = 0; ; attempt++) {
      const rpc = await this.#connect(attempt);
      let first = true;
      try {
        const request = { op: 'list', cookie: this.#session.cookie, args };
        const started = performance.now();
        for await (const reply of rpc.stream(request, this.#channels.deadlines().callMs)) {
          const entries: Array<Entry | T> = decodeReply('list', reply);
          const responses = rendered(reply);
          if (responses !== null) entries.push(responses);
          first = false;
          yield entries;
        }
        // From the request to the last reply (a slow client's backpressure included).
        this.#channels.observeCall(
          options.render === undefined ? 'list' : 'listRendered',
          (performance.now() - started) / 1000,
        );
        return;
      } catch (error) {
        // Only a failure before the first batch can be retried without repeating entries.
        if (!first || attempt > 0 || !(await this.#recover(error))) throw asStorageError(error);
      }
    }
  }

  async openRead(path: DavPath): Promise<OpenedFile> {
    const { result, fds } = await this.#call('openRead', [path]);
    return { fd: onlyFd(fds), stat: result.stat };
  }

  async openWrite(path: DavPath): Promise<Upload> {
    // The upload lives in the worker that opened it: commit and abort go to that worker, also
    // when it is being replaced meanwhile (the user's groups changed) and new calls go elsewhere.
    let worker: RpcClient | undefined;
    const { result, fds } = await this.#call('openWrite', [path], undefined, (rpc) => (worker = rpc));
    const fd = onlyFd(fds);
    const uploadId = result.uploadId;
    const lost = worker?.gone;
    let settled = false;
    const settle = (): void => {
      if (settled) throw new StorageError('PROTOCOL', 'upload already finished');
      settled = true;
      closeAll([fd]);
    };
    return {
      fd,
      existing: result.existing,
      lost,
      commit: async (size?: number) => {
        settle();
        return (await this.#call('commitWrite', size === undefined ? [uploadId] : [uploadId, size], worker))
          .result;
      },
      abort: async () => {
        settle();
        await this.#call('abortWrite', [uploadId], worker).catch(() => undefined);
      },
    };
  }

  async putSmall(path: DavPath, content: Buffer, options: { mtimeMs?: number }): Promise<PutResult> {
    if (content.length > MAX_INLINE_BYTES) throw new StorageError('INTERNAL', 'putSmall content too large');
    const args: ArgsOf<'putSmall'> = [path, content.length, options.mtimeMs === undefined ? {} : options];
    return (await this.#call('putSmall', args, undefined, undefined, content)).result;
  }

  async mkcol(path: DavPath): Promise<void> {
    await this.#call('mkcol', [path]);
  }

  async remove(path: DavPath): Promise<MemberError[]> {
    const { result, parts } = await this.#call('remove', [path]);
    return [...parts, ...result];
  }

  async copy(from: DavPath, to: DavPath, options: TransferOptions): Promise<TransferResult> {
    const { result, parts } = await this.#call('copy', [from, to, options]);
    return { created: result.created, errors: [...parts, ...result.errors] };
  }

  async move(from: DavPath, to: DavPath, options: Omit<TransferOptions, 'depth'>): Promise<TransferResult> {
    const { result, parts } = await this.#call('move', [from, to, options]);
    return { created: result.created, errors: [...parts, ...result.errors] };
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
    return (await this.#call('space', [path])).result;
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

  /**
   * One call, every reply checked against the operation's declaration (a streamed one collected).
   * `pinned`: on this channel (its worker holds the state the call refers to); `used` learns the channel.
   */
  async #call<O extends Exclude<StorageOp, 'list'>>(
    op: O,
    args: ArgsOf<O>,
    pinned?: RpcClient,
    used?: (rpc: RpcClient) => void,
    content: Buffer | null = null,
  ): Promise<Answer<O>> {
    const spec = PROTOCOL[op];
    for (let attempt = 0; ; attempt++) {
      const rpc = pinned ?? (await this.#connect(attempt));
      used?.(rpc);
      const deadlines = this.#channels.deadlines();
      const deadlineMs = spec.tree === true ? deadlines.treeMs : deadlines.callMs;
      try {
        const request = { op, cookie: this.#session.cookie, args };
        const started = performance.now();
        if (spec.parts === undefined) {
          const reply = await rpc.call(request, [], deadlineMs, content);
          this.#channels.observeCall(op, (performance.now() - started) / 1000);
          return { result: decodeReply(op, reply), parts: [], fds: reply.fds };
        }
        const answer = await collect(op, rpc.stream(request, deadlineMs));
        this.#channels.observeCall(op, (performance.now() - started) / 1000);
        return answer;
      } catch (error) {
        const retry =
          attempt === 0 &&
          (error instanceof RpcClosedError ? error instanceof RpcUnreadError || spec.retryable : true) &&
          (await this.#recover(error));
        if (!retry) throw asStorageError(error);
      }
    }
  }
}

/** A plain listing's replies carry no rendered responses. */
function noRendered(reply: Reply): never | null {
  if (reply.tail !== null || reply.message.xml !== undefined) throw protocolError('list');
  return null;
}

/**
 * The rendered responses after a listRendered reply's JSON: `"xml": N` members' worth (they are
 * the user's own listing, written out as they are), or null when the reply has none.
 */
function renderedOf(reply: Reply): RenderedResponses | null {
  const count = reply.message.xml;
  if (count === undefined && reply.tail === null) return null;
  if (!isRequestId(count) || count < 1 || reply.tail === null || reply.tail.length === 0)
    throw protocolError('list');
  const tail = reply.tail;
  // The tail is the end of the message's own buffer (channel.ts gives each message one).
  const message = Buffer.from(tail.buffer, 0, tail.byteOffset + tail.length);
  return { rendered: tail, count, release: () => releaseMessage(message) };
}

/**
 * The entries of a listing's batches one by one. An entry already at hand is one resolved promise
 * away, where an async generator's `yield*` costs several turns of the microtask queue per entry:
 * a 10,000-entry PROPFIND iterates 10,000 times.
 */
function entriesOf<T>(batches: AsyncGenerator<T[]>): AsyncIterable<T> {
  let batch: T[] = [];
  let index = 0;
  const iterator: AsyncIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      while (index === batch.length) {
        const next = await batches.next();
        if (next.done === true) return { done: true, value: undefined };
        batch = next.value;
        index = 0;
      }
      return { done: false, value: batch[index++]! };
    },
    async return(): Promise<IteratorResult<T>> {
      // A consumer that stops early ends the stream too (the channel drops the rest of its replies).
      await batches.return(undefined);
      return { done: true, value: undefined };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

/** The replies of a streamed call: the `more: true` ones are parts, the last one the result. */
async function collect<O extends StorageOp>(op: O, replies: AsyncIterable<Reply>): Promise<Answer<O>> {
  const parts: PartOf<O>[] = [];
  for await (const reply of replies) {
    if (reply.message.more !== true) return { result: decodeReply(op, reply), parts, fds: reply.fds };
    parts.push(...decodePart(op, reply));
  }
  throw protocolError(op);
}

/**
 * A reply's result as its declaration says it must look, or the error it carries as a
 * StorageError. Anything else is refused: a confused or compromised worker is not believed. The
 * descriptors are the caller's only when the result is accepted and carries them.
 */
function decodeReply<O extends StorageOp>(op: O, reply: Reply): ResultOf<O> {
  const spec = PROTOCOL[op];
  const result = spec.result(okResult(reply));
  if (result === undefined || reply.fds.length !== spec.replyFds) {
    closeAll(reply.fds);
    throw protocolError(op);
  }
  return result;
}

function decodePart<O extends StorageOp>(op: O, reply: Reply): PartOf<O>[] {
  const part = PROTOCOL[op].parts?.(okResult(reply));
  closeAll(reply.fds);
  if (part === undefined) throw protocolError(op);
  return part;
}

/** The result of a successful reply; a failure reply is thrown as the StorageError it names. */
function okResult(reply: Reply): unknown {
  const message = reply.message;
  if (message.ok === true) return message.result ?? null;
  closeAll(reply.fds);
  if (message.ok !== false) throw new StorageError('PROTOCOL', 'malformed reply from the worker');
  const code = isStorageErrorCode(message.code) ? message.code : 'INTERNAL';
  const property = typeof message.property === 'string' ? message.property : undefined;
  throw new StorageError(code, typeof message.message === 'string' ? message.message : code, property);
}

/** The one descriptor a reply was checked to carry. */
function onlyFd(fds: readonly number[]): number {
  const [fd] = fds;
  if (fd === undefined) throw new StorageError('PROTOCOL', 'reply without its descriptor');
  return fd;
}

function protocolError(op: string): StorageError {
  return new StorageError('PROTOCOL', `malformed ${op} reply from the worker`);
}

function asStorageError(error: unknown): StorageError {
  if (error instanceof RpcClosedError) return new StorageError('UNAVAILABLE', 'the worker went away');
  if (error instanceof RpcTimeoutError)
    return new StorageError('UNAVAILABLE', 'the worker did not answer in time');
  return StorageError.from(error);
}
