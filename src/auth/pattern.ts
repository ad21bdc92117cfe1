/**
 * Permission patterns over `^` paths (keys and channels), with pub/sub's wildcards: a segment that
 * is exactly `*` matches exactly one segment; a final segment that is exactly `>` matches one or
 * more trailing segments. `*`/`>` inside a longer segment are ordinary characters.
 *
 * Channels whose first segment starts with `$` (`$sys^...`) are the server's: a pattern whose first
 * segment is a wildcard never matches them, only one that spells the segment out (`$sys^>`) does.
 * Keys have no reserved prefix.
 *
 * These are the same rules as src/pubsub/pattern.ts (written in parallel); the checks here are the
 * ones permissions need on every request, so a compiled pattern matches without splitting the
 * subject (no allocation), and answers the two questions pub/sub never asks: does one pattern
 * cover every path another matches (`covers`), and could it match anything below a namespace
 * (`mayMatchBelow`).
 */

export const ONE = '*';
export const REST = '>';
const CARET = 0x5e;
const DOLLAR = 0x24;

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
    const text = input.charCodeAt(0) === CARET ? input.slice(1) : input;
    if (text === '') throw new PatternSyntaxError('empty pattern (use ">" for everything)');
    const segments = text.split('^');
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      if (s === '')
        throw new PatternSyntaxError(`empty segment at position ${i + 1} in ${JSON.stringify(text)}`);
      if (s === REST && i !== segments.length - 1) {
        throw new PatternSyntaxError(`">" must be the last segment in ${JSON.stringify(text)}`);
      }
      for (let j = 0; j < s.length; j++) {
        const c = s.charCodeAt(j);
        if (c < 0x20 || c === 0x7f)
          throw new PatternSyntaxError(`control character in ${JSON.stringify(text)}`);
      }
    }
    this.text = text;
    this.rest = segments[segments.length - 1] === REST;
    this.segments = this.rest ? segments.slice(0, -1) : segments;
    this.wildFirst = this.rest ? segments.length === 1 || segments[0] === ONE : segments[0] === ONE;
  }

  /**
   * Whether this pattern matches a canonical path. `reserved`: the path is a channel, so a `$`
   * first segment is off-limits to wildcard-first patterns.
   */
  matches(path: string, reserved = false): boolean {
    if (reserved && this.wildFirst && path.charCodeAt(0) === DOLLAR) return false;
    const segs = this.segments;
    const len = path.length;
    let pos = 0;
    for (let i = 0; i < segs.length; i++) {
      if (pos > len) return false;
      let end = path.indexOf('^', pos);
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
    if (reserved && this.wildFirst && !other.wildFirst && other.segments[0]!.charCodeAt(0) === DOLLAR) {
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
        let end = namespace.indexOf('^', pos);
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
    if (this.all && !(reserved && path.charCodeAt(0) === DOLLAR)) return true;
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

/** Whether a canonical channel is the server's (first segment starts with `$`). */
export function isReservedChannel(channel: string): boolean {
  return channel.charCodeAt(0) === DOLLAR;
}
