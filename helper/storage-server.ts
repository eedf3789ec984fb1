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
  STORAGE_OPS,
  StorageOp,
  decodeMessage,
  encodeMessage,
  isBoundedString,
  isRequestId,
  wireRunOf,
  type WireRun,
} from '../common/protocol';
import {
  Depth,
  Entry,
  ListOptions,
  PropPatchOp,
  PropSelection,
  Storage,
  StorageError,
  Times,
  TransferOptions,
  Upload,
} from '../common/storage';

const MAX_PATH_BYTES = 4096;
const MAX_PROP_NAMES = 1024;
const MAX_PATCH_OPS = 1024;
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

type Args = unknown[];
interface Context {
  uploads: Map<number, Upload>;
}
/** Each entry checks its arguments (returning null when they are unacceptable) and runs the call. */
interface OpSpec {
  check(args: Args): boolean;
  run(storage: Storage, args: Args, context: Context): Promise<{ result?: unknown; fds?: number[] }>;
}

const isPath = (value: unknown): value is string => isBoundedString(value, MAX_PATH_BYTES);
const isDepth = (value: unknown): value is Depth => value === 0 || value === 1 || value === 'infinity';
const isSelection = (value: unknown): value is PropSelection =>
  value === 'none' ||
  value === 'names' ||
  value === 'all' ||
  (Array.isArray(value) &&
    value.length <= MAX_PROP_NAMES &&
    value.every((name) => isBoundedString(name, 1024)));
const isTransfer = (value: unknown): value is TransferOptions => {
  const options = value as Partial<TransferOptions> | null;
  return (
    typeof options === 'object' &&
    options !== null &&
    typeof options.overwrite === 'boolean' &&
    (options.depth === 0 || options.depth === 'infinity')
  );
};
const isPatch = (value: unknown): value is PropPatchOp[] =>
  Array.isArray(value) &&
  value.length <= MAX_PATCH_OPS &&
  value.every((op: Partial<{ op: string; name: unknown; value: unknown }>) => {
    if (typeof op !== 'object' || op === null || !isBoundedString(op.name, 1024)) return false;
    if (op.op === 'remove') return true;
    return op.op === 'set' && typeof op.value === 'string' && op.value.length <= MAX_MESSAGE_BYTES;
  });
const isTime = (value: unknown): boolean =>
  value === undefined || (typeof value === 'number' && Number.isFinite(value) && Math.abs(value) < 1e15);
const isTimes = (value: unknown): value is Times =>
  typeof value === 'object' &&
  value !== null &&
  isTime((value as Times).atimeMs) &&
  isTime((value as Times).mtimeMs);
const isUploadId = (value: unknown): value is number => isRequestId(value);

let nextUploadId = 1;

const OPS: Record<Exclude<StorageOp, 'list'>, OpSpec> = {
  stat: { check: ([p]) => isPath(p), run: async (s, [p]) => ({ result: await s.stat(p as string) }) },
  realPath: { check: ([p]) => isPath(p), run: async (s, [p]) => ({ result: await s.realPath(p as string) }) },
  openRead: {
    check: ([p]) => isPath(p),
    run: async (s, [p]) => {
      const opened = await s.openRead(p as string);
      return { result: { stat: opened.stat }, fds: [opened.fd] };
    },
  },
  openWrite: {
    check: ([p]) => isPath(p),
    run: async (s, [p], context) => {
      if (context.uploads.size >= MAX_UPLOADS_PER_CHANNEL)
        throw new StorageError('LIMIT', 'too many open uploads');
      const upload = await s.openWrite(p as string);
      const uploadId = nextUploadId++;
      context.uploads.set(uploadId, upload);
      return { result: { uploadId, existing: upload.existing }, fds: [upload.fd] };
    },
  },
  commitWrite: {
    check: ([id, size]) => isUploadId(id) && (size === undefined || isRequestId(size)),
    run: async (_s, [id, size], context) => {
      const upload = takeUpload(context, id as number);
      return { result: await upload.commit(size as number | undefined) };
    },
  },
  abortWrite: {
    check: ([id]) => isUploadId(id),
    run: async (_s, [id], context) => {
      await takeUpload(context, id as number).abort();
      return {};
    },
  },
  mkcol: { check: ([p]) => isPath(p), run: async (s, [p]) => (await s.mkcol(p as string), {}) },
  remove: { check: ([p]) => isPath(p), run: async (s, [p]) => ({ result: await s.remove(p as string) }) },
  copy: {
    check: ([from, to, options]) => isPath(from) && isPath(to) && isTransfer(options),
    run: async (s, [from, to, options]) => ({
      result: await s.copy(from as string, to as string, options as TransferOptions),
    }),
  },
  move: {
    check: ([from, to, options]) =>
      isPath(from) && isPath(to) && isTransfer({ depth: 'infinity', ...(options as object) }),
    run: async (s, [from, to, options]) => ({
      result: await s.move(from as string, to as string, {
        overwrite: (options as TransferOptions).overwrite,
      }),
    }),
  },
  getProps: {
    check: ([p, selection]) => isPath(p) && isSelection(selection),
    run: async (s, [p, selection]) => ({ result: await s.getProps(p as string, selection as PropSelection) }),
  },
  patchProps: {
    check: ([p, ops]) => isPath(p) && isPatch(ops),
    run: async (s, [p, ops]) => (await s.patchProps(p as string, ops as PropPatchOp[]), {}),
  },
  setTimes: {
    check: ([p, times]) => isPath(p) && isTimes(times),
    run: async (s, [p, times]) => (await s.setTimes(p as string, times as Times), {}),
  },
  space: { check: ([p]) => isPath(p), run: async (s, [p]) => ({ result: await s.space(p as string) }) },
  checkWritable: {
    check: ([p]) => isPath(p),
    run: async (s, [p]) => (await s.checkWritable(p as string), {}),
  },
};

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
}

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
const REPLY_HEAD_ROOM = 64;
const REPLY_BUFFER_BYTES = REPLY_HEAD_ROOM + LIST_BATCH_BYTES + 2;

/**
 * One list reply being filled: `{"id":…,"ok":true,"more":…,"result":[<entries>]}` in one buffer
 * of a batch's size, entries copied in as they come. The head is written last, right-aligned in
 * the room left for it, because `more` is known only then.
 */
class ListReply {
  readonly #id: number;
  #buffer: Buffer = EMPTY;
  entries = 0;
  bytes = 0;

  constructor(id: number) {
    this.#id = id;
  }

  /**
   * Takes a copy of the run's text. The first run may be up to MAX_MESSAGE_BYTES - 256 bytes (one
   * large entry); after it, the batch stays within LIST_BATCH_BYTES.
   */
  add(run: WireRun): void {
    if (this.#buffer === EMPTY)
      this.#buffer =
        run.text.length <= LIST_BATCH_BYTES
          ? (spareReplyBuffers.pop() ?? Buffer.allocUnsafeSlow(REPLY_BUFFER_BYTES))
          : Buffer.allocUnsafeSlow(REPLY_HEAD_ROOM + run.text.length + 2);
    this.bytes += run.text.copy(this.#buffer, REPLY_HEAD_ROOM + this.bytes);
    this.entries += run.count;
  }

  /**
   * Sends the reply. Its buffer is kept for the next reply if the kernel took it at once;
   * otherwise the channel frees it once sent.
   */
  send(channel: Channel, more: boolean): void {
    const buffer = this.#buffer;
    const payload = this.#finish(more);
    const release = buffer.length > Buffer.poolSize ? (buffer.buffer as ArrayBuffer) : null;
    if (channel.send(payload, [], release) && buffer.length === REPLY_BUFFER_BYTES) {
      if (spareReplyBuffers.length < SPARE_REPLY_BUFFERS) spareReplyBuffers.push(buffer);
    }
    this.#buffer = EMPTY;
  }

  #finish(more: boolean): Buffer {
    if (this.#buffer === EMPTY) this.#buffer = Buffer.allocUnsafe(REPLY_HEAD_ROOM + 2);
    const head = `{"id":${this.#id},"ok":true,"more":${more},"result":[`;
    const start = REPLY_HEAD_ROOM - head.length;
    this.#buffer.write(head, start, 'latin1');
    // The last entry's comma becomes the array's end.
    const end = REPLY_HEAD_ROOM + Math.max(0, this.bytes - 1);
    this.#buffer.write(']}', end, 'latin1');
    return this.#buffer.subarray(start, end + 2);
  }
}

export function serveStorage(channel: Channel, options: StorageServerOptions): StorageServerState {
  const context: Context = { uploads: new Map() };
  let inFlight = 0;
  // Verified cookies are remembered until they expire: one HMAC per cookie, not per request.
  const verified = new Map<string, number>();
  let peerGone = false;

  const reply = (message: object, fds: number[] = []): void => {
    if (peerGone) {
      closeAll(fds);
      return;
    }
    try {
      channel.send(encodeMessage(message), fds);
    } catch (error) {
      options.log('error', `reply not sent: ${(error as Error).message}`);
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

  const streamList = async (id: number, args: Args): Promise<void> => {
    const [path, depth, listOptions] = args;
    const selection = (listOptions as { props?: unknown } | null)?.props;
    const requested = (listOptions as { limit?: unknown } | null)?.limit;
    if (!isPath(path) || !isDepth(depth) || !isSelection(selection) || !isRequestId(requested)) {
      throw new StorageError('PROTOCOL', 'bad arguments for list');
    }
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
    // A listing goes no faster than the web process takes it (it pauses the channel when its
    // client falls behind): past this much unsent, wait for the channel to drain.
    const keepPace = async (): Promise<void> => {
      if (channel.queuedBytes > LIST_SEND_AHEAD_BYTES) await drained(channel);
    };
    const listArgs = { props: selection, limit };
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
    const message = decodeMessage(payload);
    const id = message?.id;
    if (message === null || !isRequestId(id)) {
      options.log('warn', 'malformed message from the web process refused');
      return;
    }
    const op = message.op;
    const args = message.args;
    if (typeof op !== 'string' || !(STORAGE_OPS as readonly string[]).includes(op) || !Array.isArray(args)) {
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
        await streamList(id, args);
        return;
      }
      const spec = OPS[op as Exclude<StorageOp, 'list'>];
      if (!spec.check(args)) throw new StorageError('PROTOCOL', `bad arguments for ${op}`);
      const outcome = await spec.run(options.storage, args, context);
      const sent = (outcome.fds ?? []).map((fd) => (op === 'openWrite' ? options.dup(fd) : fd));
      reply({ id, ok: true, result: outcome.result }, sent);
    } catch (error) {
      fail(id, error);
    }
  };

  channel.on('message', (payload: Buffer, fds: number[]) => {
    inFlight++;
    void handle(payload, fds).finally(() => {
      inFlight--;
      options.onActivity();
    });
  });
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
  };
}
