/**
 * Sealed listing cursors. A filtered KEYS/NAMESPACES page must not reveal a name the user may not
 * read, yet its `next` cursor is the last name the store scanned. When that name is hidden, it
 * goes back encrypted (AES-256-GCM, a key made at start): the client passes it back as `after`
 * unchanged and learns nothing. A sealed cursor starts with `^`, which no name segment can contain,
 * so it is never mistaken for a name. Cursors do not survive a restart (the key is per process).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const KEY = randomBytes(32);
const PREFIX = '^c1.';

export function isSealed(cursor: string): boolean {
  return cursor.startsWith(PREFIX);
}

export function seal(name: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', KEY, iv);
  const body = Buffer.concat([cipher.update(name, 'utf8'), cipher.final()]);
  return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** The name inside a sealed cursor, or undefined when it was not made by this process. */
export function unseal(cursor: string): string | undefined {
  const raw = Buffer.from(cursor.slice(PREFIX.length), 'base64url');
  if (raw.length < 28) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', KEY, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
