// Types for the parts of `unix-dgram` privdav uses: one datagram to systemd's notify socket.
declare module 'unix-dgram' {
  import { EventEmitter } from 'node:events';
  export interface UnixDgramSocket extends EventEmitter {
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      path: string,
      callback?: (error?: Error) => void,
    ): void;
    close(): void;
  }
  export function createSocket(type: 'unix_dgram'): UnixDgramSocket;
}
