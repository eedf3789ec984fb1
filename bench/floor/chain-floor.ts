// The least the invariants cost a small GET and PUT on Node (bench/floor/run.sh): a node:http
// process that touches no file itself, and a second Node process running as the user that does the
// file work (DESIGN invariants: the HTTP process is not the user, every file operation is the
// user's). GET: the user's process opens the file and passes the descriptor back over an AF_UNIX
// SEQPACKET pair with SCM_RIGHTS; the HTTP process reads it from the page cache. PUT (of a body
// that has arrived): the body rides after the message's JSON and the user's process replaces the
// file atomically and durably, as privdav's putSmall does (O_TMPFILE, write, then fdatasync, linkat
// and rename in one threadpool job). No DAV, path checks, authentication, log or limits: one small
// JSON message each way, the same channel and native calls privdav uses (common/channel.ts,
// readCached, closeLater, commitUpload). Whatever privdav adds above these figures is its own; a
// server on Node that keeps the invariants (and fsyncs uploads) cannot go below them.
// Usage (as root): node chain-floor.js PORT USER FILE — GET of any path answers FILE; PUT of /p
// replaces p below FILE's directory (plain names, no "..").
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Channel } from '../../common/channel';
import { lookUpAccount } from '../../helper/accounts';
import { closeFd, closeLater, commitUpload, openForRead, readCached, socketpair } from '../../native';

/** open(2) flags O_TMPFILE | O_DIRECTORY (helper/upload.ts). */
const O_TMPFILE = 0o20200000;
/** The body of a PUT after a NUL byte, as privdav's putSmall sends it (common/protocol.ts). */
const SEPARATOR = 0;

const [port, user, file] = process.argv.slice(2) as [string, string, string];

if (process.env.CHAIN_FLOOR_WORKER === '1') {
  // The user's side: one open per message, the descriptor sent back and closed here.
  const channel = new Channel(3);
  const directory = path.dirname(file);
  let uploads = 0;
  channel.on('message', (payload) => {
    const boundary = payload.indexOf(SEPARATOR);
    const json = boundary < 0 ? payload : payload.subarray(0, boundary);
    const { id, name } = JSON.parse(json.toString('utf8')) as { id: number; name?: string };
    if (name === undefined) {
      // As privdav's worker opens a GET's file: one addon call (stat, open, statx of the descriptor).
      const opened = openForRead(file);
      if (opened.kind !== 'file') throw new Error(`${file} is not a regular file`);
      const reply = { id, size: opened.size, mtimeMs: opened.mtimeMs, etag: opened.etag };
      // The channel owns the descriptor from here and closes its copy once the kernel has taken it.
      channel.send(Buffer.from(JSON.stringify(reply)), [opened.fd]);
      return;
    }
    // Beside its target, as privdav's uploads are.
    const target = path.join(directory, name);
    const fd = fs.openSync(path.dirname(target), fs.constants.O_WRONLY | O_TMPFILE, 0o644);
    fs.writeSync(fd, payload, boundary + 1);
    const temporary = path.join(path.dirname(target), `.upload-${process.pid}-${uploads++}`);
    void commitUpload(fd, temporary, { link: true, target, durable: true })
      .then(
        () => ({ id, ok: true }),
        (error: Error) => ({ id, ok: false, error: error.message }),
      )
      .then((reply) => {
        closeLater(fd);
        channel.send(Buffer.from(JSON.stringify(reply)));
      });
  });
  channel.on('close', () => process.exit(0));
} else {
  const account = lookUpAccount(user);
  if (account === null) {
    process.stderr.write('usage: chain-floor.js PORT USER FILE\n');
    process.exit(2);
  }
  const [ours, theirs] = socketpair();
  const worker = spawn(process.execPath, [__filename, port, user, file], {
    stdio: ['ignore', 'inherit', 'inherit', theirs],
    env: { CHAIN_FLOOR_WORKER: '1' },
    uid: account.uid,
    gid: account.gid,
  });
  closeFd(theirs);
  const channel = new Channel(ours);
  type Reply = { size: number; mtimeMs: number; etag: string; ok?: boolean; error?: string };
  const waiting = new Map<number, (reply: Reply, fd: number | undefined) => void>();
  let nextId = 1;
  channel.on('message', (payload, fds) => {
    const reply = JSON.parse(payload.toString('utf8')) as Reply & { id: number };
    const resolve = waiting.get(reply.id)!;
    waiting.delete(reply.id);
    resolve(reply, fds[0]);
  });
  const get = (res: http.ServerResponse): void => {
    const id = nextId++;
    waiting.set(id, (reply, fd) => {
      const body = Buffer.allocUnsafe(reply.size);
      // As privdav reads a small body: from the page cache without a threadpool trip.
      const cached = readCached(fd!, body, 0);
      const length = cached === body.length ? cached : fs.readSync(fd!, body, 0, body.length, 0);
      closeLater(fd!);
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': length,
        ETag: reply.etag,
        'Last-Modified': new Date(reply.mtimeMs).toUTCString(),
      });
      res.end(body.subarray(0, length));
    });
    channel.send(Buffer.from(JSON.stringify({ id })));
  };
  const put = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const id = nextId++;
      waiting.set(id, (reply) => {
        res.writeHead(reply.ok === true ? 204 : 500, { 'Content-Length': 0 });
        res.end();
      });
      // The request's path below FILE's directory (run.sh: /put/f-N.bin), plain names only.
      const name = (req.url ?? '').slice(1);
      if (!/^[\w.-]+(\/[\w.-]+)*$/.test(name) || name.split('/').includes('..')) {
        res.writeHead(400, { 'Content-Length': 0 });
        res.end();
        return;
      }
      const json = Buffer.from(JSON.stringify({ id, name }));
      channel.send(Buffer.concat([json, Buffer.of(SEPARATOR), ...chunks]));
    });
  };
  http
    .createServer((req, res) => (req.method === 'PUT' ? put(req, res) : get(res)))
    .listen(Number(port), '127.0.0.1');
  const stop = (): void => {
    worker.kill();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
