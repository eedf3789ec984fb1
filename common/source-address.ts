// Client addresses as the login back-off and the connection limits see them: one IPv4 address, or
// one IPv6 network of `ipv6Prefix` bits (a single host usually holds a whole /64, as OpenSSH's
// PerSourceNetBlockSize assumes), and the CIDR lists the configuration names.

import { isIPv4, isIPv6 } from 'node:net';

export interface ParsedAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Cidr extends ParsedAddress {
  prefix: number;
}

/** A numeric address, IPv4-mapped IPv6 ("::ffff:192.0.2.1") read as the IPv4 address it is. Null otherwise. */
export function parseAddress(text: string): ParsedAddress | null {
  if (isIPv4(text)) return { family: 4, bytes: Uint8Array.from(text.split('.').map(Number)) };
  if (!isIPv6(text) || text.includes('%')) return null;
  const bytes = ipv6Bytes(text);
  const mapped =
    bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? { family: 4, bytes: bytes.slice(12) } : { family: 6, bytes };
}

function ipv6Bytes(text: string): Uint8Array {
  let groups: number[];
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (part: string | undefined): number[] => {
    if (part === undefined || part === '') return [];
    const out: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(parseInt(piece, 16));
    }
    return out;
  };
  const left = parse(head);
  if (tail === undefined) groups = left;
  else {
    const right = parse(tail);
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  }
  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    bytes[2 * index] = group >> 8;
    bytes[2 * index + 1] = group & 0xff;
  });
  return bytes;
}

/**
 * The key one client is counted under: "192.0.2.7", or "2001:db8:1:2::/64" for any address of that
 * IPv6 network. Text that is no address (only a hostile web process sends that) is its own key.
 */
export function sourceKey(text: string, ipv6Prefix: number): string {
  const address = parseAddress(text);
  if (address === null) return `?${text}`;
  if (address.family === 4) return address.bytes.join('.');
  const masked = mask(address.bytes, ipv6Prefix);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((masked[i]! << 8) | masked[i + 1]!).toString(16));
  return `${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}/${ipv6Prefix}`;
}

function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** "192.0.2.0/24", "2001:db8::/32" or a single address (all its bits); a problem text when wrong. */
export function parseCidr(text: string): Cidr | string {
  const [addressText, prefixText, extra] = text.split('/');
  const address = addressText === undefined ? null : parseAddress(addressText);
  if (address === null || extra !== undefined) {
    return `${JSON.stringify(text)} is not a numeric address or network ("192.0.2.0/24", "2001:db8::/32")`;
  }
  const bits = address.family === 4 ? 32 : 128;
  if (prefixText === undefined) return { ...address, prefix: bits };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
    return `${JSON.stringify(text)}: the prefix length must be 0 to ${bits}`;
  }
  return { ...address, prefix: Number(prefixText) };
}

export function inCidr(text: string, cidrs: readonly Cidr[]): boolean {
  if (cidrs.length === 0) return false;
  const address = parseAddress(text);
  if (address === null) return false;
  return cidrs.some((cidr) => {
    if (cidr.family !== address.family) return false;
    const a = mask(address.bytes, cidr.prefix);
    const b = mask(cidr.bytes, cidr.prefix);
    return a.every((byte, index) => byte === b[index]);
  });
}
