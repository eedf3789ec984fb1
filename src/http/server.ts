// The web process's request pipeline: Basic auth → a Storage bound to the user (PrivsepStorage
// over the user's worker) → the WebDAV protocol core. Authentication failures and an unreachable
// monitor are answered here; everything else is the protocol core's.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { noteUser } from './access-log';
import { Authenticator, parseBasic } from './auth';
import { LoginBusyError } from '../monitor-client';
import { PrivsepStorage, WorkerChannels } from '../storage/privsep-storage';
import type { DavRequestContext } from '../dav/handler';
import type { Logger } from '../../common/log';

export type DavHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  context: DavRequestContext,
) => Promise<void>;

export interface PipelineOptions {
  authenticator: Authenticator;
  channels: WorkerChannels;
  /** The realm of the challenge (read per response: it can change on reload). */
  realm: () => string;
  log: Logger;
  /** The current protocol handler (replaced on reload). */
  dav: () => DavHandler;
  /** Told of each request whose credentials were accepted (its connection is then never shed). */
  onAuthenticated: (req: IncomingMessage) => void;
}

export function createPipeline(
  options: PipelineOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    reason: string,
    retryAfterS = 5,
  ): void => {
    const body = `${status} ${reason}\n`;
    const headers: Record<string, string | number> = {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    };
    if (status === 401) headers['WWW-Authenticate'] = `Basic realm="${options.realm()}", charset="UTF-8"`;
    if (status === 503) headers['Retry-After'] = retryAfterS;
    // An unread request body (an upload we refused) is not worth reading: close instead.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
      headers.Connection = 'close';
    }
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const credentials = parseBasic(req.headers.authorization);
    if (credentials === null) return refuse(req, res, 401, 'Authentication required');
    const remote = req.socket.remoteAddress ?? '';
    let session;
    try {
      session = await options.authenticator.authenticate(credentials, remote);
    } catch (error) {
      // Overload is the monitor's to log (once per interval, not once per request).
      if (error instanceof LoginBusyError)
        return refuse(req, res, 503, 'Too many logins at once; try again shortly', error.retryAfterS);
      options.log.error('authentication unavailable', { error: (error as Error).message });
      return refuse(req, res, 503, 'Authentication temporarily unavailable');
    }
    if (session === null) return refuse(req, res, 401, 'Wrong user name or password');
    noteUser(req, session.user);
    options.onAuthenticated(req);
    // Only now that the user is known is the client invited to send a body it announced.
    if (/^100-continue$/i.test(req.headers.expect ?? '')) res.writeContinue();
    const storage = new PrivsepStorage(options.channels, session);
    await options.dav()(req, res, { storage, principal: session.user });
  };

  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.log.error('request failed', { method: req.method, error: (error as Error).message });
      if (!res.headersSent) refuse(req, res, 500, 'Internal error');
      else res.destroy();
    });
  };
}
