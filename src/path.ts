/**
 * The `^` path grammar, in one place: key paths (store/keypath.ts), channel and key patterns
 * (pubsub/pattern.ts), the subscription trie (pubsub/trie.ts) and permission patterns
 * (auth/pattern.ts) all take the separator, the limits, the wildcards and the `$` rule from here.
 * A top-level module so every room may import it without reaching into another.
 *
 *   path      segments joined by `^`, an optional leading `^` (MUMPS writes `^users`), no empty
 *             segment, no control character (U+0000-U+001F, U+007F)
 *   pattern   a path whose segments may be `*` (exactly one segment) or, last, `>` (one or more)
 *   `$`       a first segment starting with `$` is reserved (server channels such as `$sys^...`):
 *             only a pattern that spells that first segment out reaches it, never `*` or `>`
 */

export const SEPARATOR = '^';
/** `SEPARATOR` as a UTF-16 code unit, for scanning loops. */
export const SEPARATOR_CODE = 0x5e;

/** Longest canonical key path, in UTF-16 code units. */
export const MAX_PATH_LENGTH = 1024;
/** Most segments in a path. */
export const MAX_PATH_DEPTH = 32;

/** A pattern segment matching exactly one segment. */
export const ONE = '*';
/** A final pattern segment matching one or more segments. */
export const REST = '>';

/** A path whose first segment starts with this is reserved (server-only channels). */
export const RESERVED_PREFIX = '$';
const RESERVED_CODE = 0x24;
/** The first segment of the server's own channels. */
export const SYSTEM_SEGMENT = '$sys';

/** Control characters are refused in every segment. */
export function isControl(code: number): boolean {
  return code < 0x20 || code === 0x7f;
}

/** Whether a canonical path's first segment is reserved (starts with `$`). */
export function isReserved(canonical: string): boolean {
  return canonical.charCodeAt(0) === RESERVED_CODE;
}

/**
 * The other half of the reserved rule: whether a pattern starting with `first` may reach a
 * reserved path at all. Only one that spells the first segment out may; a leading `*` or `>`
 * never does, so no wildcard subscription or permission stumbles into `$sys`.
 */
export function mayReachReserved(first: string): boolean {
  return first !== ONE && first !== REST;
}

/** Whether a canonical channel is under `$sys`. */
export function isSystemChannel(canonical: string): boolean {
  return (
    canonical.startsWith(SYSTEM_SEGMENT) &&
    (canonical.length === SYSTEM_SEGMENT.length ||
      canonical.charCodeAt(SYSTEM_SEGMENT.length) === SEPARATOR_CODE)
  );
}

/** Segments of a canonical path (the root, `''`, has none). */
export function segmentsOf(canonical: string): string[] {
  return canonical === '' ? [] : canonical.split(SEPARATOR);
}
