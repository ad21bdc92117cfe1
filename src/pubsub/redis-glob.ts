/**
 * caretkv channel and key patterns as Redis PSUBSCRIBE globs, for pub/sub across caretkv nodes over
 * Redis (issue 16; the fan-out that uses it is being built on top of it).
 *
 * Redis's glob `*` matches any bytes, `^` included, so a glob can only over-approximate caretkv's
 * segment wildcards: `*` (one segment) and `>` (one or more trailing segments) both become `*`, and
 * every message that arrives is filtered again with caretkv's own rules (`matches` in pattern.ts)
 * before anyone sees it. Literal segments have the glob's special characters (`*`, `?`, `[`, `]`,
 * `\`) escaped, so a name never widens (or narrows) the match. The glob is therefore exact on
 * literals and never misses a message the pattern matches; the re-filter removes the extra ones.
 *
 * Names travel as unit-encoded bytes (store/redis/keys.ts: lossless for lone surrogates, which the
 * client's UTF-8 encoder would replace), after a deployment prefix that keeps several caretkv
 * deployments (and channels and key events) apart on one Redis.
 */
import { encodeUnits } from '../store/redis/keys.js';
import { ONE, type Pattern, REST, SEPARATOR } from './pattern.js';

const GLOB_SPECIAL = /[*?[\]\\]/g;

/** A literal as glob text that matches exactly that literal. */
function escapeGlob(text: string): string {
  return text.replace(GLOB_SPECIAL, (c) => `\\${c}`);
}

/** The Redis channel a caretkv channel (or key, for change events) is published on. */
export function redisChannel(prefix: string, name: string): Buffer {
  return encodeUnits(prefix + name);
}

/**
 * What to subscribe to on Redis for `pattern`: a plain channel (SUBSCRIBE) when it has no
 * wildcard, else a glob (PSUBSCRIBE) that matches every channel the pattern does, and more.
 */
export function redisSubscription(prefix: string, pattern: Pattern): { glob: boolean; name: Buffer } {
  if (!pattern.wildcard) return { glob: false, name: redisChannel(prefix, pattern.text) };
  const segments = pattern.segments.map((s) => (s === ONE || s === REST ? '*' : escapeGlob(s)));
  return { glob: true, name: encodeUnits(escapeGlob(prefix) + segments.join(SEPARATOR)) };
}
