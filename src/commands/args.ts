/**
 * Request fields to store arguments: key paths through the one module that owns their rules
 * (store/keypath.ts), failures as BAD_KEY. Shared by every family that takes keys or namespaces.
 */
import { ProtocolError } from '../protocol/errors.js';
import { LIMITS } from '../protocol/schema.js';
import { joinKey, type KeyPathResult, parseDropNamespace, parseNamespace } from '../store/keypath.js';

function canonical(result: KeyPathResult): string {
  // Thrown rather than returned: a malformed key is the client's mistake and off the fast path.
  if (typeof result !== 'string') throw new ProtocolError('BAD_KEY', result.message);
  return result;
}

/** The canonical key of `{namespace?, key}`. */
export function keyArg(req: { readonly namespace?: string; readonly key: string }): string {
  return canonical(joinKey(req.namespace, req.key));
}

/** A key from a list field (`keys[3]`, `entries`), relative to the request's namespace. */
export function keyAt(namespace: string | undefined, key: string, field: string): string {
  return canonical(joinKey(namespace, key, field));
}

/** The canonical namespace of KEYS / NAMESPACES / COUNT (omitted, `''` and `^` are the root). */
export function namespaceArg(req: { readonly namespace?: string }): string {
  return canonical(parseNamespace(req.namespace));
}

/** The canonical namespace of DROP (the root is refused). */
export function dropNamespaceArg(req: { readonly namespace?: string }): string {
  return canonical(parseDropNamespace(req.namespace));
}

export function limitArg(req: { readonly limit?: number }): number {
  return req.limit ?? LIMITS.defaultPageLimit;
}
