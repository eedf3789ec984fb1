// A 207 Multi-Status body written as responses arrive (StreamedResponse: batched, flow-controlled,
// the status line held back until the first batch, so an early refusal can still be a clean error).
import type * as http from 'node:http';
import { statusLine } from './errors';
import { StreamedResponse } from './streamed-response';
import { escapeXml, XML_DECLARATION } from './xml';

export class MultistatusWriter extends StreamedResponse {
  constructor(res: http.ServerResponse) {
    super(
      res,
      207,
      { 'Content-Type': 'application/xml; charset=utf-8' },
      XML_DECLARATION + '<D:multistatus xmlns:D="DAV:">',
      '</D:multistatus>',
    );
  }

  /** A response that carries only a status for an href (e.g. a member that could not be deleted). */
  async addStatus(href: string, status: number, condition?: string): Promise<void> {
    const error = condition === undefined ? '' : `<D:error><D:${condition}/></D:error>`;
    await this.add(
      `<D:response><D:href>${escapeXml(href)}</D:href><D:status>${statusLine(status)}</D:status>${error}</D:response>`,
    );
  }
}
