/**
 * Peer addresses, as protected mode and per-address limits see them. Node reports IPv4 peers of a
 * dual-stack listener as IPv4-mapped IPv6 (`::ffff:10.0.0.5`); both spellings are one address.
 */
import net from 'node:net';

/** `::ffff:1.2.3.4` -> `1.2.3.4`; other addresses unchanged (lower-cased). */
export function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && net.isIPv4(lower.slice(7))) return lower.slice(7);
  return lower;
}

/** Whether a peer address is the loopback interface (127.0.0.0/8, ::1, or their mapped forms). */
export function isLoopback(address: string): boolean {
  const a = normalizeAddress(address);
  if (net.isIPv4(a)) return a.startsWith('127.');
  return a === '::1' || a === '0:0:0:0:0:0:0:1';
}

/** Whether a listen host binds only loopback (`127.0.0.1`, `::1`, `localhost`). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || (net.isIP(host) !== 0 && isLoopback(host));
}
