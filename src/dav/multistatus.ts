// A 207 Multi-Status body written as responses arrive: the status line goes out with the first
// response, text is batched into large writes, and a slow client applies backpressure.
import type * as http from 'node:http';
import { statusLine } from './errors';
import { escapeXml, XML_DECLARATION } from './xml';

const FLUSH_AT = 64 * 1024;

export class MultistatusWriter {
  private readonly res: http.ServerResponse;
  private pending = '';
  private started = false;

  constructor(res: http.ServerResponse) {
    this.res = res;
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
    this.res.end(Buffer.from(this.pending + '</D:multistatus>', 'utf8'));
    this.pending = '';
  }

  private start(): void {
    this.started = true;
    this.res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
    this.pending = XML_DECLARATION + '<D:multistatus xmlns:D="DAV:">';
  }

  private async flush(): Promise<void> {
    const chunk = this.pending;
    this.pending = '';
    if (this.res.destroyed) throw new Error('client went away');
    // As one Buffer: the text is a rope of many small strings, and a string chunk is flattened
    // and encoded twice by node:http (once to measure it for chunked encoding, once to send it).
    if (!this.res.write(Buffer.from(chunk, 'utf8'))) await waitForDrain(this.res);
  }
}

/** Resolves when the response can take more data, or rejects when the client is gone. */
export function waitForDrain(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      reject(new Error('client went away'));
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
