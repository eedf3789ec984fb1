// Draining the WebDAV listeners on SIGTERM: stop accepting, let every response in flight finish
// to its last byte (TLS included), close each connection gracefully once it has nothing in
// flight, and cut what is left only when the grace period is over.
//
// Why not Node's server.close() / closeIdleConnections(): Node counts a connection as idle as
// soon as its *request* is parsed and skips it only while `res.finished` is false — which turns
// true when res.end() is called, not when the bytes have left. A response whose end() was called
// but whose tail still sat in the socket's (TLS) write buffer was destroyed: the 1-in-8 truncated
// 200 MB TLS download. Here a connection counts as idle only after its response emitted 'close'
// (all written), and it is ended with end() (queued after the data, TLS close_notify), never destroy().

import type * as http from 'node:http';
import { Server as NetServer, type Server, type Socket } from 'node:net';

export class Drain {
  /** Every accepted TCP connection, for counting and for the grace period's last resort. */
  readonly #connections = new Set<Socket>();
  /** The connections requests arrive on (TLS sockets over HTTPS), by responses in flight. */
  readonly #busy = new Map<Socket, number>();
  readonly #sockets = new Set<Socket>();
  #draining = false;

  get connections(): number {
    return this.#connections.size;
  }

  watch(server: Server, tls: boolean): void {
    server.on('connection', (socket: Socket) => {
      this.#connections.add(socket);
      socket.once('close', () => this.#connections.delete(socket));
      // Accepted while draining (queued in the backlog before the listener closed): served, then closed.
      if (!tls) this.#track(socket);
    });
    if (tls) server.on('secureConnection', (socket: Socket) => this.#track(socket));
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#busy.delete(socket);
    });
  }

  /** Called for every request: its connection is busy until the response has been written out. */
  request(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    this.#busy.set(socket, (this.#busy.get(socket) ?? 0) + 1);
    // While draining, a response says Connection: close and Node ends the connection after it.
    if (this.#draining) res.shouldKeepAlive = false;
    res.once('close', () => {
      const left = (this.#busy.get(socket) ?? 1) - 1;
      if (left > 0) this.#busy.set(socket, left);
      else this.#busy.delete(socket);
      if (this.#draining && left <= 0) socket.end();
    });
  }

  /** Stops accepting; `done` once every connection has closed, or when the grace period ends. */
  start(servers: Server[], graceMs: number, done: () => void): void {
    this.#draining = true;
    let open = servers.length;
    const closed = (): void => {
      if (--open === 0) done();
    };
    if (open === 0) done();
    // net.Server's close: stops accepting and calls back once all connections are gone, without
    // http.Server's pre-close closeIdleConnections() (see above).
    for (const server of servers) NetServer.prototype.close.call(server, closed);
    for (const socket of this.#sockets) if (!this.#busy.has(socket)) socket.end();
    setTimeout(() => {
      for (const socket of this.#connections) socket.destroy();
      done();
    }, graceMs).unref();
  }
}
