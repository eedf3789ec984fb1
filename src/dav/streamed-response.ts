// A response body of text produced piece by piece (a multistatus, an HTML listing): batched into
// large writes (gzip-compressed when the client takes it), paused while the client is slow (so one reader of a huge listing holds a batch,
// not the listing), and with its status line held back until the first batch goes out.
import type * as http from 'node:http';
import type { Writable } from 'node:stream';
import { startGeneratedBody } from '../http/compression';
import { ClientGoneError } from './errors';

const FLUSH_AT = 64 * 1024;

export class StreamedResponse {
  private readonly res: http.ServerResponse;
  private readonly status: number;
  private readonly headers: http.OutgoingHttpHeaders;
  private readonly tail: string;
  private pending: string;
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
   * Appends text. Returns a promise only when a batch went out (once per 64 KiB, not per entry):
   * it waits for a slow client to take the batch (backpressure), or else for one turn of the event
   * loop — rendering a large listing for a fast client must not keep everyone else's requests
   * waiting until a whole batch from the worker is rendered.
   */
  add(text: string): Promise<void> | undefined {
    this.pending += text;
    return this.pending.length >= FLUSH_AT ? this.flush() : undefined;
  }

  async end(): Promise<void> {
    const out = this.startOnce();
    if (this.res.req.method === 'HEAD') out.end();
    else out.end(utf8(this.pending + this.tail));
    this.pending = '';
  }

  private startOnce(): Writable {
    if (this.out === null) {
      this.sent = true;
      this.out = startGeneratedBody(this.res.req, this.res, this.status, this.headers);
    }
    return this.out;
  }

  private async flush(): Promise<void> {
    const chunk = this.pending;
    this.pending = '';
    if (this.res.destroyed || this.out?.destroyed === true) throw new ClientGoneError();
    const out = this.startOnce();
    if (this.res.req.method === 'HEAD') return;
    if (!out.write(utf8(chunk))) await waitForDrain(out);
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const encoder = new TextEncoder();

/**
 * The text as UTF-8, in one Buffer. node:http would flatten and encode a string chunk twice (once
 * to measure it for chunked encoding, once to send it); and TextEncoder.encodeInto encodes the
 * mostly ASCII text of a multistatus several times faster than Buffer.from.
 */
function utf8(text: string): Buffer {
  const buffer = Buffer.allocUnsafe(text.length + 256);
  const { read, written } = encoder.encodeInto(text, buffer);
  // Text with many characters above U+007F does not fit: encoded the ordinary way.
  return read === text.length ? buffer.subarray(0, written) : Buffer.from(text, 'utf8');
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
