// GET and HEAD: file bodies streamed from the descriptor storage opened (single ranges with
// positional reads), validators and conditional requests, and an HTML listing for collections.
import * as fs from 'node:fs';
import { pipeline } from 'node:stream';
import type { OpenedFile, Stat } from '../../../common/storage';
import { StorageError } from '../../../common/storage';
import { checkPreconditions, ifRangeHolds, NotModified, parseRange } from '../conditional';
import { checkIfHeader } from '../locks';
import { isReservedPath } from '../hide';
import { baseName, encodeHref, parentPath, readablePath } from '../paths';
import { contentTypeFor } from '../../../common/content-types';
import { httpDate } from '../props';
import { sendEmpty, type DavRequest } from '../request';
import { addUserContentHeaders, isContentOrigin } from '../user-content';
import { StreamedResponse } from '../streamed-response';
import { escapeXml } from '../xml';
import { generatedEtag } from '../../http/compression';
import { sendFileBody, sendFileSocket } from '../../http/send-file';
import { closeLater, readCached } from '../../../native';

/** Bodies up to this size are read in one positional read and sent with one write. */
const SMALL_BODY = 64 * 1024;
const STREAM_CHUNK = 1024 * 1024;

export async function handleGet(request: DavRequest): Promise<void> {
  await checkIfHeader(request);
  let opened: OpenedFile;
  try {
    opened = await request.storage.openRead(request.target.path);
  } catch (error) {
    if (error instanceof StorageError && error.code === 'EISDIR') {
      const stat = await request.storage.stat(request.target.path);
      if (stat !== null) return sendCollection(request, stat);
    }
    throw error;
  }
  // The descriptor is this function's to close, exactly once, whatever throws — unless sendFile
  // hands it to a read stream, which then closes it itself.
  if (opened.stat.kind === 'directory') {
    closeLater(opened.fd);
    return sendCollection(request, opened.stat);
  }
  let handedOver = false;
  try {
    await sendFile(request, opened, () => (handedOver = true));
  } finally {
    if (!handedOver) closeLater(opened.fd);
  }
}

function validatorHeaders(stat: Stat): Record<string, string> {
  return { ETag: stat.etag, 'Last-Modified': httpDate(stat.mtimeMs) };
}

/** Sends the file's body; never closes `opened.fd` (handleGet does), except through a read stream it announces with `handOver`. */
async function sendFile(request: DavRequest, opened: OpenedFile, handOver: () => void): Promise<void> {
  const { req, res } = request;
  const { fd, stat } = opened;
  const isHead = req.method === 'HEAD';
  try {
    checkPreconditions(req, stat, true);
  } catch (error) {
    if (!(error instanceof NotModified)) throw error;
    res.writeHead(304, validatorHeaders(stat));
    res.end();
    return;
  }

  const size = stat.size;
  let start = 0;
  let end = size - 1;
  let status = 200;
  const contentType = contentTypeFor(request.target.path);
  // One literal, then additions: a spread followed by more properties costs V8 11 ~1 µs each.
  const headers: Record<string, string | number> = {
    ETag: stat.etag,
    'Last-Modified': httpDate(stat.mtimeMs),
    'Content-Type': contentType,
    'Accept-Ranges': 'bytes',
  };
  addUserContentHeaders(
    headers,
    request.target.path,
    contentType,
    isContentOrigin(req, request.contentOrigin),
  );
  if (req.headers.range !== undefined && ifRangeHolds(req, stat)) {
    const range = parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      sendEmpty(res, 416, { 'Content-Range': `bytes */${size}`, ETag: stat.etag });
      return;
    }
    if (range !== null) {
      start = range.start;
      end = range.end;
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
  }
  const length = end - start + 1;
  headers['Content-Length'] = length;

  if (isHead || length === 0) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  if (length <= SMALL_BODY) {
    const body = readFromCache(fd, start, length) ?? (await readExactly(fd, start, length));
    if (body.length < length) {
      // The file shrank since its stat: the headers must describe the bytes sent, or the client
      // waits for bytes that never come and reads the next answer as the rest of this one.
      headers['Content-Length'] = body.length;
      if (status === 206 && body.length > 0)
        headers['Content-Range'] = `bytes ${start}-${start + body.length - 1}/${size}`;
    }
    res.writeHead(status, headers);
    res.end(body);
    return;
  }
  res.writeHead(status, headers);
  const socket = sendFileSocket(res);
  if (socket !== null) {
    await sendFileBody(res, socket, fd, start, length);
    return;
  }
  handOver();
  const stream = fs.createReadStream('', { fd, start, end, highWaterMark: STREAM_CHUNK, autoClose: true });
  // pipeline destroys the read stream (closing the fd) when the client goes away mid-body.
  await new Promise<void>((resolve) => {
    pipeline(stream, res, (error) => {
      if (error && !res.destroyed) res.destroy();
      resolve();
    });
  });
}

/** The body when the page cache holds all of it (no threadpool trip), else null. */
function readFromCache(fd: number, position: number, length: number): Buffer | null {
  const buffer = Buffer.allocUnsafe(length);
  // Partly cached, shorter than expected, or an error: readExactly takes the careful path.
  return readCached(fd, buffer, position) === length ? buffer : null;
}

function readExactly(fd: number, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  return new Promise<Buffer>((resolve, reject) => {
    let filled = 0;
    const step = (error: NodeJS.ErrnoException | null, bytesRead: number): void => {
      if (error) return reject(StorageError.from(error));
      filled += bytesRead;
      // The file shrank under us: send what is there rather than stale bytes.
      if (bytesRead === 0 || filled === length)
        return resolve(filled === length ? buffer : buffer.subarray(0, filled));
      fs.read(fd, buffer, filled, length - filled, position + filled, step);
    };
    fs.read(fd, buffer, 0, length, position, step);
  });
}

async function sendCollection(request: DavRequest, stat: Stat): Promise<void> {
  const { req, res } = request;
  try {
    // Judged on the ETag this client gets: the gzip listing's is its own (compression.ts).
    checkPreconditions(req, { ...stat, etag: generatedEtag(req, stat.etag) }, true);
  } catch (error) {
    if (!(error instanceof NotModified)) throw error;
    res.writeHead(304, {
      ...validatorHeaders(stat),
      ETag: generatedEtag(req, stat.etag),
      Vary: 'Accept-Encoding',
    });
    res.end();
    return;
  }
  const path = request.target.path;
  const title = escapeXml(readablePath(path === '/' ? '/' : path + '/'));
  const listing = new StreamedResponse(
    res,
    200,
    {
      ...validatorHeaders(stat),
      'Content-Type': 'text/html; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
      // The listing is ours, but the names in it are users': keep it from running anything.
      'Content-Security-Policy': "default-src 'none'",
    },
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of ' +
      title +
      '</title></head>\n<body><h1>Index of ' +
      title +
      '</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Last modified</th></tr>\n' +
      (path === '/'
        ? ''
        : `<tr><td><a href="${escapeXml(encodeHref(parentPath(path), true))}">../</a></td><td></td><td></td></tr>\n`),
    '</table></body></html>\n',
  );
  if (req.method === 'HEAD') return listing.end();
  // Streamed in the order the directory gives, with the multistatus's flow control: sorting would
  // hold every member of a huge directory in the shared web process for each slow reader.
  for await (const entry of request.storage.list(path, 1, {
    props: 'none',
    limit: Number.MAX_SAFE_INTEGER,
  })) {
    if (entry.path === path || isReservedPath(entry.path) || request.hide.hidesPath(entry.path)) continue;
    const isCollection = entry.stat.kind === 'directory';
    const name = readablePath(baseName(entry.path)) + (isCollection ? '/' : '');
    const size = isCollection ? '' : String(entry.stat.size);
    const backpressure = listing.add(
      `<tr><td><a href="${escapeXml(encodeHref(entry.path, isCollection))}">${escapeXml(name)}</a></td>` +
        `<td>${size}</td><td>${httpDate(entry.stat.mtimeMs)}</td></tr>\n`,
    );
    if (backpressure !== undefined) await backpressure;
  }
  await listing.end();
}
