// Who may hold a connection: at most max_connections_per_address per client address, a deadline for
// each request head with a minimum rate (like Apache mod_reqtimeout's header=20-40,MinRate=500),
// and, when max_connections is reached, room made for the newcomer by shedding a connection that
// never authenticated from the address holding the most — so one address holding every slot with
// slow connections cannot keep anyone else out, and a client that logged in is never shed for it.

import type { Server, Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sourceKey } from '../../common/source-address';
import type { Logger } from '../../common/log';

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  headerTimeoutMs: number;
  headerTimeoutMaxMs: number;
  /** Bytes per second that extend the head deadline by one second (0: no extension). */
  headerMinRate: number;
  ipv6Prefix: number;
}

interface Tracked {
  socket: Socket;
  address: string;
  authenticated: boolean;
  inFlight: number;
  /** Waiting for a request head (since headStart), serving a request, or idle between requests. */
  phase: 'head' | 'busy' | 'idle';
  headStart: number;
  /** socket.bytesRead when the head started (or when the connection went idle). */
  headBytes: number;
}

const CHECK_INTERVAL_MS = 1000;
const LOG_INTERVAL_MS = 10_000;

export class ConnectionGuard {
  #limits: ConnectionLimits;
  readonly #log: Logger;
  /** In order of arrival: the first unauthenticated entry of an address is its oldest. */
  readonly #all = new Set<Tracked>();
  readonly #byAddress = new Map<string, Set<Tracked>>();
  /** By "address|port" of the peer: a TLS socket and the TCP socket under it share it. */
  readonly #byPeer = new Map<string, Tracked>();
  readonly #timer: NodeJS.Timeout;
  #dropped = { perAddress: 0, shed: 0, full: 0, slowHead: 0, since: Date.now() };

  constructor(limits: ConnectionLimits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
    this.#timer = setInterval(() => this.#checkHeads(), CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  set limits(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#all.size;
  }

  /** Watches a server's connections ('connection' is the TCP socket, also under TLS). */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.#admit(socket));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#requestStarted(req, res));
  }

  /** A request on this connection carried valid credentials: it is never shed to make room. */
  markAuthenticated(req: IncomingMessage): void {
    const tracked = this.#byPeer.get(peerOf(req.socket));
    if (tracked !== undefined) tracked.authenticated = true;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #admit(socket: Socket): void {
    const limits = this.#limits;
    const address = sourceKey(socket.remoteAddress ?? '', limits.ipv6Prefix);
    const sameAddress = this.#byAddress.get(address);
    if (sameAddress !== undefined && sameAddress.size >= limits.maxConnectionsPerAddress) {
      this.#dropped.perAddress++;
      return void socket.destroy();
    }
    if (this.#all.size >= limits.maxConnections && !this.#shedOne()) {
      this.#dropped.full++;
      return void socket.destroy();
    }
    const tracked: Tracked = {
      socket,
      address,
      authenticated: false,
      inFlight: 0,
      phase: 'head',
      headStart: Date.now(),
      headBytes: socket.bytesRead,
    };
    const peer = peerOf(socket);
    this.#all.add(tracked);
    this.#byPeer.set(peer, tracked);
    let group = sameAddress;
    if (group === undefined) this.#byAddress.set(address, (group = new Set()));
    group.add(tracked);
    socket.once('close', () => {
      this.#all.delete(tracked);
      if (this.#byPeer.get(peer) === tracked) this.#byPeer.delete(peer);
      group.delete(tracked);
      if (group.size === 0 && this.#byAddress.get(address) === group) this.#byAddress.delete(address);
    });
  }

  /** Closes the oldest unauthenticated connection of the address holding the most; false if none. */
  #shedOne(): boolean {
    let victim: Tracked | null = null;
    let most = 0;
    for (const group of this.#byAddress.values()) {
      if (group.size <= most) continue;
      for (const tracked of group) {
        if (tracked.authenticated || tracked.phase === 'busy') continue;
        victim = tracked;
        most = group.size;
        break;
      }
    }
    if (victim === null) return false;
    this.#dropped.shed++;
    // Forget it at once: the slot is the newcomer's even before the close completes.
    this.#all.delete(victim);
    this.#byAddress.get(victim.address)?.delete(victim);
    victim.socket.destroy();
    return true;
  }

  #requestStarted(req: IncomingMessage, res: ServerResponse): void {
    const tracked = this.#byPeer.get(peerOf(req.socket));
    if (tracked === undefined) return;
    tracked.inFlight++;
    tracked.phase = 'busy';
    let done = false;
    const finished = (): void => {
      if (done) return;
      done = true;
      if (--tracked.inFlight > 0) return;
      tracked.phase = 'idle';
      tracked.headBytes = tracked.socket.bytesRead;
    };
    res.once('finish', finished);
    res.once('close', finished);
  }

  /** Once a second: heads past their deadline are dropped; idle connections that got bytes start a head. */
  #checkHeads(): void {
    const now = Date.now();
    const { headerTimeoutMs, headerTimeoutMaxMs, headerMinRate } = this.#limits;
    for (const tracked of this.#all) {
      const received = tracked.socket.bytesRead - tracked.headBytes;
      if (tracked.phase === 'idle') {
        if (received > 0) {
          tracked.phase = 'head';
          tracked.headStart = now;
        }
        continue;
      }
      if (tracked.phase !== 'head') continue;
      const extension = headerMinRate > 0 ? (received / headerMinRate) * 1000 : 0;
      const allowed = Math.min(headerTimeoutMaxMs, headerTimeoutMs + extension);
      if (now - tracked.headStart > allowed) {
        this.#dropped.slowHead++;
        tracked.socket.destroy();
      }
    }
    this.#report(now);
  }

  /** Drops are logged as counts, once per interval: a flood must not become a flood of log lines. */
  #report(now: number): void {
    const dropped = this.#dropped;
    if (now - dropped.since < LOG_INTERVAL_MS) return;
    if (dropped.perAddress + dropped.shed + dropped.full + dropped.slowHead > 0) {
      this.#log.warn('connections dropped', {
        overPerAddressLimit: dropped.perAddress,
        shedForNewcomers: dropped.shed,
        refusedFull: dropped.full,
        slowRequestHead: dropped.slowHead,
      });
    }
    this.#dropped = { perAddress: 0, shed: 0, full: 0, slowHead: 0, since: now };
  }
}

function peerOf(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}
