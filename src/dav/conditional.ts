// HTTP conditional requests (RFC 9110 §13): If-Match, If-Unmodified-Since, If-None-Match,
// If-Modified-Since and If-Range, evaluated in the order §13.2.2 prescribes.
import type * as http from 'node:http';
import type { Stat } from '../../common/storage';
import { DavError } from './errors';
import { lastModifiedSeconds } from './props';
import { headerValue } from './request';

const ENTITY_TAG = /(?:W\/)?"[^"]*"/g;

function entityTags(header: string): string[] {
  return header.match(ENTITY_TAG) ?? [];
}

function strongMatch(a: string, b: string): boolean {
  return !a.startsWith('W/') && !b.startsWith('W/') && a === b;
}

function weakMatch(a: string, b: string): boolean {
  return (a.startsWith('W/') ? a.slice(2) : a) === (b.startsWith('W/') ? b.slice(2) : b);
}

function parseHttpDateSeconds(value: string | undefined): number | null {
  if (value === undefined) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

/**
 * Throws 412 (or 304 for a GET/HEAD whose cached copy is current) when the request's
 * preconditions fail for the resource in its present state (`stat` null: it does not exist).
 */
export function checkPreconditions(req: http.IncomingMessage, stat: Stat | null, safeMethod: boolean): void {
  const headers = req.headers;
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    const holds =
      stat !== null &&
      (ifMatch.trim() === '*' || entityTags(ifMatch).some((tag) => strongMatch(tag, stat.etag)));
    if (!holds) throw new DavError(412, 'If-Match failed');
  } else if (stat !== null) {
    const since = parseHttpDateSeconds(headers['if-unmodified-since']);
    if (since !== null && lastModifiedSeconds(stat) > since)
      throw new DavError(412, 'modified since If-Unmodified-Since');
  }

  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const matches =
      stat !== null &&
      (ifNoneMatch.trim() === '*' || entityTags(ifNoneMatch).some((tag) => weakMatch(tag, stat.etag)));
    if (matches) throw safeMethod ? new NotModified(stat) : new DavError(412, 'If-None-Match matched');
  } else if (safeMethod && stat !== null) {
    const since = parseHttpDateSeconds(headers['if-modified-since']);
    if (since !== null && lastModifiedSeconds(stat) <= since) throw new NotModified(stat);
  }
}

/** Thrown for 304: the GET handler answers it with the validators and no body. */
export class NotModified extends Error {
  readonly stat: Stat;
  constructor(stat: Stat) {
    super('not modified');
    this.stat = stat;
  }
}

/** Whether a Range header may be honoured: no If-Range, or one that matches the current state. */
export function ifRangeHolds(req: http.IncomingMessage, stat: Stat): boolean {
  const ifRange = headerValue(req, 'if-range');
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return strongMatch(value, stat.etag);
  const date = parseHttpDateSeconds(value);
  return date !== null && date === lastModifiedSeconds(stat);
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * Parses `Range: bytes=…` for a resource of `size` bytes. null: ignore the header (absent,
 * malformed, or several ranges — answered with the full body, which RFC 9110 permits);
 * 'unsatisfiable': 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (match === null) return null;
  const [, first, last] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return null; // invalid range-spec: ignore the header (RFC 9110 §14.1.1)
  return { start, end };
}
