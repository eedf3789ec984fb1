// gzip for the responses privdav writes itself (multistatus, HTML listings), when the client says
// it takes it. File bodies are never compressed: they go out as stored (sendfile, ranges, ETags).
import type * as http from 'node:http';
import { pipeline, type Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { withHeader } from './headers';

/**
 * True when Accept-Encoding allows gzip (RFC 9110 §12.5.3): "gzip" or "x-gzip" with a q-value
 * above 0, or "*" above 0 with gzip not refused by name. Bounded: the header is already capped.
 */
export function acceptsGzip(req: http.IncomingMessage): boolean {
  const header = req.headers['accept-encoding'];
  if (header === undefined || header === '') return false;
  let named: boolean | null = null;
  let wildcard = false;
  for (const item of header.split(',')) {
    const [coding = '', ...parameters] = item.split(';');
    const name = coding.trim().toLowerCase();
    let q = 1;
    for (const parameter of parameters) {
      const match = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(parameter);
      if (match !== null) q = Number(match[1]);
    }
    if (name === 'gzip' || name === 'x-gzip') named = q > 0;
    else if (name === '*') wildcard = q > 0;
  }
  return named ?? wildcard;
}

/**
 * The ETag of the gzip representation of a body whose identity ETag is `etag`: another
 * representation, so another strong validator (RFC 9110 §8.8.3), as Apache marks it.
 */
export function gzipEtag(etag: string): string {
  return etag.endsWith('"') ? etag.slice(0, -1) + '-gzip"' : etag;
}

/** The ETag a generated body with identity ETag `etag` goes out with, for this request. */
export function generatedEtag(req: http.IncomingMessage, etag: string): string {
  return acceptsGzip(req) ? gzipEtag(etag) : etag;
}

/**
 * Starts a response whose body privdav generates and returns where to write it: `res` itself, or
 * a gzip stream in front of it. Text arrives in 64 KiB pieces at most, so the default zlib
 * buffering already streams; the level favours speed (a 1,000-entry multistatus compresses ~10×).
 * A client that goes away destroys the gzip stream too (pipeline), so a writer waiting for
 * 'drain' sees 'close'.
 */
export function startGeneratedBody(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  status: number,
  headers: http.OutgoingHttpHeaders,
): Writable {
  if (!acceptsGzip(req)) {
    res.writeHead(status, withHeader(headers, 'Vary', 'Accept-Encoding'));
    return res;
  }
  const { 'Content-Length': _length, ...rest } = headers;
  if (typeof rest.ETag === 'string') rest.ETag = gzipEtag(rest.ETag);
  res.writeHead(status, { ...rest, 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' });
  const gzip = zlib.createGzip({ level: GZIP_LEVEL });
  pipeline(gzip, res, ignoreError);
  return gzip;
}

const GZIP_LEVEL = 4;

function ignoreError(): void {
  // A client that left early: the response is gone; the request handler sees the closed stream.
}
