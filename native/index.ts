// Typed loader of the privdav_native addon (native/src/privdav_native.c): the Linux system calls
// Node does not expose. Errors thrown are Node-style system errors (err.code = 'EEXIST', ...).
import fs from 'node:fs';
import path from 'node:path';

declare const pollHandleBrand: unique symbol;
/** An opaque libuv poll handle on a channel's socket; only the functions below accept it. */
export interface PollHandle {
  readonly [pollHandleBrand]: never;
}

/** The raw channel primitives helper/channel.ts is built on; nothing else should need them. */
export interface ChannelBinding {
  /** Bytes sent, or -errno (-EAGAIN when the socket is full). Closes `fds` once they are sent. */
  sendmsg(fd: number, payload: Buffer, fds: readonly number[] | null): number;
  /** Bytes received, or -errno. out[0] = msg_flags, out[1] = fd count, out[2...] = fds (CLOEXEC). */
  recvmsg(fd: number, buffer: Buffer, out: Int32Array): number;
  /** The socket's pending error as -errno, clearing it; 0 if none. */
  socketError(fd: number): number;
  /** Starts watching `fd` (sets O_NONBLOCK); refuses anything but a SEQPACKET socket. */
  /** `callback(status, events)`: status < 0 (libuv's UV_EBADF for POLLERR) means polling stopped. */
  pollOpen(fd: number, callback: (status: number, events: number) => void): PollHandle;
  /** Polls for constants.UV_READABLE | UV_WRITABLE, or stops with 0. */
  pollSet(handle: PollHandle, events: number): void;
  pollRef(handle: PollHandle, keepAlive: boolean): void;
  /** Stops polling, then closes the fd. Idempotent. */
  pollClose(handle: PollHandle): void;
  readonly constants: {
    readonly UV_READABLE: number;
    readonly UV_WRITABLE: number;
    readonly MSG_TRUNC: number;
    readonly MSG_CTRUNC: number;
    readonly SCM_MAX_FD: number;
  };
}

interface Addon extends ChannelBinding {
  socketpair(): [number, number];
  tcpListen(host: string, port: number, backlog: number): number;
  linkTmpfile(fd: number, newPath: string): void;
  setNoNewPrivs(): void;
  closeFd(fd: number): void;
  dupFd(fd: number): number;
}

// Compiled code runs from dist/native/, sources from native/: both sit below the package root.
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`privdav_native: no package.json above ${start}`);
  }
}

const addonPath = path.join(findPackageRoot(__dirname), 'native', 'build', 'Release', 'privdav_native.node');
// A .node file can only be loaded with require.
const addon = require(addonPath) as Addon;

/** A connected AF_UNIX SOCK_SEQPACKET pair, both ends close-on-exec. */
export function socketpair(): [number, number] {
  return addon.socketpair();
}

/**
 * A listening TCP socket (SO_REUSEADDR; IPV6_V6ONLY for IPv6; close-on-exec; non-blocking) on a
 * numeric IPv4/IPv6 host ("::1" or "[::1]"). Returns the fd; port 0 picks a free port.
 */
export function tcpListen(host: string, port: number, backlog: number): number {
  return addon.tcpListen(host, port, backlog);
}

/** Gives an O_TMPFILE file a name (fails with EEXIST if `newPath` exists: never replaces). */
export function linkTmpfile(fd: number, newPath: string): void {
  addon.linkTmpfile(fd, newPath);
}

/** prctl(PR_SET_NO_NEW_PRIVS, 1): this process and its children can never gain privileges by exec. */
export function setNoNewPrivs(): void {
  addon.setNoNewPrivs();
}

/** close(2). Throws EBADF for a descriptor that is not open. */
export function closeFd(fd: number): void {
  addon.closeFd(fd);
}

/** A close-on-exec duplicate of `fd` (fcntl F_DUPFD_CLOEXEC), e.g. to keep a descriptor one is about to send. */
export function dupFd(fd: number): number {
  return addon.dupFd(fd);
}

export const channelBinding: ChannelBinding = addon;
