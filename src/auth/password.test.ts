import { describe, expect, it } from 'vitest';
import { hashPassword, parseHash, verifyPassword } from './password.js';

describe('password hashes', () => {
  it('hashes into a self-describing scrypt string that verifies only the right password', async () => {
    const text = await hashPassword('correct horse');
    expect(text).toMatch(/^scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const hash = parseHash(text);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('correct horsf', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
    // Two hashes of one password differ (random salt).
    expect(await hashPassword('correct horse')).not.toBe(text);
  });

  it('normalizes Unicode so the same password typed differently verifies', async () => {
    const hash = parseHash(await hashPassword('caf\u00e9'));
    expect(await verifyPassword('cafe\u0301', hash)).toBe(true);
  });

  it('never verifies an unknown user (the dummy hash does the same work)', async () => {
    expect(await verifyPassword('anything', undefined)).toBe(false);
  });

  it.each([
    ['hunter2', /scrypt hash/],
    ['scrypt$N=1000,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /power of 2/],
    // Issue 14.7: below the documented minimum cost a leaked hash is cheap to brute-force.
    ['scrypt$N=2,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /below the minimum N=16384,r=8/],
    ['scrypt$N=8192,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /below the minimum/],
    ['scrypt$N=16384,r=4,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /below the minimum/],
    ['scrypt$N=16384,r=0,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /r must be/],
    ['scrypt$N=1048576,r=32,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==', /256 MiB/],
    ['scrypt$N=16384,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==', /salt/],
  ])('refuses %s', (text, reason) => {
    expect(() => parseHash(text)).toThrow(reason);
  });
});
