// A 207 Multi-Status body written as responses arrive: the status line goes out with the first
// response, text is batched into large writes (gzip-compressed when the client takes it), and a
// slow client applies backpressure.
import type * as http from 'node:http';
import type { Writable } from 'node:stream';
import { startGeneratedBody } from '../http/compression';
import { ClientGoneError, statusLine } from './errors';
import { escapeXml, XML_DECLARATION } from './xml';

const FLUSH_AT = 64 * 1024;

export class MultistatusWriter {
  private readonly res: http.ServerResponse;
  /** With the request: the body may be compressed, as its Accept-Encoding allows. */
  private readonly req: http.IncomingMessage | null;
  private out: Writable | null = null;
  private pending = '';
  private started = false;

  constructor(res: http.ServerResponse, req?: http.IncomingMessage) {
    this.res = res;
    this.req = req ?? null;
  }

  /** True once the 207 status has gone out; errors after that can only abort the response. */
  get isStarted(): boolean {
    return this.started;
  }

  /**
   * Adds one complete <D:response> element. Returns a promise only when text went out and the
   * client has yet to take it (backpressure): a listing awaits once per 64 KiB, not per entry.
   */
  add(responseXml: string): Promise<void> | undefined {
    if (!this.started) this.start();
    this.pending += responseXml;
    return this.pending.length >= FLUSH_AT ? this.flush() : undefined;
  }

  /** A response that carries only a status for an href (e.g. a member that could not be deleted). */
  async addStatus(href: string, status: number, condition?: string): Promise<void> {
    const error = condition === undefined ? '' : `<D:error><D:${condition}/></D:error>`;
    await this.add(
      `<D:response><D:href>${escapeXml(href)}</D:href><D:status>${statusLine(status)}</D:status>${error}</D:response>`,
    );
  }

  async end(): Promise<void> {
    if (!this.started) this.start();
    this.out!.end(utf8(this.pending + '</D:multistatus>'));
    this.pending = '';
  }

  private start(): void {
    this.started = true;
    const headers = { 'Content-Type': 'application/xml; charset=utf-8' };
    if (this.req === null) {
      this.res.writeHead(207, headers);
      this.out = this.res;
    } else {
      this.out = startGeneratedBody(this.req, this.res, 207, headers);
    }
    this.pending = XML_DECLARATION + '<D:multistatus xmlns:D="DAV:">';
  }

  private async flush(): Promise<void> {
    const chunk = this.pending;
    this.pending = '';
    const out = this.out!;
    if (out.destroyed || this.res.destroyed) throw new ClientGoneError();
    if (!out.write(utf8(chunk))) await waitForDrain(out);
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
