// sd_notify(3) for Type=notify units: one datagram to $NOTIFY_SOCKET (READY=1, STATUS=...,
// STOPPING=1). Does nothing when not started by systemd.

import { createSocket } from 'unix-dgram';

export function notifySystemd(state: string): void {
  const target = process.env.NOTIFY_SOCKET;
  if (target === undefined || target === '') return;
  // Abstract sockets are written with a leading "@" and addressed with a leading NUL.
  const path = target.startsWith('@') ? `\0${target.slice(1)}` : target;
  try {
    const socket = createSocket('unix_dgram');
    socket.on('error', () => socket.close());
    const message = Buffer.from(state);
    socket.send(message, 0, message.length, path, () => socket.close());
  } catch {
    // Not fatal: systemd would time the start out and say so.
  }
}
