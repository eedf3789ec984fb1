// Request/reply over a Channel: numbered calls, replies matched by id, pipelined (many calls in
// flight on one channel), and streamed replies for calls that answer in several messages
// (`more: true`). Used by the web process towards the monitor and towards each worker.
//
// A stream whose caller falls behind (a PROPFIND of a huge collection to a slow client) pauses
// the channel until the caller catches up: the replies then wait in the kernel and in the
// worker, which waits for its channel to drain, instead of piling up in this process — a
// directory of a million files must not cost the web process, shared by everyone, a gigabyte.
// While paused, the other calls on this channel (the same user's) wait too.
//
// Every call has a deadline: a peer that never answers (a hung worker, a reply it could not send)
// fails the call with RpcTimeoutError instead of leaving it, and what it holds, pending forever.
// A stream's deadline is for each next reply, and stands still while its caller is the slow one.

import { Channel } from './channel';
import { closeFd } from '../native';
import { decodeTailedMessage, encodeMessage, encodeTailedMessage, isRequestId } from './protocol';

export interface Reply {
  message: Record<string, unknown>;
  fds: number[];
  /** Bytes after the message's JSON, past a NUL (a rendered listing's responses); null when none. */
  tail: Buffer | null;
}

export class RpcClosedError extends Error {
  readonly code = 'UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'RpcClosedError';
  }
}

/** The peer did not answer within the call's deadline; the channel itself may still be fine. */
export class RpcTimeoutError extends Error {
  readonly code = 'TIMEOUT';
  constructor(message: string) {
    super(message);
    this.name = 'RpcTimeoutError';
  }
}

/** Deadline of a call when neither the client nor the call names one. */
export const DEFAULT_DEADLINE_MS = 2 * 60 * 1000;

/**
 * The peer closed the channel saying (its `closing` notice) that it read none of the calls still
 * unanswered: any of them, even one that changes something, may be sent again on a new channel.
 */
export class RpcUnreadError extends RpcClosedError {
  constructor() {
    super('the worker closed the channel before reading this call');
    this.name = 'RpcUnreadError';
  }
}

/** Replies one stream may hold before the channel is paused, and the level at which it resumes. */
const STREAM_QUEUE_HIGH = 4;
const STREAM_QUEUE_LOW = 1;

interface Pending {
  id: number;
  /** Replies not yet taken by the caller (streams only). */
  queue: Reply[];
  wake: (() => void) | null;
  resolve: ((reply: Reply) => void) | null;
  reject: ((error: Error) => void) | null;
  failure: Error | null;
  done: boolean;
  stream: boolean;
  deadlineMs: number;
  timer: NodeJS.Timeout | null;
}

export class RpcClient {
  readonly #channel: Channel;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Requests sent and messages received: how many channel round trips a piece of work costs. */
  readonly stats = { requests: 0, replies: 0 };
  #closed: Error | null = null;
  /** Streams holding STREAM_QUEUE_HIGH replies or more: the channel is paused while there are any. */
  readonly #congested = new Set<Pending>();
  readonly #onClose: ((error: Error) => void) | null;
  readonly #onNotice: ((message: Record<string, unknown>, fds: number[]) => void) | null;
  readonly #deadlineMs: number;

  /**
   * `onNotice` receives messages that are not replies (no `id`); without it they are dropped.
   * `onClose` is told once when the channel is gone, after every pending call has failed.
   * `deadlineMs` is how long a call waits for its (next) reply unless the call names its own.
   */
  constructor(
    channel: Channel,
    handlers: {
      onClose?: (error: Error) => void;
      onNotice?: (message: Record<string, unknown>, fds: number[]) => void;
      deadlineMs?: number;
    } = {},
  ) {
    this.#deadlineMs = handlers.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#channel = channel;
    this.#onClose = handlers.onClose ?? null;
    this.#onNotice = handlers.onNotice ?? null;
    channel.on('message', (payload: Buffer, fds: number[]) => this.#receive(payload, fds));
    channel.on('error', (error: Error) => this.#fail(new RpcClosedError(`channel error: ${error.message}`)));
    channel.on('close', () => this.#fail(new RpcClosedError('channel closed')));
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Aborted once the channel is gone: state its peer held for us (an open upload) is lost. */
  get gone(): AbortSignal {
    return this.#gone.signal;
  }

  readonly #gone = new AbortController();

  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * One request, one reply. The fds are the channel's from this call on (closed if it fails);
   * `tail`, file content, is sent after the message's JSON.
   */
  call(
    message: Record<string, unknown>,
    fds: number[] = [],
    deadlineMs = this.#deadlineMs,
    tail: Buffer | null = null,
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const pending = this.#start(message, fds, false, reject, deadlineMs, tail);
      if (pending === null) return;
      pending.resolve = resolve;
      pending.reject = reject;
    });
  }

  /** One request, replies until one without `more: true`. Stops early if the caller breaks out. */
  async *stream(message: Record<string, unknown>, deadlineMs = this.#deadlineMs): AsyncGenerator<Reply> {
    let failure: Error | null = null;
    const pending = this.#start(
      message,
      [],
      true,
      (error) => {
        failure = error;
      },
      deadlineMs,
    );
    if (pending === null) throw failure ?? new RpcClosedError('channel closed');
    try {
      for (;;) {
        const next = pending.queue.shift();
        if (next !== undefined) {
          if (pending.queue.length <= STREAM_QUEUE_LOW) this.#setCongested(pending, false);
          yield next;
          continue;
        }
        if (pending.failure !== null) throw pending.failure;
        if (pending.done) return;
        await new Promise<void>((wake) => {
          pending.wake = wake;
        });
      }
    } finally {
      // Replies of an abandoned stream still arrive; they are dropped (and their fds closed) on receipt.
      for (const reply of pending.queue) closeAll(reply.fds);
      pending.queue.length = 0;
      pending.done = true;
      this.#setCongested(pending, false);
    }
  }

  #setCongested(pending: Pending, congested: boolean): void {
    if (congested === this.#congested.has(pending)) return;
    if (congested) this.#congested.add(pending);
    else this.#congested.delete(pending);
    // A congested stream waits for its caller, not for the peer: no deadline meanwhile.
    if (congested) this.#disarm(pending);
    else if (this.#pending.has(pending.id)) this.#arm(pending);
    if (this.#closed !== null) return;
    if (this.#congested.size > 0) this.#channel.pause();
    else this.#channel.resume();
  }

  close(): void {
    this.#channel.destroy();
  }

  /** The peer said it read none of the unanswered calls and is closing: fail them as resendable. */
  closeUnread(): void {
    this.#fail(new RpcUnreadError());
  }

  #closeWhenIdle = false;
  /** Closes once the calls in flight have their answers (a retired worker's channel). */
  closeWhenIdle(): void {
    this.#closeWhenIdle = true;
    if (this.#pending.size === 0) this.close();
  }

  #start(
    message: Record<string, unknown>,
    fds: number[],
    stream: boolean,
    reject: (error: Error) => void,
    deadlineMs: number,
    tail: Buffer | null = null,
  ): Pending | null {
    if (this.#closed !== null) {
      closeAll(fds);
      reject(this.#closed);
      return null;
    }
    const id = this.#nextId++;
    let payload: Buffer;
    try {
      // The id first, then set again so that it wins over any `id` in the message: a spread
      // followed by more properties takes V8 11's slow path (~1.4 µs per call on this VM).
      const framed: Record<string, unknown> = { id, ...message };
      framed.id = id;
      payload = tail === null ? encodeMessage(framed) : encodeTailedMessage(framed, tail);
    } catch (error) {
      closeAll(fds); // never handed to the channel: still ours to close
      reject(error instanceof Error ? error : new Error(String(error)));
      return null;
    }
    const pending: Pending = {
      id,
      queue: [],
      wake: null,
      resolve: null,
      reject: null,
      failure: null,
      done: false,
      stream,
      deadlineMs,
      timer: null,
    };
    try {
      this.#channel.send(payload, fds); // the fds are the channel's now, sent or not
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
      return null;
    }
    this.#pending.set(id, pending);
    this.#arm(pending);
    this.stats.requests++;
    return pending;
  }

  #arm(pending: Pending): void {
    this.#disarm(pending);
    pending.timer = setTimeout(() => this.#expire(pending), pending.deadlineMs);
    pending.timer.unref();
  }

  #disarm(pending: Pending): void {
    if (pending.timer !== null) clearTimeout(pending.timer);
    pending.timer = null;
  }

  /** The deadline passed: the call fails, and a reply that still comes is dropped on receipt. */
  #expire(pending: Pending): void {
    pending.timer = null;
    if (this.#pending.get(pending.id) !== pending) return;
    this.#pending.delete(pending.id);
    this.#congested.delete(pending);
    const error = new RpcTimeoutError(`no reply within ${pending.deadlineMs} ms`);
    pending.failure = error;
    pending.reject?.(error);
    pending.resolve = null;
    pending.reject = null;
    const wake = pending.wake;
    pending.wake = null;
    wake?.();
    if (this.#closed === null && this.#congested.size === 0) this.#channel.resume();
    if (this.#closeWhenIdle && this.#pending.size === 0) queueMicrotask(() => this.close());
  }

  #receive(payload: Buffer, fds: number[]): void {
    this.stats.replies++;
    const decoded = decodeTailedMessage(payload);
    const message = decoded?.message ?? null;
    const tail = decoded?.tail ?? null;
    const id = message?.id;
    if (message !== null && id === undefined && this.#onNotice !== null) {
      this.#onNotice(message, fds);
      return;
    }
    const pending = isRequestId(id) ? this.#pending.get(id) : undefined;
    if (message === null || pending === undefined || !isRequestId(id)) {
      // A reply nobody waits for (or garbage): drop it, never leak what it carried.
      closeAll(fds);
      return;
    }
    const last = message.more !== true;
    if (last) {
      this.#disarm(pending);
      this.#pending.delete(id);
      if (this.#closeWhenIdle && this.#pending.size === 0) queueMicrotask(() => this.close());
    }
    if (!pending.stream) {
      pending.resolve?.({ message, fds, tail });
      return;
    }
    if (pending.done) {
      closeAll(fds);
      return;
    }
    pending.queue.push({ message, fds, tail });
    if (last) pending.done = true;
    else if (pending.queue.length >= STREAM_QUEUE_HIGH) this.#setCongested(pending, true);
    else if (!this.#congested.has(pending)) this.#arm(pending);
    const wake = pending.wake;
    pending.wake = null;
    wake?.();
  }

  #fail(error: Error): void {
    if (this.#closed !== null) return;
    this.#closed = error;
    for (const pending of this.#pending.values()) {
      this.#disarm(pending);
      pending.failure = error;
      pending.reject?.(error);
      const wake = pending.wake;
      pending.wake = null;
      wake?.();
    }
    this.#pending.clear();
    this.#channel.destroy();
    this.#gone.abort(error);
    this.#onClose?.(error);
  }
}

export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeFd(fd);
    } catch {
      // Already closed: nothing to leak.
    }
  }
}
