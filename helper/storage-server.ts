// Serves one Storage over one channel from a web process: the worker's request table. The web
// process is not trusted here — every call is decoded with bounds, its cookie verified (tag, uid,
// expiry) before anything else, its arguments checked against the table, and only then handed to
// LocalStorage (which re-validates every path). A bad message gets an error reply and is logged;
// the channel keeps serving.

import { Channel } from '../common/channel';
import { closeAll } from '../common/rpc';
import { verifyCookie } from './cookie';
import {
  LIST_BATCH_BYTES,
  LIST_BATCH_ENTRIES,
  MAX_MESSAGE_BYTES,
  decodeTailedMessage,
  encodeMessage,
  isRequestId,
  wireRunOf,
  type StorageReply,
  type WireRun,
} from '../common/protocol';
import {
  MEMBER_ERROR_BATCH_BYTES,
  STORAGE_PROTOCOL,
  isStorageOp,
  type ArgsOf,
  type OperationSpec,
  type PartOf,
  type ResultOf,
  type StorageOp,
} from '../common/storage-protocol';
import { Depth, Entry, ListOptions, MemberError, Storage, StorageError, Upload } from '../common/storage';

const MAX_UPLOADS_PER_CHANNEL = 256;

/** A Storage that can list in wire form itself (LocalStorage.listWire), skipping the Entry objects. */
interface WireListing {
  listWire?(
    path: string,
    depth: Depth,
    options: ListOptions,
    bounds: { entries: number; bytes: number },
  ): AsyncIterable<WireRun>;
}

export interface StorageServerOptions {
  storage: Storage & WireListing;
  userKey: Buffer;
  uid: number;
  maxInfinityEntries: number;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Called on every request (idle accounting). */
  onActivity: () => void;
  /** Duplicates a descriptor: the channel closes what it sends, the worker keeps its own. */
  dup: (fd: number) => number;
}

interface Context {
  uploads: Map<number, Upload>;
  /** Duplicates a descriptor the worker keeps (an upload's) so the channel can close what it sends. */
  dup: (fd: number) => number;
}

/**
 * What a handler answers: the last reply's result, the descriptors it carries (the channel's once
 * sent), and for tree operations the member failures, sent ahead in batches (`parts`).
 */
interface Outcome<O extends StorageOp> {
  result: ResultOf<O>;
  fds?: number[];
  parts?: PartOf<O>[];
}
/** `tail`: the request's file content, present exactly for operations declaring `requestTail`. */
type Handler<O extends StorageOp> = (
  storage: Storage,
  args: ArgsOf<O>,
  context: Context,
  tail: Buffer | null,
) => Promise<Outcome<O>>;
/** Every operation but `list`, which streams its entries itself (streamList). */
type TableOp = Exclude<StorageOp, 'list'>;

let nextUploadId = 1;

/** The worker's request table: one handler per operation STORAGE_PROTOCOL declares. */
const HANDLERS: { [O in TableOp]: Handler<O> } = {
  stat: async (s, [path]) => ({ result: await s.stat(path) }),
  realPath: async (s, [path]) => ({ result: await s.realPath(path) }),
  openRead: async (s, [path]) => {
    const opened = await s.openRead(path);
    return { result: { stat: opened.stat }, fds: [opened.fd] };
  },
  putSmall: async (s, [path, size, options], _context, tail) => {
    // The declared size and the bytes that came must agree: the web process is not trusted.
    if (tail === null || tail.length !== size) throw new StorageError('PROTOCOL', 'putSmall content size');
    const mtimeMs = options.mtimeMs;
    return { result: await s.putSmall(path, tail, mtimeMs === undefined ? {} : { mtimeMs }) };
  },
  openWrite: async (s, [path], context) => {
    if (context.uploads.size >= MAX_UPLOADS_PER_CHANNEL)
      throw new StorageError('LIMIT', 'too many open uploads');
    const upload = await s.openWrite(path);
    const uploadId = nextUploadId++;
    context.uploads.set(uploadId, upload);
    // The upload keeps its descriptor; the reply carries a duplicate.
    return { result: { uploadId, existing: upload.existing }, fds: [context.dup(upload.fd)] };
  },
  commitWrite: async (_s, [id, size], context) => ({ result: await takeUpload(context, id).commit(size) }),
  abortWrite: async (_s, [id], context) => {
    await takeUpload(context, id).abort();
    return { result: null };
  },
  mkcol: async (s, [path]) => (await s.mkcol(path), { result: null }),
  remove: async (s, [path]) => ({ result: [], parts: await s.remove(path) }),
  copy: async (s, [from, to, options]) => separateErrors(await s.copy(from, to, options)),
  move: async (s, [from, to, options]) =>
    separateErrors(await s.move(from, to, { overwrite: options.overwrite })),
  patchProps: async (s, [path, ops]) => (await s.patchProps(path, ops), { result: null }),
  setTimes: async (s, [path, times]) => (await s.setTimes(path, times), { result: null }),
  space: async (s, [path]) => ({ result: await s.space(path) }),
  checkWritable: async (s, [path]) => (await s.checkWritable(path), { result: null }),
};

/** A transfer's member failures go ahead as parts; the last reply says only whether it created. */
function separateErrors(result: { created: boolean; errors: MemberError[] }): Outcome<'copy' | 'move'> {
  return { result: { created: result.created, errors: [] }, parts: result.errors };
}

/** Checks a request's arguments against its declaration and runs its handler. */
function runOperation<O extends TableOp>(
  op: O,
  args: readonly unknown[],
  storage: Storage,
  context: Context,
  tail: Buffer | null,
): Promise<Outcome<O>> {
  const spec: OperationSpec<ArgsOf<O>, ResultOf<O>, PartOf<O>> = PROTOCOL[op];
  const handler: Handler<O> = HANDLERS[op];
  if (!spec.args(args)) throw new StorageError('PROTOCOL', `bad arguments for ${op}`);
  if ((tail !== null) !== (spec.requestTail === true))
    throw new StorageError('PROTOCOL', `${op} ${tail === null ? 'without its' : 'with unexpected'} content`);
  return handler(storage, args, context, tail);
}
const PROTOCOL: { [O in StorageOp]: OperationSpec<ArgsOf<O>, ResultOf<O>, PartOf<O>> } = STORAGE_PROTOCOL;

function takeUpload(context: Context, id: number): Upload {
  const upload = context.uploads.get(id);
  if (upload === undefined) throw new StorageError('PROTOCOL', 'no such upload');
  context.uploads.delete(id);
  return upload;
}

export interface StorageServerState {
  /** Requests being worked on or uploads open: the worker must not exit while busy. */
  readonly busy: boolean;
  readonly open: boolean;
  /** Not busy and every reply handed to the kernel: closeIdle() may close it. */
  readonly idle: boolean;
  /**
   * When idle: stops reading, tells the web process with a `closing` notice that every request it
   * has no answer to was never read (so it may send any of them again elsewhere), and closes.
   * False, doing nothing, when not idle.
   */
  closeIdle(): boolean;
}

/** After the closing notice, how long its delivery may take before the channel is closed anyway. */
const CLOSING_DRAIN_MS = 1000;

/** Unsent list replies a worker holds before its listing waits for the channel to drain. */
const LIST_SEND_AHEAD_BYTES = 1024 * 1024;

/** Resolves once the channel has sent everything it queued, or is gone. */
function drained(channel: Channel): Promise<void> {
  if (channel.queuedBytes === 0 || channel.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      channel.off('drain', done);
      channel.off('close', done);
      resolve();
    };
    channel.on('drain', done);
    channel.on('close', done);
  });
}

async function* wireRunsOf(entries: AsyncIterable<Entry>): AsyncGenerator<WireRun> {
  for await (const entry of entries) yield wireRunOf(entry);
}

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Reply buffers of a batch's size that went to the kernel within their send and are free again. A
 * listing of 10,000 members fills a dozen; left to the garbage collector, a worker answering
 * PROPFINDs back to back carried ten MB and more of them between collections.
 */
const spareReplyBuffers: Buffer[] = [];
const SPARE_REPLY_BUFFERS = 4;
/** Room before the entries for the reply's head, written last (right-aligned). */
const REPLY_HEAD_ROOM = 96;
/** Room before a reply's rendered responses for its JSON, which is then copied there. */
const XML_JSON_ROOM = 4096;
const REPLY_BUFFER_BYTES = XML_JSON_ROOM + LIST_BATCH_BYTES + 2;

/**
 * One list reply being filled: `{"id":…,"ok":true,"more":…,"result":[<entries>]}` in one buffer
 * of a batch's size, entries copied in as they come. The head is written last, right-aligned in
 * the room left for it, because `more` is known only then. Rendered responses (a listRendered
 * listing) are gathered apart and sent after the JSON, past a NUL: `"xml":N` in the head counts
 * their members.
 */
class ListReply {
  readonly #id: number;
  #buffer: Buffer = EMPTY;
  #xml: Buffer = EMPTY;
  #jsonEntries = 0;
  #jsonBytes = 0;
  #xmlEntries = 0;
  #xmlBytes = 0;

  constructor(id: number) {
    this.#id = id;
  }

  get entries(): number {
    return this.#jsonEntries + this.#xmlEntries;
  }

  get bytes(): number {
    return this.#jsonBytes + this.#xmlBytes;
  }

  /**
   * Takes a copy of the run's text. The first run may be up to MAX_MESSAGE_BYTES - 256 bytes (one
   * large entry); after it, the batch stays within LIST_BATCH_BYTES.
   */
  add(run: WireRun): void {
    if (run.xml === true) {
      // After room for the JSON and the NUL that separates the two (copied in front at the end).
      if (this.#xml === EMPTY) this.#xml = replyBuffer(run.text.length, XML_JSON_ROOM);
      this.#xmlBytes += run.text.copy(this.#xml, XML_JSON_ROOM + this.#xmlBytes);
      this.#xmlEntries += run.count;
      return;
    }
    if (this.#buffer === EMPTY) this.#buffer = replyBuffer(run.text.length);
    this.#jsonBytes += run.text.copy(this.#buffer, REPLY_HEAD_ROOM + this.#jsonBytes);
    this.#jsonEntries += run.count;
  }

  /**
   * Sends the reply. Its buffer is kept for the next reply if the kernel took it at once;
   * otherwise the channel frees it once sent.
   */
  send(channel: Channel, more: boolean): void {
    const buffer = this.#buffer;
    const xml = this.#xml;
    let payload = this.#finish(more);
    let sent = buffer;
    if (xml !== EMPTY) {
      // The JSON goes in front of the rendered responses: copied there when it fits (it is
      // mostly the head alone), or else both into a new buffer.
      const start = XML_JSON_ROOM - 1 - payload.length;
      const end = XML_JSON_ROOM + this.#xmlBytes;
      if (start >= 0) {
        payload.copy(xml, start);
        xml[XML_JSON_ROOM - 1] = 0;
        payload = xml.subarray(start, end);
        sent = xml;
      } else {
        xml[XML_JSON_ROOM - 1] = 0;
        payload = Buffer.concat([payload, xml.subarray(XML_JSON_ROOM - 1, end)]);
        sent = payload;
        keepSpare(xml);
      }
      keepSpare(buffer);
    }
    const release = sent.length > Buffer.poolSize ? (sent.buffer as ArrayBuffer) : null;
    if (channel.send(payload, [], release) && (sent === buffer || sent === xml)) keepSpare(sent);
    this.#buffer = this.#xml = EMPTY;
  }

  #finish(more: boolean): Buffer {
    if (this.#buffer === EMPTY) this.#buffer = Buffer.allocUnsafe(REPLY_HEAD_ROOM + 2);
    const xml = this.#xmlEntries > 0 ? `"xml":${this.#xmlEntries},` : '';
    const head = `{"id":${this.#id},"ok":true,"more":${more},${xml}"result":[`;
    const start = REPLY_HEAD_ROOM - head.length;
    this.#buffer.write(head, start, 'latin1');
    // The last entry's comma becomes the array's end.
    const end = REPLY_HEAD_ROOM + Math.max(0, this.#jsonBytes - 1);
    this.#buffer.write(']}', end, 'latin1');
    return this.#buffer.subarray(start, end + 2);
  }
}

/**
 * A buffer for a reply's entries after `room` bytes: a spare one of a batch's size, or one large
 * enough for a big first entry.
 */
function replyBuffer(firstRunBytes: number, room = REPLY_HEAD_ROOM): Buffer {
  return firstRunBytes <= LIST_BATCH_BYTES
    ? (spareReplyBuffers.pop() ?? Buffer.allocUnsafeSlow(REPLY_BUFFER_BYTES))
    : Buffer.allocUnsafeSlow(room + firstRunBytes + 2);
}

function keepSpare(buffer: Buffer): void {
  if (buffer.length === REPLY_BUFFER_BYTES && spareReplyBuffers.length < SPARE_REPLY_BUFFERS)
    spareReplyBuffers.push(buffer);
}

export function serveStorage(channel: Channel, options: StorageServerOptions): StorageServerState {
  const context: Context = { uploads: new Map(), dup: options.dup };
  let inFlight = 0;
  // Verified cookies are remembered until they expire: one HMAC per cookie, not per request.
  const verified = new Map<string, number>();
  let peerGone = false;

  /**
   * Sends one reply; never throws. The fds are the channel's from channel.send on (it closes them
   * whatever happens); a reply that cannot be encoded never gets there, so its fds are closed here
   * and the caller is answered with an error instead: no request is left without an answer.
   */
  const reply = (message: StorageReply, fds: readonly number[] = []): void => {
    if (peerGone) {
      closeAll(fds);
      return;
    }
    let payload: Buffer;
    try {
      payload = encodeMessage(message);
    } catch (error) {
      closeAll(fds);
      options.log('error', `reply not sent: ${errorText(error)}; answering with an error instead`);
      payload = encodeMessage({ id: message.id, ok: false, code: 'INTERNAL', message: 'reply too large' });
    }
    try {
      channel.send(payload, fds);
    } catch (error) {
      options.log('error', `reply not sent: ${errorText(error)}`);
    }
  };
  const fail = (id: number, error: unknown): void => {
    const storageError = StorageError.from(error);
    if (storageError.code === 'INTERNAL') options.log('error', `internal error: ${storageError.message}`);
    reply({
      id,
      ok: false,
      code: storageError.code,
      message: storageError.code === 'INTERNAL' ? 'internal error' : storageError.message,
      property: storageError.property,
    });
  };
  // A streamed answer goes no faster than the web process takes it (it pauses the channel when its
  // client falls behind): past this much unsent, wait for the channel to drain.
  const keepPace = async (): Promise<void> => {
    if (channel.queuedBytes > LIST_SEND_AHEAD_BYTES) await drained(channel);
  };
  /** Member failures ahead of the last reply, in `more: true` batches of bounded size. */
  const sendParts = async (id: number, parts: readonly unknown[]): Promise<void> => {
    let batch: unknown[] = [];
    let bytes = 0;
    for (const part of parts) {
      const size = Buffer.byteLength(JSON.stringify(part), 'utf8') + 1;
      if (batch.length > 0 && bytes + size > MEMBER_ERROR_BATCH_BYTES) {
        reply({ id, ok: true, more: true, result: batch });
        batch = [];
        bytes = 0;
        await keepPace();
      }
      batch.push(part);
      bytes += size;
    }
    if (batch.length > 0) reply({ id, ok: true, more: true, result: batch });
  };

  const checkCookie = (cookie: unknown): StorageError | null => {
    const now = Date.now();
    if (typeof cookie === 'string') {
      const expires = verified.get(cookie);
      if (expires !== undefined && expires > now) return null;
      verified.delete(cookie);
    }
    const verdict = verifyCookie(options.userKey, cookie, options.uid, now);
    if (!verdict.ok) return new StorageError(verdict.code, `credentials refused: ${verdict.reason}`);
    if (verified.size > 1024) verified.clear();
    verified.set(cookie as string, verdict.claims.expires);
    return null;
  };

  const streamList = async (id: number, args: readonly unknown[]): Promise<void> => {
    if (!STORAGE_PROTOCOL.list.args(args)) throw new StorageError('PROTOCOL', 'bad arguments for list');
    const [path, depth, { props: selection, limit: requested, render }] = args;
    // The configured bound is for Depth: infinity; a Depth 1 listing of a big directory is fine.
    const limit = depth === 'infinity' ? Math.min(requested, options.maxInfinityEntries) : requested;
    // Runs of entries already in wire form (each followed by a comma) are copied into the reply
    // as they come (they may be views of a listing freed when it ends), batched so that a batch
    // never exceeds one message.
    let reply = new ListReply(id);
    const flush = (more: boolean): void => {
      if (!peerGone) reply.send(channel, more);
      reply = new ListReply(id);
    };
    const listArgs = { props: selection, limit, render };
    const bounds = { entries: LIST_BATCH_ENTRIES, bytes: LIST_BATCH_BYTES };
    const runs =
      options.storage.listWire?.(path, depth, listArgs, bounds) ??
      wireRunsOf(options.storage.list(path, depth, listArgs));
    for await (const run of runs) {
      if (run.text.length > MAX_MESSAGE_BYTES - 256) throw new StorageError('E2BIG', 'entry too large');
      if (
        reply.entries > 0 &&
        (reply.entries + run.count > LIST_BATCH_ENTRIES || reply.bytes + run.text.length > LIST_BATCH_BYTES)
      ) {
        flush(true);
        await keepPace();
      }
      reply.add(run);
    }
    flush(false);
  };

  const handle = async (payload: Buffer, fds: number[]): Promise<void> => {
    // Requests never legitimately carry descriptors.
    closeAll(fds);
    options.onActivity();
    const decoded = decodeTailedMessage(payload);
    const message = decoded?.message ?? null;
    const id = message?.id;
    if (decoded === null || message === null || !isRequestId(id)) {
      options.log('warn', 'malformed message from the web process refused');
      return;
    }
    const op = message.op;
    const args = message.args;
    if (!isStorageOp(op) || !Array.isArray(args)) {
      options.log('warn', `unknown storage operation refused: ${String(op).slice(0, 40)}`);
      fail(id, new StorageError('PROTOCOL', 'unknown operation'));
      return;
    }
    const cookieError = checkCookie(message.cookie);
    if (cookieError !== null) {
      if (cookieError.code === 'COOKIE_INVALID') options.log('warn', `${op}: ${cookieError.message}`);
      fail(id, cookieError);
      return;
    }
    try {
      if (op === 'list') {
        if (decoded.tail !== null) throw new StorageError('PROTOCOL', 'list with unexpected content');
        await streamList(id, args);
        return;
      }
      const outcome = await runOperation(op, args, options.storage, context, decoded.tail);
      if (outcome.parts !== undefined) await sendParts(id, outcome.parts);
      reply({ id, ok: true, result: outcome.result }, outcome.fds);
    } catch (error) {
      fail(id, error);
    }
  };

  const onMessage = (payload: Buffer, fds: number[]): void => {
    inFlight++;
    void handle(payload, fds).finally(() => {
      inFlight--;
      options.onActivity();
    });
  };
  channel.on('message', onMessage);
  const cleanUp = (): void => {
    if (peerGone) return;
    peerGone = true;
    // A web process that went away mid-upload: the uploads are discarded, the targets untouched.
    for (const upload of context.uploads.values()) void upload.abort().catch(() => undefined);
    context.uploads.clear();
  };
  channel.on('error', cleanUp);
  channel.on('close', cleanUp);
  return {
    get busy() {
      return inFlight > 0 || context.uploads.size > 0;
    },
    get open() {
      return !peerGone;
    },
    get idle() {
      return peerGone || (inFlight === 0 && context.uploads.size === 0 && channel.queuedMessages === 0);
    },
    closeIdle() {
      if (peerGone) return true;
      if (inFlight > 0 || context.uploads.size > 0 || channel.queuedMessages > 0) return false;
      // Without a 'message' listener the channel reads nothing more: what is unread stays unread.
      channel.off('message', onMessage);
      let sent = false;
      try {
        sent = channel.send(encodeMessage({ t: 'closing' }));
      } catch {
        // The peer is gone already: nothing to tell.
      }
      cleanUp();
      if (sent) channel.destroy();
      else {
        channel.once('drain', () => channel.destroy());
        setTimeout(() => channel.destroy(), CLOSING_DRAIN_MS).unref();
      }
      return true;
    },
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
