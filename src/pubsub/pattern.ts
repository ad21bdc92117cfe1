/**
 * Channel names and subscription patterns: the one home of their rules. Permissions follow the
 * same rules (a user allowed `news^*` may receive exactly what a subscription to `news^*` does), so
 * auth/pattern.ts parses with `parsePattern` (without length or depth limits), takes the wildcards,
 * separator and reserved-channel rule from here, and adds only what permission checks need (an
 * allocation-free matcher, `covers`, `mayMatchBelow`); auth/pattern-agreement.test.ts checks that
 * the two read every pattern the same way.
 *
 * - Channels are `^` paths, written like keys (store/keypath.ts): segments joined by `^`, an optional
 *   leading `^`, no empty segment, no control character (U+0000–U+001F, U+007F). The canonical form
 *   has no leading `^`.
 * - In a pattern, a segment that is exactly `*` matches exactly one segment, and a final segment
 *   that is exactly `>` matches one or more trailing segments (NATS's wildcards):
 *   `news^*` matches `news^eu` but not `news` or `news^eu^fr`; `orders^eu^>` matches
 *   `orders^eu^1` and `orders^eu^1^lines` but not `orders^eu`. `>` anywhere but last is refused.
 *   `*` or `>` inside a longer segment (`a*b`) is an ordinary character.
 * - A channel to publish to names no wildcard: `news^*` is refused as a PUBLISH channel, so what a
 *   subscriber sees in `channel` is always a concrete name.
 * - Reserved channels: a channel whose first segment starts with `$` belongs to the server
 *   (`$sys^shutdown`, `$sys^server^...`). Clients may subscribe to them but never publish there,
 *   and a pattern whose first segment is a wildcard never matches them: only a pattern that spells
 *   the first segment out (`$sys^>`) does. This is the lesson of Darwin notifications
 *   (CVE-2025-24091), where anyone could post a system name. The whole `$` prefix is reserved, not
 *   just `$sys`, so that look-alikes (`$SYS`, `$Sys`) cannot be posted to fool a careless
 *   subscriber, and so later system namespaces need no migration.
 * - Key patterns (OBSERVE) follow the same syntax with the key limits; keys have no reserved prefix.
 *
 * Failures are returned (`PatternError`), not thrown: bad input is routine, and the caller turns
 * the message (which names the field) into a protocol error.
 */

import {
  isControl,
  isReserved,
  MAX_PATH_DEPTH,
  MAX_PATH_LENGTH,
  mayReachReserved,
  ONE,
  REST,
  SEPARATOR,
  SEPARATOR_CODE,
  segmentsOf,
} from '../path.js';
import { PATH_QUOTE_MAX, quote } from '../quote.js';

// The grammar lives in src/path.ts; these names are re-exported for the pub/sub room's users.
export {
  isReserved,
  isSystemChannel,
  mayReachReserved,
  ONE,
  RESERVED_PREFIX,
  REST,
  SEPARATOR,
  SYSTEM_SEGMENT,
} from '../path.js';

const CARET = SEPARATOR_CODE;

/** Limits and flavour of a family of paths. */
export interface PathRules {
  /** Noun used in messages: `channel` or `key`. */
  readonly noun: string;
  /** Longest canonical path, in UTF-16 code units. */
  readonly maxLength: number;
  /** Most segments. */
  readonly maxDepth: number;
  /** Whether `$`-prefixed first segments are reserved (channels yes, keys no). */
  readonly reserved: boolean;
}

export const DEFAULT_CHANNEL_MAX_LENGTH = 256;

export function channelRules(maxLength: number = DEFAULT_CHANNEL_MAX_LENGTH): PathRules {
  return { noun: 'channel', maxLength, maxDepth: MAX_PATH_DEPTH, reserved: true };
}

/** Key patterns accept exactly the keys keypath.ts accepts (plus wildcards). */
export const KEY_PATTERN_RULES: PathRules = {
  noun: 'key',
  maxLength: MAX_PATH_LENGTH,
  maxDepth: MAX_PATH_DEPTH,
  reserved: false,
};

/** A refused channel or pattern; `message` names the field and says what is wrong. */
export class PatternError {
  constructor(readonly message: string) {}
}

/** A validated pattern. Exact patterns (no wildcard) are patterns too. */
export interface Pattern {
  /** Canonical text (no leading `^`): the subscription's identity and what pushes report. */
  readonly text: string;
  readonly segments: readonly string[];
  /** Whether any segment is `*` or `>`. */
  readonly wildcard: boolean;
}

/**
 * Checks the shared syntax and returns the canonical text, or the failure. One scan, no
 * allocation for canonical input; the length check runs first so a hostile megabyte is not scanned.
 */
function scan(input: string, rules: PathRules, field: string, example: string): string | PatternError {
  const start = input.charCodeAt(0) === CARET ? 1 : 0;
  const length = input.length - start;
  if (length === 0)
    return new PatternError(`${field}: must not be empty (give a ${rules.noun} such as ${example})`);
  if (length > rules.maxLength) {
    return new PatternError(`${field}: longer than ${rules.maxLength} characters (got ${length})`);
  }
  let depth = 1;
  let segmentStart = start;
  for (let i = start; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (c === CARET) {
      if (i === segmentStart) break;
      depth++;
      segmentStart = i + 1;
    } else if (isControl(c)) {
      const code = c.toString(16).toUpperCase().padStart(4, '0');
      return new PatternError(
        `${field}: control character U+${code} in segment ${depth} of ${quote(input, PATH_QUOTE_MAX)} (not allowed in ${rules.noun} names)`,
      );
    }
  }
  if (segmentStart === input.length || input.charCodeAt(segmentStart) === CARET) {
    return new PatternError(
      `${field}: empty segment at position ${depth} in ${quote(input, PATH_QUOTE_MAX)} (segments are joined by ^ and must not be empty)`,
    );
  }
  if (depth > rules.maxDepth) {
    return new PatternError(`${field}: deeper than ${rules.maxDepth} segments (got ${depth})`);
  }
  return start === 0 ? input : input.slice(1);
}

/** Validates a subscription pattern (`news^*`, `orders^eu^>`, or an exact channel or key). */
export function parsePattern(input: string, rules: PathRules, field = 'pattern'): Pattern | PatternError {
  const text = scan(input, rules, field, rules.noun === 'key' ? '"users^>"' : '"news^>"');
  if (typeof text !== 'string') return text;
  const segments = text.split(SEPARATOR);
  let wildcard = false;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === REST) {
      if (i !== segments.length - 1) {
        return new PatternError(
          `${field}: ">" must be the last segment (it matches every remaining segment), but ${quote(text, PATH_QUOTE_MAX)} has it at segment ${i + 1}`,
        );
      }
      wildcard = true;
    } else if (segment === ONE) {
      wildcard = true;
    }
  }
  return { text, segments, wildcard };
}

/** Validates a channel to publish to: a concrete name, no wildcard segment. Returns canonical text. */
export function parseChannel(input: string, rules: PathRules, field = 'channel'): string | PatternError {
  const text = scan(input, rules, field, '"news^sports"');
  if (typeof text !== 'string') return text;
  // Wildcards are whole segments, so only one-character segments need a look.
  let segment = 1;
  let segmentStart = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text.charCodeAt(i) === CARET) {
      if (i - segmentStart === 1) {
        const c = text[segmentStart];
        if (c === ONE || c === REST) {
          return new PatternError(
            `${field}: "${c}" is a wildcard, for subscribing; a ${rules.noun} to publish to names every segment (segment ${segment} of ${quote(text, PATH_QUOTE_MAX)})`,
          );
        }
      }
      segment++;
      segmentStart = i + 1;
    }
  }
  return text;
}

/**
 * The reference matcher: whether `pattern` matches a canonical channel or key, segment by segment.
 * The subscription index (trie.ts) is the fast path; this one is the specification it and permissions'
 * compiled matcher (auth/pattern.ts) are tested against.
 */
export function matches(pattern: Pattern, path: string, rules: PathRules): boolean {
  const segs = path.split(SEPARATOR);
  const pat = pattern.segments;
  if (rules.reserved && isReserved(path) && !mayReachReserved(pat[0]!)) return false;
  for (let i = 0; i < pat.length; i++) {
    const p = pat[i]!;
    if (p === REST) return segs.length > i;
    if (i >= segs.length) return false;
    if (p !== ONE && p !== segs[i]) return false;
  }
  return segs.length === pat.length;
}

/**
 * Whether `pattern` could match some key strictly below `namespace` (canonical; `''` is the root):
 * the observers a DROP of that namespace concerns. Any literal segment beyond the namespace can be
 * matched by some key, so only the prefix decides.
 */
export function matchesUnder(pattern: Pattern, namespace: string): boolean {
  const ns = segmentsOf(namespace);
  const pat = pattern.segments;
  for (let i = 0; i < ns.length; i++) {
    const p = pat[i];
    if (p === undefined) return false;
    if (p === REST) return true;
    if (p !== ONE && p !== ns[i]) return false;
  }
  return pat.length > ns.length;
}
