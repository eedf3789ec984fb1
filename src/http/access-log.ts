// The access log and the request metrics: one record per request once it is answered (or the
// client went away), with who asked for what and how it went. It is also the audit trail: every
// change names the user, the path and, for MOVE and COPY, the destination.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isoTime, type Logger } from '../../common/log';
import type { SiteMetrics } from './metrics';

export interface RequestObserver {
  log: Logger;
  /** log.access (read per request: it can change on reload). */
  accessLog: () => boolean;
  metrics: SiteMetrics;
}

/** The authenticated user of a request, set by the pipeline once the login succeeded. */
const users = new WeakMap<IncomingMessage, string>();
/** Byte counters of a connection when its previous request ended (keep-alive connections carry many). */
const counted = new WeakMap<Socket, { read: number; written: number }>();

/** Request ids: unique per web process (a random prefix per start), short, sortable within one. */
const ID_PREFIX = randomBytes(4).toString('hex');
let nextId = 0;

export function noteUser(req: IncomingMessage, user: string): void {
  users.set(req, user);
}

/** Starts the record of a request; it is written when the response closes. */
export function observeRequest(req: IncomingMessage, res: ServerResponse, observer: RequestObserver): void {
  const started = performance.now();
  const requestId = `${ID_PREFIX}-${(nextId++).toString(36)}`;
  res.setHeader('X-Request-Id', requestId);
  res.once('close', () => {
    const socket = req.socket;
    const before = counted.get(socket) ?? { read: 0, written: 0 };
    const now = { read: socket.bytesRead, written: socket.bytesWritten };
    counted.set(socket, now);
    const bytesIn = Math.max(0, now.read - before.read);
    const bytesOut = Math.max(0, now.written - before.written);
    const durationMs = performance.now() - started;
    observer.metrics.observeRequest(req.method, res.statusCode, durationMs / 1000, bytesIn, bytesOut);
    if (!observer.accessLog()) return;
    const at = Date.now();
    observer.log.access(
      {
        time: isoTime(at),
        request_id: requestId,
        remote: socket.remoteAddress ?? '',
        user: users.get(req) ?? '',
        method: req.method,
        path: req.url,
        destination: req.headers.destination ?? '',
        status: res.statusCode,
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        duration_ms: Math.round(durationMs * 10) / 10,
        user_agent: req.headers['user-agent'] ?? '',
        // The response was cut short (the client left, or the connection was closed under it).
        aborted: res.writableFinished ? undefined : true,
      },
      at,
    );
  });
}
