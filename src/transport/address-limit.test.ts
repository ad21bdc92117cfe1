import { describe, expect, it } from 'vitest';
import { AddressLimit } from './address-limit.js';

describe('AddressLimit', () => {
  it('counts connections per address up to the limit, and frees slots on release', () => {
    // The server's policy strips the IPv4-mapped prefix; any key function works here.
    const limit = new AddressLimit(2, (address) => address.replace(/^::ffff:/, ''));
    const a = limit.acquire('10.0.0.1');
    expect(a).toBe('10.0.0.1');
    // IPv4-mapped IPv6 is the same address.
    expect(limit.acquire('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(limit.acquire('10.0.0.1')).toBe(false);
    expect(limit.acquire('10.0.0.2')).toBe('10.0.0.2');
    limit.release(a as string);
    expect(limit.acquire('10.0.0.1')).toBe('10.0.0.1');
    limit.release('10.0.0.1');
    limit.release('10.0.0.1');
    limit.release('10.0.0.2');
    expect(limit.addresses).toBe(0);
  });

  it('does not count exempt addresses, nor anything when the limit is 0', () => {
    const limit = new AddressLimit(1, (address) => (address === '127.0.0.1' ? null : address));
    for (let i = 0; i < 5; i++) expect(limit.acquire('127.0.0.1')).toBeUndefined();
    expect(new AddressLimit(0).acquire('10.0.0.1')).toBeUndefined();
    expect(limit.addresses).toBe(0);
  });
});
