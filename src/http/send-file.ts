// A response body straight from a file descriptor to the client's TCP socket with sendfile(2)
// (native/src/sendfile.c): no read into JavaScript, no copy through a Buffer. To a client on this
// host (loopback) the addon writes from a mapping of the file instead, which lets the client read
// from the CPU's cache rather than from memory. Only for plain TCP
// (TLS must encrypt in user space) and only when this response owns the socket (a pipelined
// response queued behind another has no socket of its own yet); otherwise callers stream.
import type * as http from 'node:http';
import type * as net from 'node:net';
import { abortSendFile, sendFile } from '../../native';

/** What Node keeps on a TCP socket that we read: its libuv handle's descriptor. */
interface SocketInternals {
  _handle?: { fd?: number } | null;
  _httpMessage?: unknown;
  encrypted?: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * Bytes of response bodies the kernel sent from files for this process, by the way they went
 * (`privdav_file_body_bytes_total`): `sendfile`, or `copy` (write from a mapping, to peers on this
 * host). Counted when each transfer ends, whole or not.
 */
export const fileBodyBytes = { sendfile: 0, copy: 0 };

function socketFd(socket: net.Socket): number {
  const fd = (socket as net.Socket & SocketInternals)._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * Whether the peer is on this host, so that the kernel hands the bytes over in memory (loopback)
 * and no NIC could send from the page cache without a copy.
 */
export function isPeerOnThisHost(socket: net.Socket): boolean {
  const remote = socket.remoteAddress;
  if (remote === undefined) return false;
  return (
    remote.startsWith('127.') ||
    remote.startsWith('::ffff:127.') ||
    remote === '::1' ||
    remote === socket.localAddress
  );
}

/** The socket `res` may send a file on directly, or null when the body must be streamed. */
export function sendFileSocket(res: http.ServerResponse): net.Socket | null {
  const socket = res.socket as (net.Socket & SocketInternals) | null;
  if (socket === null || socket.destroyed || socket.encrypted === true) return null;
  if (socket._httpMessage !== res) return null;
  return socketFd(socket) >= 0 ? socket : null;
}

/**
 * Sends the headers `res` has (writeHead already called), then `length` bytes of `fd` from
 * `start` with sendfile, then ends the response. The caller still owns `fd` and closes it after.
 * A client that goes away or stops reading for the socket's timeout loses its connection; the
 * promise resolves either way (there is nobody left to tell).
 */
export async function sendFileBody(
  res: http.ServerResponse,
  socket: net.Socket,
  fd: number,
  start: number,
  length: number,
): Promise<void> {
  res.flushHeaders();
  // The headers must be in the kernel before the body: a zero-length write calls back once
  // everything queued before it has been written.
  if (socket.writableLength > 0) await new Promise<void>((resolve) => socket.write(EMPTY, () => resolve()));
  const target = socketFd(socket);
  if (socket.destroyed || target < 0) return;
  const idleMs = socket.timeout ?? 0;
  // Node's idle timer sees no activity while the kernel sends: sendFile enforces the same limit.
  socket.setTimeout(0);
  await new Promise<void>((resolve) => {
    const handle = sendFile(
      target,
      fd,
      start,
      length,
      idleMs,
      isPeerOnThisHost(socket),
      (error, sent, copied) => {
        fileBodyBytes.copy += copied;
        fileBodyBytes.sendfile += sent - copied;
        socket.off('close', onClose);
        if (error !== null) socket.destroy();
        else {
          socket.setTimeout(idleMs);
          res.end();
        }
        resolve();
      },
    );
    function onClose(): void {
      abortSendFile(handle);
    }
    socket.on('close', onClose);
  });
}
