/**
 * Key paths: the one home of the namespace rules (every layer that touches a key asks this module).
 *
 * - A key path is segments joined by `^`, with an optional leading `^` (MUMPS writes globals as
 *   `^users`): `^users^42^name` and `users^42^name` are the same key. The canonical form has no
 *   leading `^`; the store only ever sees canonical paths.
 * - The namespace of a key is every segment but the last; a key without `^` lives in the root
 *   namespace, whose canonical path is `''`.
 * - A key needs at least one segment; a namespace path may have zero (the root). So for the
 *   `namespace` field of KEYS / NAMESPACES / COUNT, an omitted value, `''` and `'^'` (a lone leading
 *   caret followed by nothing) all mean the root.
 * - DROP refuses the root (`parseDropNamespace`): Redis users wipe everything with a separate,
 *   deliberate FLUSHALL, and MUMPS has no "kill every global" either, so an empty or forgotten
 *   namespace must never turn a DROP into "delete the whole database".
 * - `{namespace: 'users', key: '42'}` is `users^42`: `key` is then relative and must not start with
 *   `^` (it would be ambiguous whether it was meant as absolute).
 * - Empty segments (`a^^b`, `a^`, `^`, `''`) and control characters (U+0000–U+001F, U+007F) are
 *   refused; so are paths longer than KEY_MAX_LENGTH UTF-16 units or deeper than KEY_MAX_DEPTH
 *   segments (both measured on the canonical form).
 *
 * Failures are returned, not thrown (`KeyPathError`), so the hot path pays for no exception
 * machinery; the message names the field and says what is wrong. Valid canonical input is checked
 * in one scan and returned as the same string (no split/join allocation).
 */
import { isControl, MAX_PATH_DEPTH, MAX_PATH_LENGTH, SEPARATOR, SEPARATOR_CODE } from '../path.js';
import { PATH_QUOTE_MAX, quote } from '../quote.js';

/** The grammar's separator and limits (src/path.ts), under the names keys have always used. */
export const KEY_SEPARATOR = SEPARATOR;
/** Longest canonical key or namespace path, in UTF-16 code units (like `String#length`). */
export const KEY_MAX_LENGTH = MAX_PATH_LENGTH;
/** Most segments in a canonical key or namespace path. */
export const KEY_MAX_DEPTH = MAX_PATH_DEPTH;

const CARET = SEPARATOR_CODE;

/** A refused key path; `message` is ready for a BAD_KEY response. */
export class KeyPathError {
  constructor(readonly message: string) {}
}

/** The canonical path, or why the input is not one. */
export type KeyPathResult = string | KeyPathError;

export function isKeyPathError(result: KeyPathResult): result is KeyPathError {
  return typeof result !== 'string';
}

/** Quotes user input for a message: JSON escapes make control characters visible; long input is cut. */

function emptySegment(field: string, input: string, segment: number): KeyPathError {
  return new KeyPathError(
    `${field}: empty segment at position ${segment} in ${quote(input, PATH_QUOTE_MAX)} (segments are joined by ^ and must not be empty)`,
  );
}

/**
 * Checks `input` from `start` to its end as a non-empty sequence of segments.
 * Returns the segment count, or the failure. `offset` shifts reported segment positions (for a key
 * joined under a namespace).
 */
function scanSegments(input: string, start: number, field: string, offset: number): number | KeyPathError {
  const end = input.length;
  let depth = 1;
  let segmentStart = start;
  for (let i = start; i < end; i++) {
    const c = input.charCodeAt(i);
    if (c === CARET) {
      if (i === segmentStart) return emptySegment(field, input, depth + offset);
      depth++;
      segmentStart = i + 1;
    } else if (isControl(c)) {
      const code = c.toString(16).toUpperCase().padStart(4, '0');
      return new KeyPathError(
        `${field}: control character U+${code} in segment ${depth + offset} of ${quote(input, PATH_QUOTE_MAX)} (not allowed in key paths)`,
      );
    }
  }
  if (segmentStart === end) return emptySegment(field, input, depth + offset);
  return depth;
}

function tooLong(field: string, length: number): KeyPathError {
  return new KeyPathError(`${field}: longer than ${KEY_MAX_LENGTH} characters (got ${length})`);
}

function tooDeep(field: string, depth: number): KeyPathError {
  return new KeyPathError(`${field}: deeper than ${KEY_MAX_DEPTH} segments (got ${depth})`);
}

/** Validates a key path and returns its canonical form (`^a^b` -> `a^b`). */
export function parseKey(input: string, field = 'key'): KeyPathResult {
  const start = input.charCodeAt(0) === CARET ? 1 : 0;
  if (input.length === start)
    return new KeyPathError(`${field}: must not be empty (give a key such as "users^42")`);
  // Length first: a hostile multi-megabyte key is refused without being scanned.
  if (input.length - start > KEY_MAX_LENGTH) return tooLong(field, input.length - start);
  const depth = scanSegments(input, start, field, 0);
  if (typeof depth !== 'number') return depth;
  if (depth > KEY_MAX_DEPTH) return tooDeep(field, depth);
  return start === 0 ? input : input.slice(1);
}

/**
 * Validates a namespace path for KEYS / NAMESPACES / COUNT. Omitted, `''` and `'^'` are the root
 * (returned as `''`); anything else follows the key rules.
 */
export function parseNamespace(input: string | undefined, field = 'namespace'): KeyPathResult {
  if (input === undefined || input === '' || input === KEY_SEPARATOR) return '';
  return parseKey(input, field);
}

/** Like `parseNamespace`, but the root is refused: see the module comment on why DROP needs a name. */
export function parseDropNamespace(input: string | undefined, field = 'namespace'): KeyPathResult {
  if (input === undefined || input === '' || input === KEY_SEPARATOR) {
    return new KeyPathError(
      `${field}: DROP needs a namespace such as "users"; the root would remove every key, which DROP refuses`,
    );
  }
  return parseKey(input, field);
}

/**
 * Combines an optional namespace with a key: `(undefined, '^a^b')` -> `a^b`, `('users', '42')` ->
 * `users^42`, `('', 'a')` -> `a` (the root). With a namespace, the key is relative: no leading `^`.
 */
export function joinKey(namespace: string | undefined, key: string, field = 'key'): KeyPathResult {
  if (namespace === undefined) return parseKey(key, field);
  const ns = parseNamespace(namespace);
  if (typeof ns !== 'string') return ns;
  if (key.length === 0) return new KeyPathError(`${field}: must not be empty (give a key such as "42")`);
  if (key.charCodeAt(0) === CARET) {
    return new KeyPathError(
      `${field}: must not start with ^ when a namespace is given (it names a key inside that namespace)`,
    );
  }
  if (ns === '') return parseKey(key, field);
  const length = ns.length + 1 + key.length;
  if (length > KEY_MAX_LENGTH) return tooLong(field, length);
  const nsDepth = segmentCount(ns);
  const depth = scanSegments(key, 0, field, 0);
  if (typeof depth !== 'number') return depth;
  if (nsDepth + depth > KEY_MAX_DEPTH) return tooDeep(field, nsDepth + depth);
  return `${ns}^${key}`;
}

/** Segments in a canonical path (`''` has none). */
export function segmentCount(canonical: string): number {
  if (canonical === '') return 0;
  let n = 1;
  for (let i = canonical.indexOf(SEPARATOR); i !== -1; i = canonical.indexOf(SEPARATOR, i + 1)) n++;
  return n;
}

/** The namespace of a canonical key (`''` for the root): `users^42^name` -> `users^42`. */
export function namespaceOf(canonicalKey: string): string {
  const i = canonicalKey.lastIndexOf(KEY_SEPARATOR);
  return i === -1 ? '' : canonicalKey.slice(0, i);
}

/** The last segment of a canonical key: `users^42^name` -> `name`. */
export function nameOf(canonicalKey: string): string {
  const i = canonicalKey.lastIndexOf(KEY_SEPARATOR);
  return i === -1 ? canonicalKey : canonicalKey.slice(i + 1);
}

/** Splits a canonical key into its namespace and name; `joinPath` is the inverse. */
export function splitKey(canonicalKey: string): { namespace: string; name: string } {
  return { namespace: namespaceOf(canonicalKey), name: nameOf(canonicalKey) };
}

/** Joins canonical parts without re-validating: `('', 'a')` -> `a`, `('a', 'b')` -> `a^b`. */
export function joinPath(namespace: string, name: string): string {
  return namespace === '' ? name : `${namespace}^${name}`;
}
