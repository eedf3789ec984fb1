// A message channel over one AF_UNIX SOCK_SEQPACKET socket, driven by the event loop: one message
// per packet, each carrying its own descriptors, with bounded queues and errors instead of drops.
//
// Descriptor ownership is the rule everything else follows: an fd handed to the channel (the
// socket in the constructor, the fds in send()) belongs to the channel from that call on, even if
// the call throws; an fd delivered by 'message' belongs to the listener.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import util from 'node:util';
import { channelBinding, closeFd, type PollHandle } from '../native';

const { UV_READABLE, UV_WRITABLE, MSG_TRUNC, MSG_CTRUNC, SCM_MAX_FD } = channelBinding.constants;
const { EAGAIN, ECONNRESET, EPIPE } = os.constants.errno;

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Messages read per readable event before yielding to other I/O; the poll is level-triggered. */
const READ_BATCH = 1024;

export type ChannelErrorCode =
  | 'CHANNEL_FULL' // send queue at maxQueuedMessages or maxQueuedBytes
  | 'CHANNEL_CLOSED' // send() after destroy() or after an error
  | 'PEER_CLOSED' // the other end is gone (EOF, ECONNRESET, EPIPE; see .errno)
  | 'TRUNCATED' // a received message exceeded maxMessageBytes or maxFdsPerMessage
  | 'TOO_LARGE' // send() payload above maxMessageBytes
  | 'TOO_MANY_FDS' // send() with more than maxFdsPerMessage fds
  | 'EMPTY_MESSAGE' // send() with neither bytes nor fds: it would read as end-of-stream
  | 'INVALID_FDS' // send() fds not distinct non-negative integers, or the channel's own socket
  | (string & {}); // any other system error name, e.g. 'EBADF'

const defaultMessages: Record<string, string> = {
  CHANNEL_FULL: 'channel send queue is full',
  CHANNEL_CLOSED: 'channel is closed',
  PEER_CLOSED: 'peer closed the channel',
  TRUNCATED: 'received message exceeds the size or descriptor limit',
  TOO_LARGE: 'message exceeds maxMessageBytes',
  TOO_MANY_FDS: 'message carries more than maxFdsPerMessage descriptors',
  EMPTY_MESSAGE: 'message has neither payload nor descriptors',
  INVALID_FDS: 'fds must be distinct non-negative integers other than the channel socket',
};

/**
 * Frees a received message's memory now, once nothing refers to it any more (its bytes were
 * copied out), rather than at the next garbage collection: a web process passing a rendered
 * listing on receives a 64 KiB message per ~90 members, and left to the collector they made a
 * seventh of its work. Every view of the message becomes empty. Small messages share Node's pool
 * and are left alone.
 */
export function releaseMessage(payload: Buffer): void {
  if (
    payload.byteOffset === 0 &&
    payload.buffer.byteLength === payload.length &&
    payload.length > Buffer.poolSize
  )
    channelBinding.releaseArrayBuffer(payload.buffer as ArrayBuffer);
}

export class ChannelError extends Error {
  readonly code: ChannelErrorCode;
  /** The system error underneath, when there is one (e.g. 'EPIPE' for PEER_CLOSED). */
  readonly errno: string | undefined;

  constructor(code: ChannelErrorCode, message?: string, errno?: string) {
    super(message ?? defaultMessages[code] ?? code);
    this.name = 'ChannelError';
    this.code = code;
    this.errno = errno;
  }
}

function systemError(negativeErrno: number, during: string): ChannelError {
  const name = util.getSystemErrorName(negativeErrno);
  const description = util.getSystemErrorMap().get(negativeErrno)?.[1] ?? name;
  if (negativeErrno === -ECONNRESET || negativeErrno === -EPIPE)
    return new ChannelError('PEER_CLOSED', `peer closed the channel (${name} on ${during})`, name);
  return new ChannelError(name, `${name}: ${description}, ${during}`, name);
}

export interface ChannelOptions {
  /** Largest payload sent or received (default 128 KiB). A larger incoming message is TRUNCATED. */
  maxMessageBytes?: number;
  /** Messages waiting for the socket before send() throws CHANNEL_FULL (default 4096). */
  maxQueuedMessages?: number;
  /** Payload bytes waiting for the socket before send() throws CHANNEL_FULL (default 16 MiB). */
  maxQueuedBytes?: number;
  /** Descriptors per message, sent or received (default 16, at most 253). */
  maxFdsPerMessage?: number;
}

interface OutgoingMessage {
  payload: Buffer;
  fds: number[] | null;
  /** Freed once the message is sent or dropped (send()'s `release`). */
  release: ArrayBuffer | null;
}

function closeQuietly(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeFd(fd);
    } catch {
      // Not open: nothing to leak.
    }
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new RangeError(`${name} must be an integer from 1 to ${max}`);
  return value;
}

// Typed events for an EventEmitter subclass: the interface only narrows `on`/`once`, it adds no members.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Channel {
  on(event: 'message', listener: (payload: Buffer, fds: number[]) => void): this;
  on(event: 'error', listener: (error: ChannelError) => void): this;
  on(event: 'close' | 'drain', listener: () => void): this;
  on(event: 'newListener' | 'removeListener', listener: (event: string | symbol) => void): this;
  once(event: 'message', listener: (payload: Buffer, fds: number[]) => void): this;
  once(event: 'error', listener: (error: ChannelError) => void): this;
  once(event: 'close' | 'drain', listener: () => void): this;
}

/**
 * Events: 'message' (payload, fds) — the listener owns the fds, which are close-on-exec;
 * 'error' (ChannelError), always followed by 'close'; 'close' once; 'drain' when the send queue
 * empties. Messages are read only while a 'message' listener exists and the channel is not paused,
 * so a slow reader pushes back on the peer through the kernel instead of piling up in memory.
 * A peer's death is seen when reading (EOF) or sending (EPIPE); an idle channel with no listener
 * notices it on the next send. A listener that throws is an uncaught exception, as on any socket.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Channel extends EventEmitter {
  readonly #fd: number;
  readonly #handle: PollHandle;
  readonly #maxMessageBytes: number;
  readonly #maxQueuedMessages: number;
  readonly #maxQueuedBytes: number;
  readonly #maxFdsPerMessage: number;
  // The native side holds this callback only weakly while idle: keeping it here ties its life to ours.
  readonly #pollCallback = (status: number, events: number): void => this.#onPoll(status, events);
  readonly #receiveFds: Int32Array;
  #receiveBuffer: Buffer | null = null;
  #queue: (OutgoingMessage | undefined)[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #polledEvents = 0;
  #paused = false;
  #destroyed = false;

  /** Takes ownership of `fd` (a SEQPACKET socket) and makes it non-blocking; closes it if this throws. */
  constructor(fd: number, options: ChannelOptions = {}) {
    super();
    try {
      this.#maxMessageBytes = positiveInteger('maxMessageBytes', options.maxMessageBytes, 128 * KiB, GiB);
      this.#maxQueuedMessages = positiveInteger('maxQueuedMessages', options.maxQueuedMessages, 4096, GiB);
      this.#maxQueuedBytes = positiveInteger('maxQueuedBytes', options.maxQueuedBytes, 16 * MiB, 1024 * GiB);
      this.#maxFdsPerMessage = positiveInteger('maxFdsPerMessage', options.maxFdsPerMessage, 16, SCM_MAX_FD);
      this.#handle = channelBinding.pollOpen(fd, this.#pollCallback);
    } catch (error) {
      closeQuietly([fd]);
      throw error;
    }
    this.#fd = fd;
    this.#receiveFds = new Int32Array(2 + this.#maxFdsPerMessage);
    // 'newListener' fires before the listener is added, hence the explicit flag.
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message') this.#updatePolling(true);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'message') this.#updatePolling(false);
    });
  }

  get queuedMessages(): number {
    return this.#queue.length - this.#queueHead;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Sends `payload` with `fds` now, or queues it behind earlier messages. The fds are the channel's
   * from this call on: closed once sent, when the channel is destroyed, or — if send() throws —
   * before it throws. Returns true when the message went to the kernel within the call: `payload`
   * is the caller's again. Otherwise (queued, or the socket failed) do not modify it: a queued
   * message keeps a reference. `release`, the ArrayBuffer under `payload` if the caller owns it
   * alone (larger than Buffer.poolSize), is then freed as soon as the queued message is sent or
   * dropped (its views become empty), rather than at a garbage collection: a worker streaming a
   * big listing queues megabytes.
   * Throws CHANNEL_FULL, CHANNEL_CLOSED, TOO_LARGE, TOO_MANY_FDS, EMPTY_MESSAGE, INVALID_FDS.
   * A failure of the socket itself is reported through 'error', like every other socket failure.
   */
  send(payload: Buffer, fds: readonly number[] = [], release: ArrayBuffer | null = null): boolean {
    const owned = this.#takeFds(fds);
    if (!Buffer.isBuffer(payload)) this.#refuse(owned, new TypeError('payload must be a Buffer'));
    if (this.#destroyed) this.#refuse(owned, new ChannelError('CHANNEL_CLOSED'));
    if (payload.length > this.#maxMessageBytes) this.#refuse(owned, new ChannelError('TOO_LARGE'));
    if (owned.length > this.#maxFdsPerMessage) this.#refuse(owned, new ChannelError('TOO_MANY_FDS'));
    if (payload.length === 0 && owned.length === 0) this.#refuse(owned, new ChannelError('EMPTY_MESSAGE'));

    // Node's shared pool of small Buffers must never be released: only a buffer of its own.
    if (release !== null && (release !== payload.buffer || release.byteLength <= Buffer.poolSize))
      this.#refuse(
        owned,
        new TypeError("release must be the payload's own ArrayBuffer, above Buffer.poolSize"),
      );

    const message: OutgoingMessage = { payload, fds: owned.length > 0 ? owned : null, release };
    if (this.queuedMessages === 0) {
      const sent = channelBinding.sendmsg(this.#fd, payload, message.fds);
      if (sent >= 0) return true;
      if (sent !== -EAGAIN) {
        closeQuietly(owned);
        this.#fail(systemError(sent, 'send'));
        return false;
      }
    }
    if (
      this.queuedMessages >= this.#maxQueuedMessages ||
      this.#queuedBytes + payload.length > this.#maxQueuedBytes
    )
      this.#refuse(owned, new ChannelError('CHANNEL_FULL'));
    this.#queue.push(message);
    this.#queuedBytes += payload.length;
    this.#updatePolling(false);
    return false;
  }

  /** Stops reading; the kernel queue fills and the peer's sends then wait (or fill its queue). */
  pause(): void {
    this.#paused = true;
    this.#updatePolling(false);
  }

  resume(): void {
    this.#paused = false;
    this.#updatePolling(false);
  }

  /** Like net.Socket.ref(): an active channel keeps the process alive (the default). */
  ref(): this {
    if (!this.#destroyed) channelBinding.pollRef(this.#handle, true);
    return this;
  }

  /** Like net.Socket.unref(): the process may exit while this channel is still open. */
  unref(): this {
    if (!this.#destroyed) channelBinding.pollRef(this.#handle, false);
    return this;
  }

  /** Closes the socket and every fd still queued for sending; emits 'close' once. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#teardown();
    process.nextTick(() => this.emit('close'));
  }

  // Validates and copies `fds` (the caller may reuse its array). Invalid entries make send()
  // throw INVALID_FDS, after closing the valid ones: ownership passed at the call.
  #takeFds(fds: readonly number[]): number[] {
    if (!Array.isArray(fds)) throw new TypeError('fds must be an array');
    const owned: number[] = [];
    let valid = true;
    for (const fd of fds) {
      // Never close our own socket or a number twice: that number may already be someone else's.
      const ownSocket = fd === this.#fd && !this.#destroyed; // after destroy the number may be reused
      if (!Number.isInteger(fd) || fd < 0 || ownSocket || owned.includes(fd)) valid = false;
      else owned.push(fd);
    }
    if (!valid) this.#refuse(owned, new ChannelError('INVALID_FDS'));
    return owned;
  }

  #refuse(owned: readonly number[], error: Error): never {
    closeQuietly(owned);
    throw error;
  }

  #updatePolling(addingReader: boolean): void {
    if (this.#destroyed) return;
    const reading = !this.#paused && (addingReader || this.listenerCount('message') > 0);
    const events = (reading ? UV_READABLE : 0) | (this.queuedMessages > 0 ? UV_WRITABLE : 0);
    if (events === this.#polledEvents) return;
    channelBinding.pollSet(this.#handle, events);
    this.#polledEvents = events;
  }

  #onPoll(status: number, events: number): void {
    if (this.#destroyed) return;
    if (status < 0) {
      this.#onPollError(status);
      return;
    }
    // Read first: what the peer sent before it died is delivered before its death is reported.
    if (events & UV_READABLE) this.#readMessages();
    if (events & UV_WRITABLE && this.queuedMessages > 0 && !this.#destroyed) this.#flush();
  }

  // libuv stops the poll on POLLERR. A peer that died with our messages unread leaves ECONNRESET
  // pending: clear it and poll again, so its last messages are read and then EOF or EPIPE ends
  // the channel as PEER_CLOSED like any other death.
  #onPollError(status: number): void {
    this.#polledEvents = 0;
    const pending = channelBinding.socketError(this.#fd);
    if (pending === -ECONNRESET || pending === -EPIPE) this.#updatePolling(false);
    else this.#fail(systemError(pending < 0 ? pending : status, 'poll'));
  }

  #flush(): void {
    while (this.#queueHead < this.#queue.length) {
      const message = this.#queue[this.#queueHead] as OutgoingMessage;
      const sent = channelBinding.sendmsg(this.#fd, message.payload, message.fds);
      if (sent === -EAGAIN) break;
      if (sent < 0) {
        this.#fail(systemError(sent, 'send'));
        return;
      }
      this.#queue[this.#queueHead++] = undefined;
      this.#queuedBytes -= message.payload.length;
      if (message.release !== null) channelBinding.releaseArrayBuffer(message.release);
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
      this.#updatePolling(false);
      this.emit('drain');
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      // Drop the sent prefix now and then, so a long-lived queue does not grow without bound.
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #readMessages(): void {
    const buffer = (this.#receiveBuffer ??= Buffer.allocUnsafe(this.#maxMessageBytes));
    const out = this.#receiveFds;
    for (let i = 0; i < READ_BATCH; i++) {
      if (this.#destroyed || this.#paused || this.listenerCount('message') === 0) return;
      const received = channelBinding.recvmsg(this.#fd, buffer, out);
      if (received === -EAGAIN) return;
      if (received < 0) {
        this.#fail(systemError(received, 'receive'));
        return;
      }
      const fds = out[1] > 0 ? Array.from(out.subarray(2, 2 + out[1])) : [];
      if (out[0] & (MSG_TRUNC | MSG_CTRUNC)) {
        // The peer broke the agreed limits: what did arrive is closed, and we stop talking to it.
        closeQuietly(fds);
        this.#fail(new ChannelError('TRUNCATED'));
        return;
      }
      // SEQPACKET reads end-of-stream as a 0-byte packet; send() never emits one without fds.
      if (received === 0 && fds.length === 0) {
        this.#fail(new ChannelError('PEER_CLOSED'));
        return;
      }
      const payload = Buffer.allocUnsafe(received);
      buffer.copy(payload, 0, 0, received);
      this.emit('message', payload, fds);
    }
  }

  #fail(error: ChannelError): void {
    if (this.#destroyed) return;
    this.#teardown();
    process.nextTick(() => {
      try {
        this.emit('error', error);
      } finally {
        this.emit('close');
      }
    });
  }

  #teardown(): void {
    this.#destroyed = true;
    channelBinding.pollClose(this.#handle);
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const message = this.#queue[i];
      if (message?.fds) closeQuietly(message.fds);
      if (message?.release) channelBinding.releaseArrayBuffer(message.release);
    }
    this.#queue = [];
    this.#queueHead = 0;
    this.#queuedBytes = 0;
    this.#receiveBuffer = null;
  }
}
