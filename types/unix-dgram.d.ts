// Types for the parts of `unix-dgram` privdav uses: datagrams to systemd's notify socket (and, in
// the tests, a bound socket that plays systemd).
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
    bind(path: string): void;
    close(): void;
  }
  export function createSocket(
    type: 'unix_dgram',
    onMessage?: (message: Buffer, info: { size: number; path?: string }) => void,
  ): UnixDgramSocket;
}
