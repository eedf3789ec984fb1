// The structured logger of every privdav process: one line per event on stderr, logfmt
// (`level role[pid]: message key=value ...`) or one JSON object per line, plus the access log.
// Values never contain control characters, so a hostile name cannot forge log lines; lines go
// out through a bounded queue, so a slow journal costs dropped lines (counted), never a stall.

import { fstatSync, write, writeSync } from 'node:fs';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'logfmt' | 'json';
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Children learn the format from their environment, so their first line already has it. */
export const LOG_FORMAT_ENV = 'PRIVDAV_LOG_FORMAT';
/** Bytes of lines waiting for stderr; past it new lines are dropped and counted. */
export const MAX_QUEUED_BYTES = 1024 * 1024;
const MAX_VALUE_CHARS = 1000;

let format: LogFormat = process.env[LOG_FORMAT_ENV] === 'json' ? 'json' : 'logfmt';
/** journald stamps each line itself; anywhere else a line carries its own time. */
const timestamps = !stderrIsJournal();

export function setLogFormat(next: LogFormat): void {
  format = next;
}

export function logFormat(): LogFormat {
  return format;
}

export class Logger {
  #level: LogLevel;
  readonly #role: string;
  readonly #prefix: string;

  constructor(role: string, level: LogLevel = 'info') {
    this.#role = role;
    this.#prefix = `${role}[${process.pid}]`;
    this.#level = level;
  }

  setLevel(level: LogLevel): void {
    this.#level = level;
  }

  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (RANK[level] > RANK[this.#level]) return;
    this.#emit(level, message, fields, Date.now());
  }

  /**
   * One access-log line: written whatever the level (it has its own switch, `log.access`). `at`
   * is milliseconds since the epoch; isoTime(at) gives the same text the line is stamped with.
   */
  access(fields: Record<string, unknown>, at: number): void {
    this.#emit('info', 'access', fields, at);
  }

  #emit(level: LogLevel, message: string, fields: Record<string, unknown> | undefined, at: number): void {
    stderrQueue.push(
      format === 'json'
        ? jsonLine(at, level, this.#role, message, fields)
        : logfmtLine(at, level, this.#prefix, message, fields),
    );
  }

  error(message: string, fields?: Record<string, unknown>): void {
    this.log('error', message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.log('warn', message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.log('info', message, fields);
  }
  debug(message: string, fields?: Record<string, unknown>): void {
    this.log('debug', message, fields);
  }
}

/** The second isoTime last formatted, and its text up to the seconds ("2026-12-01T10:57:56"). */
let isoSecond = Number.NaN;
let isoSecondText = '';

/**
 * `new Date(ms).toISOString()`, formatting the date part once per second: every request's access
 * line needs it, and toISOString costs more than the rest of the line's timestamp work.
 */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    const text = new Date(second * 1000).toISOString();
    // Years beyond 9999 have a longer form: leave those to Date every time.
    if (text.length !== 24) return new Date(ms).toISOString();
    isoSecond = second;
    isoSecondText = text.slice(0, 19);
  }
  const millis = ms - second * 1000;
  return `${isoSecondText}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

function logfmtLine(
  at: number,
  level: LogLevel,
  prefix: string,
  message: string,
  fields: Record<string, unknown> | undefined,
): string {
  let line = `${timestamps ? `${isoTime(at)} ` : ''}${level} ${prefix}: ${clean(message)}`;
  if (fields !== undefined) {
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      const text = typeof value === 'number' ? String(value) : clean(String(value));
      line += ` ${key}=${text === '' || NEEDS_QUOTES.test(text) ? JSON.stringify(text) : text}`;
    }
  }
  return `${line}\n`;
}

const NEEDS_QUOTES = /[\s"=]/;
/** Control characters (as "?") and lone surrogates (a name's byte that is not UTF-8; as U+FFFD). */
const MAYBE_UNPRINTABLE = /[\x00-\x1f\x7f\uD800-\uDFFF]/;
const UNPRINTABLES =
  /[\x00-\x1f\x7f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The same keys as logfmt: `time`, `level`, `role`, `pid`, `msg`, then the fields. */
function jsonLine(
  at: number,
  level: LogLevel,
  role: string,
  message: string,
  fields: Record<string, unknown> | undefined,
): string {
  const record: Record<string, unknown> = {
    time: isoTime(at),
    level,
    role,
    pid: process.pid,
    msg: clean(message),
  };
  if (fields !== undefined) {
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined || Object.hasOwn(record, key)) continue;
      record[key] =
        typeof value === 'number' || typeof value === 'boolean' || value === null
          ? value
          : clean(String(value));
    }
  }
  return `${JSON.stringify(record)}\n`;
}

function clean(text: string): string {
  const bounded = text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS) : text;
  return MAYBE_UNPRINTABLE.test(bounded) ? bounded.replace(UNPRINTABLES, printable) : bounded;
}

function printable(char: string): string {
  return char < ' ' || char === '\x7f' ? '?' : '\uFFFD';
}

/** JOURNAL_STREAM names the journal's socket as "device:inode"; it is ours only if fd 2 is that socket. */
function stderrIsJournal(): boolean {
  const stream = process.env.JOURNAL_STREAM;
  if (stream === undefined || stream === '') return false;
  try {
    const { dev, ino } = fstatSync(2);
    return stream === `${dev}:${ino}`;
  } catch {
    return false;
  }
}

/**
 * Lines for fd 2, written one batch at a time with an asynchronous write (a pipe to a stalled
 * journal blocks the writing thread, not the event loop). Bounded: while MAX_QUEUED_BYTES wait,
 * further lines are dropped, and a line saying how many follows once stderr catches up.
 */
class StderrQueue {
  #lines: string[] = [];
  #bytes = 0;
  /** The batch being written and how much of it is out; null when idle. */
  #inFlight: { batch: Buffer; offset: number } | null = null;
  #dropped = 0;
  #scheduled = false;

  push(line: string): void {
    if (this.#bytes + line.length > MAX_QUEUED_BYTES) {
      this.#dropped++;
      return;
    }
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#inFlight === null && !this.#scheduled) {
      // Written once this turn of the event loop is over: the lines of every request answered in
      // it go out in one write (one threadpool trip) instead of one each.
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        if (this.#inFlight === null) this.#writeNext();
      });
    }
  }

  get dropped(): number {
    return this.#dropped;
  }

  #take(): Buffer {
    const batch = Buffer.from(this.#lines.join(''));
    this.#lines = [];
    this.#bytes = 0;
    return batch;
  }

  #writeNext(): void {
    if (this.#lines.length === 0) {
      this.#inFlight = null;
      if (this.#dropped > 0) this.#reportDropped();
      return;
    }
    const batch = this.#take();
    this.#inFlight = { batch, offset: 0 };
    this.#writeFrom(this.#inFlight);
  }

  #writeFrom(inFlight: { batch: Buffer; offset: number }): void {
    const { batch, offset } = inFlight;
    write(2, batch, offset, batch.length - offset, null, (error, bytes) => {
      if (error !== null && (error as NodeJS.ErrnoException).code === 'EAGAIN') {
        // Someone made stderr non-blocking: try again shortly.
        setTimeout(() => this.#writeFrom(inFlight), 10).unref();
        return;
      }
      // Any other error: stderr is gone and there is nowhere to say so; the queue moves on.
      inFlight.offset = error !== null ? batch.length : offset + bytes;
      if (inFlight.offset < batch.length) this.#writeFrom(inFlight);
      else this.#writeNext();
    });
  }

  #reportDropped(): void {
    const count = this.#dropped;
    this.#dropped = 0;
    const text = `log lines dropped: stderr did not keep up`;
    this.push(
      format === 'json'
        ? jsonLine(Date.now(), 'warn', 'log', text, { count })
        : logfmtLine(Date.now(), 'warn', `log[${process.pid}]`, text, { count }),
    );
  }

  /**
   * At exit whatever is queued goes out synchronously: a fatal line must not be lost. A batch whose
   * write was still pending is written again from where it stood (a line may appear twice, rather
   * than never).
   */
  flushSync(): void {
    const pending = this.#inFlight === null ? [] : [this.#inFlight.batch.subarray(this.#inFlight.offset)];
    this.#inFlight = null;
    try {
      for (const batch of [...pending, this.#take()]) writeSync(2, batch);
    } catch {
      // Nowhere left to say it.
    }
  }
}

const stderrQueue = new StderrQueue();
process.on('exit', () => stderrQueue.flushSync());

/** Lines dropped since the last report (for tests). */
export function droppedLogLines(): number {
  return stderrQueue.dropped;
}
