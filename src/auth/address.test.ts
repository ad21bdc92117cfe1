import { describe, expect, it } from 'vitest';
import { isLoopback, isLoopbackHost, normalizeAddress } from './address.js';

describe('peer addresses (protected mode)', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['10.0.0.1', false],
    ['192.0.2.2', false],
    ['::ffff:192.0.2.2', false],
    ['fe80::1', false],
    ['128.0.0.1', false],
    ['', false],
  ])('%s is loopback: %s', (address, expected) => {
    expect(isLoopback(address)).toBe(expected);
  });

  it('treats IPv4-mapped IPv6 and IPv4 as one address', () => {
    expect(normalizeAddress('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeAddress('2001:DB8::1')).toBe('2001:db8::1');
  });

  it('knows loopback binds', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('::')).toBe(false);
    expect(isLoopbackHost('db.example')).toBe(false);
  });
});
