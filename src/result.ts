/**
 * Results that may or may not be promises, and domain failures returned as values: shared by
 * every layer that runs requests (commands, auth, the protocol pipeline), so none of them has to
 * import another's module for them.
 */
import type { ErrorCode } from './protocol/errors.js';

/** Synchronous engines (the in-memory store) answer without a promise; others with one. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * A domain failure returned (not thrown) by a handler, e.g. KEY_NOT_FOUND on a GET miss: misses
 * are routine, and an Error would capture a stack each time. Shared instances are fine.
 */
export class Fail {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
  ) {}
}

/**
 * Applies `f` to a result that may or may not be a promise, without allocating on the synchronous
 * path. `f` should be a module-level function (no closure per request); `arg` carries what it needs.
 */
export function andThen<T, R, A = undefined>(
  value: MaybePromise<T>,
  f: (value: T, arg: A) => R,
  arg?: A,
): MaybePromise<R> {
  if (isThenable(value)) return value.then((v) => f(v, arg as A));
  return f(value, arg as A);
}

export function isThenable<T>(value: MaybePromise<T> | unknown): value is Promise<T> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}
