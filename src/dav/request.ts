// The state one WebDAV request carries through its method handler, and the few ways a handler
// writes a complete response. Every method file receives a DavRequest and nothing else.
import type * as http from 'node:http';
import { escapedBytesAsPrivateUse } from '../../common/name-bytes';
import type { DavPath, Stat, Storage } from '../../common/storage';
import type { HideList } from './hide';
import type { IfHeader } from './if-header';
import type { LockBounds, LockStore } from './lock-store';
import type { RequestTarget, ServerNames } from './paths';
import { withHeader } from '../http/headers';
import { XML_DECLARATION } from './xml';

export type LogFunction = (
  level: 'debug' | 'info' | 'warn' | 'error',
  message: string,
  fields?: Record<string, unknown>,
) => void;

export interface DavLimits {
  maxXmlBytes: number;
  maxInfinityEntries: number;
  maxPropfindProperties: number;
  maxLockTimeoutS: number;
  /** Bytes of a lock's DAV:owner element as stored; a larger one is refused. */
  maxLockOwnerBytes: number;
  lockBounds: LockBounds;
  /** 0 = unlimited. */
  maxUploadBytes: number;
}

export interface DavRequest {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly storage: Storage;
  readonly principal: string;
  readonly lockStore: LockStore;
  readonly limits: DavLimits;
  /** server.public_url's origin: Destination and If: URLs on it name this server too. */
  readonly publicOrigin: string | null;
  /** shares.hide: names left out of listings and refused on create. */
  readonly hide: HideList;
  /** server.content_origin, or null. */
  readonly contentOrigin: string | null;
  readonly log: LogFunction;
  readonly target: RequestTarget;
  /** The parsed If: header, or null when the client sent none. */
  readonly ifHeader: IfHeader | null;
  /** One clock reading per request, so lock expiry is judged consistently. */
  readonly nowMs: number;
  /** Storage.realPath answers, memoised for the request (each is a channel round trip). */
  readonly realPaths: Map<DavPath, string>;
  /** Stat answers, memoised likewise (null: does not exist). */
  readonly stats: Map<DavPath, Stat | null>;
}

export type MethodHandler = (request: DavRequest) => Promise<void>;

/**
 * The resource's real path as the lock store's key. Bytes that are not UTF-8 are kept as private-use
 * characters (common/name-bytes.ts): the databases store text and would turn them all into U+FFFD.
 */
export async function realPathOf(request: DavRequest, path: DavPath): Promise<string> {
  let real = request.realPaths.get(path);
  if (real === undefined) {
    real = escapedBytesAsPrivateUse(await request.storage.realPath(path));
    request.realPaths.set(path, real);
  }
  return real;
}

export async function statOf(request: DavRequest, path: DavPath): Promise<Stat | null> {
  let stat = request.stats.get(path);
  if (stat === undefined) {
    stat = await request.storage.stat(path);
    request.stats.set(path, stat);
  }
  return stat;
}

export function serverNames(request: DavRequest): ServerNames {
  return { host: request.req.headers.host, publicOrigin: request.publicOrigin };
}

/** Forgets what the request learnt about a path after the method changed it. */
export function forgetPath(request: DavRequest, path: DavPath): void {
  request.stats.delete(path);
  request.realPaths.delete(path);
}

export function sendEmpty(
  res: http.ServerResponse,
  status: number,
  headers?: http.OutgoingHttpHeaders,
): void {
  res.writeHead(
    status,
    headers === undefined ? EMPTY_BODY_HEADERS : withHeader(headers, 'Content-Length', '0'),
  );
  res.end();
}

const EMPTY_BODY_HEADERS: http.OutgoingHttpHeaders = { 'Content-Length': '0' };

export function sendText(res: http.ServerResponse, status: number, text: string): void {
  const body = text + '\n';
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Sends a complete XML document; `body` is everything after the XML declaration. */
export function sendXml(
  res: http.ServerResponse,
  status: number,
  body: string,
  headers?: http.OutgoingHttpHeaders,
): void {
  const document = XML_DECLARATION + body;
  const all = withHeader(headers ?? {}, 'Content-Type', 'application/xml; charset=utf-8');
  all['Content-Length'] = Buffer.byteLength(document);
  res.writeHead(status, all);
  res.end(document);
}

/** A request header as one string (repeated headers joined as RFC 9110 §5.3 allows). */
export function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}
