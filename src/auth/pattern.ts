/**
 * Permission patterns over `^` paths (keys and channels). The rules are pub/sub's, and live in
 * src/pubsub/pattern.ts: a segment that is exactly `*` matches one segment, a final `>` one or more,
 * and on channels a pattern whose first segment is a wildcard never reaches a reserved (`$`) channel.
 * The syntax check (pub/sub's parser), the wildcards, the separator and the reserved-channel rule
 * are all taken from there, so the two cannot drift; pattern-agreement.test.ts checks that both
 * accept and match alike.
 *
 * What this module adds is what permissions need on every request and pub/sub never asks: a
 * compiled pattern matches without splitting the subject (no allocation), says whether it covers
 * every path another matches (`covers`), and whether it could match anything below a namespace
 * (`mayMatchBelow`).
 */
import { isReserved, mayReachReserved, ONE, REST, SEPARATOR } from '../path.js';
import { type PathRules, PatternError, parsePattern } from '../pubsub/pattern.js';

/**
 * One permission guards keys and channels alike, so it takes neither family's length or depth
 * limit: a pattern longer or deeper than every valid path is harmless, it simply matches none.
 */
const PERMISSION_RULES: PathRules = {
  noun: 'path',
  maxLength: Number.POSITIVE_INFINITY,
  maxDepth: Number.POSITIVE_INFINITY,
  reserved: false,
};
const FIELD = 'pattern';

export class PatternSyntaxError extends Error {
  override name = 'PatternSyntaxError';
}

export class PathPattern {
  /** Canonical text (no leading `^`). */
  readonly text: string;
  /** Segments before a final `>` (which is kept in `rest`). */
  readonly segments: readonly string[];
  /** Ends with `>`: matches one or more further segments. */
  readonly rest: boolean;
  /** The first segment is a wildcard (so it never matches a reserved channel). */
  readonly wildFirst: boolean;

  constructor(input: string) {
    const parsed = parsePattern(input, PERMISSION_RULES, FIELD);
    // The caller names the field (`users.app.read[0]`), so the parser's own name is dropped.
    if (parsed instanceof PatternError) throw new PatternSyntaxError(parsed.message.slice(FIELD.length + 2));
    const segments = parsed.segments;
    this.text = parsed.text;
    this.rest = segments[segments.length - 1] === REST;
    this.segments = this.rest ? segments.slice(0, -1) : segments;
    this.wildFirst = !mayReachReserved(segments[0]!);
  }

  /**
   * Whether this pattern matches a canonical path. `reserved`: the path is a channel, so a `$`
   * first segment is off-limits to wildcard-first patterns.
   */
  matches(path: string, reserved = false): boolean {
    if (reserved && this.wildFirst && isReserved(path)) return false;
    const segs = this.segments;
    const len = path.length;
    let pos = 0;
    for (let i = 0; i < segs.length; i++) {
      if (pos > len) return false;
      let end = path.indexOf(SEPARATOR, pos);
      if (end === -1) end = len;
      const seg = segs[i]!;
      if (seg !== ONE && (end - pos !== seg.length || !path.startsWith(seg, pos))) return false;
      pos = end + 1;
    }
    // `>` needs at least one segment left; otherwise the path must be used up exactly.
    return this.rest ? pos < len : pos === len + 1;
  }

  /**
   * Whether every path `other` matches is matched by this pattern (so allowing this pattern
   * allows subscribing to / observing / counting `other`). Conservative: false when unsure.
   */
  covers(other: PathPattern, reserved = false): boolean {
    if (reserved && this.wildFirst && !other.wildFirst && isReserved(other.segments[0]!)) {
      return false;
    }
    const mine = this.segments;
    const theirs = other.segments;
    for (let i = 0; i < theirs.length; i++) {
      // Our `>` takes whatever is left, as long as something is.
      if (i >= mine.length) return this.rest;
      const m = mine[i]!;
      const t = theirs[i]!;
      if (m !== ONE && m !== t) return false;
    }
    if (other.rest) {
      // Theirs goes on for one or more segments: only our `>` at the same place covers that.
      return this.rest && mine.length === theirs.length;
    }
    return !this.rest && mine.length === theirs.length;
  }

  /**
   * Whether this pattern could match some path strictly below `namespace` (canonical; `''` is the
   * root). Used to decide which child namespaces a user may see listed.
   */
  mayMatchBelow(namespace: string): boolean {
    const segs = this.segments;
    let i = 0;
    if (namespace !== '') {
      let pos = 0;
      const len = namespace.length;
      while (pos <= len) {
        if (i >= segs.length) return this.rest;
        let end = namespace.indexOf(SEPARATOR, pos);
        if (end === -1) end = len;
        const seg = segs[i]!;
        if (seg !== ONE && (end - pos !== seg.length || !namespace.startsWith(seg, pos))) return false;
        pos = end + 1;
        i++;
      }
    }
    // The namespace is used up: anything still to match is at least one more segment.
    return i < segs.length || this.rest;
  }
}

/** A list of allow patterns; empty allows nothing. */
export class PatternSet {
  readonly patterns: readonly PathPattern[];
  /** Contains `>`: allows every path (every unreserved one, for channels). */
  readonly all: boolean;

  constructor(sources: readonly string[]) {
    this.patterns = sources.map((s) => new PathPattern(s));
    this.all = this.patterns.some((p) => p.rest && p.segments.length === 0);
  }

  matches(path: string, reserved = false): boolean {
    if (this.all && !(reserved && isReserved(path))) return true;
    for (const p of this.patterns) if (p.matches(path, reserved)) return true;
    return false;
  }

  covers(pattern: PathPattern, reserved = false): boolean {
    for (const p of this.patterns) if (p.covers(pattern, reserved)) return true;
    return false;
  }

  mayMatchBelow(namespace: string): boolean {
    if (this.all) return true;
    for (const p of this.patterns) if (p.mayMatchBelow(namespace)) return true;
    return false;
  }
}

/** Whether a canonical channel is the server's (first segment starts with `$`): pub/sub's rule. */
export { isReserved as isReservedChannel };
