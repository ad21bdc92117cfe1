import type { JsonText } from './store.js';

/**
 * Whether two JSON texts denote the same value (CAS): objects compare by their members whatever
 * the order (`{"a":1,"b":2}` equals `{"b":2,"a":1}`), arrays by position, numbers by value (`1`
 * equals `1.0`). Identical text, the common case, is decided without parsing.
 */
export function jsonTextEqual(a: JsonText, b: JsonText): boolean {
  return a === b || jsonEqual(JSON.parse(a), JSON.parse(b));
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const aIsArray = Array.isArray(a);
  if (aIsArray !== Array.isArray(b)) return false;
  if (aIsArray) {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!jsonEqual(x[i], y[i])) return false;
    return true;
  }
  // JSON.parse makes plain objects whose members are all own and enumerable (even "__proto__").
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(y, key) || !jsonEqual(x[key], y[key])) return false;
  }
  return true;
}
