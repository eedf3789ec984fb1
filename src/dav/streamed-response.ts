// A response body of text produced piece by piece (a multistatus, an HTML listing): batched into
// large writes (gzip-compressed when the client takes it), paused while the client is slow (so one reader of a huge listing holds a batch,
// not the listing), and with its status line held back until the first batch goes out.
import type * as http from 'node:http';
import type { Writable } from 'node:stream';
import { startGeneratedBody } from '../http/compression';
import { ClientGoneError } from './errors';

const FLUSH_AT = 64 * 1024;
/** A batch's buffer: a flush's worth and room for the piece that crosses FLUSH_AT. */
const BATCH_BYTES = FLUSH_AT + 16 * 1024;

const encoder = new TextEncoder();

export class StreamedResponse {
  private readonly res: http.ServerResponse;
  private readonly status: number;
  private readonly headers: http.OutgoingHttpHeaders;
  private readonly tail: string;
  /** Text added since the last encoding: joined by the engine, encoded once per batch. */
  private pending: string;
  /** The batch's bytes so far (text already encoded, pieces added encoded); null until needed. */
  private batch: Buffer | null = null;
  private used = 0;
  /**
   * A batch buffer the writer called back for (its bytes are in the kernel or compressed), taken
   * for the next batch: a 90 MB multistatus then cycles through two buffers instead of making
   * 1,400 for the garbage collector, whose full collections (external memory) stall every request.
   */
  private spare: Buffer | null = null;
  private sent = false;
  /** `res`, or the gzip stream in front of it when the client takes gzip. */
  private out: Writable | null = null;

  /** `head` and `tail` open and close the body; nothing is sent before the first flush or end(). */
  constructor(
    res: http.ServerResponse,
    status: number,
    headers: http.OutgoingHttpHeaders,
    head: string,
    tail: string,
  ) {
    this.res = res;
    this.status = status;
    this.headers = headers;
    this.pending = head;
    this.tail = tail;
  }

  /** True once bytes have gone out: an error after that can only cut the response short. */
  get isStarted(): boolean {
    return this.sent;
  }

  /**
   * Appends text, then `encoded` (UTF-8 made once per request for what every entry repeats — a
   * PROPFIND naming 200 unknown properties sends the same 404 block for each of 10,000 members:
   * copied, not built and encoded again each time). Returns a promise only when a batch went out
   * (once per 64 KiB, not per entry): it waits for a slow client to take the batch
   * (backpressure), or else for one turn of the event loop — rendering a large listing for a fast
   * client must not keep everyone else's requests waiting until a whole batch from the worker is
   * rendered.
   */
  add(text: string, encoded?: Uint8Array): Promise<void> | undefined {
    this.pending += text;
    if (encoded !== undefined) {
      this.encodePending(BATCH_BYTES);
      this.reserve(encoded.length, BATCH_BYTES);
      this.batch!.set(encoded, this.used);
      this.used += encoded.length;
    }
    return this.used + this.pending.length >= FLUSH_AT ? this.flush() : undefined;
  }

  /**
   * Sends `bytes` — a buffer this response may hold until it is written, such as the worker's
   * rendered responses in a received message — as a write of its own, after what is pending,
   * without copying it into a batch; `release` is called once the writer is done with it (the
   * bytes are in the kernel or compressed), never if the write fails. Backpressure as for add().
   * A rendered batch (up to 96 KiB) was copied twice here before: into a batch buffer too small
   * for it, then with that into a larger one.
   */
  async addOwned(bytes: Buffer, release: () => void): Promise<void> {
    if (this.used + this.pending.length > 0) {
      const chunk = this.takeBatch(0);
      if (!this.writeChunk(chunk, () => this.keepSpare(chunk))) await waitForDrain(this.out!);
    }
    if (bytes.length === 0) return release();
    return this.afterWrite(this.writeChunk(bytes, release));
  }

  /**
   * Writes one chunk (after the status line, on the first); false when the writer is full.
   * `written` runs once the writer is done with the chunk, never if the write fails.
   */
  private writeChunk(chunk: Buffer, written: () => void): boolean {
    if (this.res.destroyed || this.out?.destroyed === true) throw new ClientGoneError();
    const out = this.startOnce();
    if (this.res.req.method === 'HEAD') {
      written();
      return true;
    }
    return out.write(chunk, (error) => {
      if (error === null || error === undefined) written();
    });
  }

  /**
   * After a write: a full writer is waited for (a slow client's backpressure); otherwise one turn
   * of the event loop, so that rendering a large listing for a fast client does not keep everyone
   * else's requests waiting.
   */
  private afterWrite(taken: boolean): Promise<void> {
    return taken ? new Promise<void>((resolve) => setImmediate(resolve)) : waitForDrain(this.out!);
  }

  /**
   * Keeps a written batch's buffer for the next batch, when it is a batch buffer of its own: a
   * small one is a slice of Node's shared pool, whose ArrayBuffer holds other buffers too.
   */
  private keepSpare(chunk: Buffer): void {
    if (chunk.buffer.byteLength >= BATCH_BYTES) this.spare = Buffer.from(chunk.buffer);
  }

  async end(): Promise<void> {
    const out = this.startOnce();
    this.pending += this.tail;
    const body = this.takeBatch(0);
    if (this.res.req.method === 'HEAD') out.end();
    else out.end(body);
  }

  private startOnce(): Writable {
    if (this.out === null) {
      this.sent = true;
      this.out = startGeneratedBody(this.res.req, this.res, this.status, this.headers);
    }
    return this.out;
  }

  private async flush(): Promise<void> {
    const chunk = this.takeBatch(BATCH_BYTES);
    const taken = this.writeChunk(chunk, () => this.keepSpare(chunk));
    // A HEAD response writes nothing, so it has nothing to wait for.
    if (this.res.req.method !== 'HEAD') await this.afterWrite(taken);
  }

  /**
   * The batch as one Buffer, which is then the writer's: node:http would flatten and encode a
   * string chunk twice (once to measure it for chunked encoding, once to send it); and
   * TextEncoder.encodeInto encodes the mostly ASCII text of a multistatus several times faster
   * than Buffer.from.
   */
  private takeBatch(minimum: number): Buffer {
    this.encodePending(minimum);
    const chunk = this.batch === null ? Buffer.alloc(0) : this.batch.subarray(0, this.used);
    this.batch = null;
    this.used = 0;
    return chunk;
  }

  /** Moves the pending text into the batch; a new buffer is at least `minimum` bytes. */
  private encodePending(minimum: number): void {
    const text = this.pending;
    if (text === '') return;
    this.pending = '';
    // Three bytes per UTF-16 unit at most: only text with many characters above U+07FF is measured.
    const room = (this.batch?.length ?? 0) - this.used;
    if (room < text.length * 3) this.reserve(Buffer.byteLength(text, 'utf8'), minimum);
    const { written } = encoder.encodeInto(text, this.batch!.subarray(this.used));
    this.used += written;
  }

  /** Makes room for `bytes` more, moving what the batch holds into a larger buffer if need be. */
  private reserve(bytes: number, minimum: number): void {
    const needed = this.used + bytes;
    if (this.batch !== null && this.batch.length >= needed) return;
    const size = Math.max(needed, minimum);
    const spare = this.spare;
    this.spare = null;
    // Batch buffers are never from Node's shared pool (BATCH_BYTES is above it): the whole
    // ArrayBuffer is the batch's, and can be taken whole again.
    const larger = spare !== null && spare.length >= size ? spare : Buffer.allocUnsafe(size);
    this.batch?.copy(larger, 0, 0, this.used);
    this.batch = larger;
  }
}

/** Resolves when the response can take more data, or rejects when the client is gone. */
export function waitForDrain(res: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      reject(new ClientGoneError());
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
