// The WebDAV protocol core's entry point: decodes the request target, parses If:, dispatches to
// one method handler, and turns anything thrown into one complete error response. Never throws.
import type * as http from 'node:http';
import type { Storage } from '../../common/storage';
import { ClientGoneError, conditionXml, DavError, isServerFault, toDavError } from './errors';
import { HideList, isReservedPath } from './hide';
import { parseIfHeader, type IfHeader } from './if-header';
import type { LockBounds, LockStore } from './lock-store';
import { handleCopy } from './methods/copy';
import { handleDelete } from './methods/delete';
import { handleGet } from './methods/get';
import { handleLock } from './methods/lock';
import { handleMkcol } from './methods/mkcol';
import { handleMove } from './methods/move';
import { handleOptions } from './methods/options';
import { handlePatch } from './methods/patch';
import { handlePropfind } from './methods/propfind';
import { handleProppatch } from './methods/proppatch';
import { handlePut } from './methods/put';
import { handleUnlock } from './methods/unlock';
import { parseRequestPath, type RequestTarget } from './paths';
import {
  headerValue,
  sendText,
  sendXml,
  type DavLimits,
  type DavRequest,
  type LogFunction,
  type MethodHandler,
} from './request';

export interface DavRequestContext {
  /** Bound to the authenticated user (their namespace of DavPaths). */
  storage: Storage;
  /** The authenticated user name: lock tokens are usable only by the principal who created them. */
  principal: string;
}

export interface DavOptions {
  lockStore: LockStore;
  /** Bound for XML request bodies (413 past it). */
  maxXmlBytes: number;
  /** Bound for Depth: infinity (PROPFIND over it: 403 with DAV:propfind-finite-depth). */
  maxInfinityEntries: number;
  /** Properties one PROPFIND may name (403 past it). */
  maxPropfindProperties: number;
  maxLockTimeoutS: number;
  maxLockOwnerBytes: number;
  lockBounds: LockBounds;
  /** 0 = unlimited (413 past it). */
  maxUploadBytes: number;
  /** server.public_url as an origin ("https://dav.example.org"); absent: only the request's own. */
  publicUrl?: string | null;
  /** shares.hide glob patterns. */
  hide?: readonly string[];
  /** server.content_origin: where active user content may display inline; null: nowhere. */
  contentOrigin: string | null;
  log?: LogFunction;
}

export type DavHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  context: DavRequestContext,
) => Promise<void>;

const METHODS: Record<string, MethodHandler> = {
  OPTIONS: handleOptions,
  GET: handleGet,
  HEAD: handleGet,
  PUT: handlePut,
  PATCH: handlePatch,
  DELETE: handleDelete,
  MKCOL: handleMkcol,
  COPY: handleCopy,
  MOVE: handleMove,
  PROPFIND: handlePropfind,
  PROPPATCH: handleProppatch,
  LOCK: handleLock,
  UNLOCK: handleUnlock,
};

const ALLOWED_METHODS = Object.keys(METHODS).join(', ');

/** Methods that can bring the request's own URL into existence: refused (403) on a hidden name. */
const CREATING_METHODS = new Set(['PUT', 'PATCH', 'MKCOL', 'LOCK']);

export function createDavHandler(options: DavOptions): DavHandler {
  const limits: DavLimits = {
    maxXmlBytes: options.maxXmlBytes,
    maxInfinityEntries: options.maxInfinityEntries,
    maxPropfindProperties: options.maxPropfindProperties,
    maxLockTimeoutS: options.maxLockTimeoutS,
    maxLockOwnerBytes: options.maxLockOwnerBytes,
    lockBounds: options.lockBounds,
    maxUploadBytes: options.maxUploadBytes,
  };
  const lockStore = options.lockStore;
  const log: LogFunction = options.log ?? ignoreLog;
  const publicOrigin = options.publicUrl ?? null;
  const hide = new HideList(options.hide ?? []);

  return async function handleDavRequest(req, res, context): Promise<void> {
    try {
      const method = METHODS[req.method ?? ''];
      if (method === undefined) throw new DavError(405, 'method not supported');
      const target = requestTarget(req);
      if (isReservedPath(target.path) || hide.hidesPath(target.path)) {
        // RFC 9110 403 maps to EPERM in WebDAVFS ("so that Finder exhibits the correct behavior").
        if (CREATING_METHODS.has(req.method!))
          throw new DavError(403, 'this name is reserved on this server');
        if (req.method !== 'OPTIONS') throw new DavError(404, 'not found');
      }
      const request: DavRequest = {
        req,
        res,
        storage: context.storage,
        principal: context.principal,
        lockStore,
        limits,
        publicOrigin,
        hide,
        target,
        contentOrigin: options.contentOrigin,
        log,
        ifHeader: ifHeaderOf(req),
        nowMs: Date.now(),
        realPaths: new Map(),
        stats: new Map(),
      };
      await method(request);
    } catch (error) {
      sendError(req, res, error, log);
    }
  };
}

function ignoreLog(): void {}

function ifHeaderOf(req: http.IncomingMessage): IfHeader | null {
  const value = headerValue(req, 'if');
  return value === undefined ? null : parseIfHeader(value);
}

function requestTarget(req: http.IncomingMessage): RequestTarget {
  const url = req.url ?? '/';
  // "OPTIONS *" asks about the server as a whole.
  if (url === '*' && req.method === 'OPTIONS') return { path: '/', trailingSlash: false };
  return parseRequestPath(url);
}

function sendError(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  thrown: unknown,
  log: LogFunction,
): void {
  if (thrown instanceof ClientGoneError) {
    log('debug', thrown.message, { method: req.method, url: req.url });
    res.destroy();
    return;
  }
  const error = toDavError(thrown);
  const fields = { method: req.method, url: req.url, status: error.status };
  if (isServerFault(thrown)) {
    log('error', `request failed: ${thrown instanceof Error ? thrown.message : String(thrown)}`, fields);
  } else {
    log('debug', `request refused: ${error.message}`, fields);
  }
  if (res.headersSent) {
    // Part of a response is out (a streamed multistatus or body): cutting the connection is the
    // only honest signal left.
    res.destroy();
    return;
  }
  try {
    // An unread body (possibly enormous) must not be drained to keep the connection alive.
    if (!req.complete) {
      res.setHeader('Connection', 'close');
      lingerInsteadOfReset(req.socket);
    }
    if (error.status === 405) res.setHeader('Allow', ALLOWED_METHODS);
    if (error.retryAfterS !== undefined) res.setHeader('Retry-After', String(error.retryAfterS));
    if (error.condition !== undefined) {
      sendXml(res, error.status, conditionXml(error.condition));
    } else {
      sendText(res, error.status, error.message);
    }
  } catch (secondary) {
    log('error', `could not send the error response: ${String(secondary)}`, fields);
    res.destroy();
  }
}

/** How long a connection whose body was left unread stays half-open after the answer. */
const CLOSE_LINGER_MS = 2000;

/**
 * Closing a socket while the client's body is still arriving makes the kernel answer it with a
 * reset, which can discard the response before the client reads it. Instead (when Node closes the
 * connection after the answer) the write side is closed and reading paused — the client's sends
 * stall on a full window, nothing more of the body is read — and the socket goes a moment later.
 */
function lingerInsteadOfReset(socket: http.IncomingMessage['socket']): void {
  const closing = socket as typeof socket & { destroySoon?: () => void };
  closing.destroySoon = () => {
    socket.pause();
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();
  };
}
