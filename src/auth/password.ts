/**
 * Password hashes: scrypt only, in a self-describing string so parameters can be raised later
 * without breaking existing hashes:
 *
 *   scrypt$N=16384,r=8,p=1$<salt, base64>$<hash, base64>
 *
 * Verification runs scrypt in the libuv pool (never blocking the loop) and compares with
 * timingSafeEqual. An unknown user is verified against a dummy hash with the default parameters,
 * so "no such user" and "wrong password" cost the same time and give the same answer.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Caps a hash from the config file can ask for: N=2^20,r=16 is already 2 GiB of memory. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 256 * 1024 * 1024;
/**
 * The weakest hash accepted (docs/security.md): below N=2^14, r=8 (the scrypt paper's interactive
 * setting, ~16 MiB and tens of ms per guess) a leaked config file is cheap to brute-force offline.
 */
export const MIN_SCRYPT = { N: 2 ** 14, r: 8 } as const;

export interface PasswordHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const FORMAT = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** Parses a stored hash; throws with a message fit for a config error. */
export function parseHash(text: string): PasswordHash {
  const m = FORMAT.exec(text);
  if (m === null) {
    throw new Error(
      'must be a scrypt hash "scrypt$N=..,r=..,p=..$<salt>$<hash>" (make one with `caretkv passwd`)',
    );
  }
  const N = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0)
    throw new Error(`scrypt N must be a power of 2 up to ${MAX_N}`);
  if (r < 1 || r > MAX_R) throw new Error(`scrypt r must be between 1 and ${MAX_R}`);
  if (N < MIN_SCRYPT.N || r < MIN_SCRYPT.r) {
    throw new Error(
      `scrypt cost N=${N},r=${r} is below the minimum N=${MIN_SCRYPT.N},r=${MIN_SCRYPT.r}: re-hash the password with \`caretkv passwd\``,
    );
  }
  if (p < 1 || p > MAX_P) throw new Error(`scrypt p must be between 1 and ${MAX_P}`);
  if (128 * N * r > MAX_MEMORY) throw new Error('scrypt parameters need more than 256 MiB; lower N or r');
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8) throw new Error('scrypt salt must be at least 8 bytes');
  if (hash.length < 16 || hash.length > 64) throw new Error('scrypt hash must be 16 to 64 bytes');
  return { N, r, p, salt, hash };
}

function derive(password: string, salt: Buffer, length: number, params: { N: number; r: number; p: number }) {
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(
      password.normalize('NFC'),
      salt,
      length,
      { N: params.N, r: params.r, p: params.p, maxmem: 128 * params.N * params.r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/** A new hash string for `password`, with a random salt. */
export async function hashPassword(
  password: string,
  params: { N: number; r: number; p: number } = DEFAULT_SCRYPT,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, HASH_BYTES, params);
  return `scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Stands in for an unknown user's hash: the same work as a real default-parameter hash. */
const DUMMY: PasswordHash = {
  ...DEFAULT_SCRYPT,
  salt: randomBytes(SALT_BYTES),
  hash: randomBytes(HASH_BYTES),
};

/** Whether `password` matches `stored` (undefined: unknown user; then always false, same cost). */
export async function verifyPassword(password: string, stored: PasswordHash | undefined): Promise<boolean> {
  const target = stored ?? DUMMY;
  const derived = await derive(password, target.salt, target.hash.length, target);
  return timingSafeEqual(derived, target.hash) && stored !== undefined;
}
