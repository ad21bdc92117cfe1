/**
 * What the CLI knows about each action, read from the protocol schema (the single source of truth):
 * its fields, their types and descriptions, and how positional arguments map onto them. Nothing here
 * repeats the action list; a new action in the schema is usable from the CLI the moment it exists.
 */
import type { TSchema } from '@sinclair/typebox';
import { ACTIONS, type ActionSpec } from '../../protocol/schema.js';

/**
 * How `ACTION arg1 arg2 ...` fills the request: `fields` in order, then either `rest` (every
 * remaining argument into one array field, `MGET a b c`) or `pairs` (remaining arguments as
 * key/value pairs into one object field, `MSET a 1 b 2`).
 */
export interface Positional {
  readonly fields: readonly string[];
  readonly rest?: string;
  readonly pairs?: string;
}

/**
 * The few actions whose positional form is not "the required fields, in schema order" (see
 * `derivedPositional`). Every other action, including ones added to the schema later, takes its
 * required fields positionally. cli spec tests check each entry against the schema.
 */
export const POSITIONAL_OVERRIDES: Readonly<Record<string, Positional>> = {
  // `INCR n 2`, as redis-cli users type INCRBY.
  INCR: { fields: ['key', 'by'] },
  // `KEYS users`: listing a namespace is the common case; paging by position is the rare one.
  KEYS: { fields: ['namespace', 'after', 'limit'] },
  NAMESPACES: { fields: ['namespace', 'after', 'limit'] },
  COUNT: { fields: ['namespace'] },
};

export interface FieldInfo {
  readonly name: string;
  readonly required: boolean;
  readonly schema: TSchema;
  /** The argument is always taken as text, never parsed as JSON (`GET 42` means the key "42"). */
  readonly text: boolean;
}

export interface ActionInfo {
  readonly name: string;
  readonly spec: ActionSpec;
  /** Request fields besides `action` and `id`, in schema order. */
  readonly fields: readonly FieldInfo[];
  readonly positional: Positional;
}

/** Action names as the schema lists them (upper case). */
export const ACTION_NAMES: readonly string[] = Object.keys(ACTIONS);

const cache = new Map<string, ActionInfo>();

/** The action named `name` (any case), or undefined when the schema has none by that name. */
export function actionInfo(name: string): ActionInfo | undefined {
  const upper = name.toUpperCase();
  const cached = cache.get(upper);
  if (cached) return cached;
  if (!Object.hasOwn(ACTIONS, upper)) return undefined;
  const spec = (ACTIONS as Record<string, ActionSpec>)[upper]!;
  const schema = spec.request as TSchema & { properties?: Record<string, TSchema>; required?: string[] };
  const required = new Set(schema.required ?? []);
  const fields: FieldInfo[] = Object.entries(schema.properties ?? {})
    .filter(([field]) => field !== 'action' && field !== 'id')
    .map(([field, s]) => ({ name: field, required: required.has(field), schema: s, text: isText(s) }));
  const info: ActionInfo = {
    name: upper,
    spec,
    fields,
    positional: POSITIONAL_OVERRIDES[upper] ?? derivedPositional(fields),
  };
  cache.set(upper, info);
  return info;
}

/**
 * The default positional form: the required fields in schema order, where a last field that is an
 * array takes every remaining argument and a last field that is an object takes key/value pairs.
 * An optional array that is the action's only array takes the rest too (`UNSUBSCRIBE a b`).
 */
export function derivedPositional(fields: readonly FieldInfo[]): Positional {
  const required = fields.filter((f) => f.required).map((f) => f.name);
  const last = fields.find((f) => f.name === required[required.length - 1]);
  if (last && typeOf(last.schema) === 'array') return { fields: required.slice(0, -1), rest: last.name };
  if (last && typeOf(last.schema) === 'object') return { fields: required.slice(0, -1), pairs: last.name };
  const arrays = fields.filter((f) => typeOf(f.schema) === 'array');
  if (arrays.length === 1 && !arrays[0]!.required) return { fields: required, rest: arrays[0]!.name };
  return { fields: required };
}

/** Strings (keys, namespaces, cursors, channels) and arrays of strings are taken as typed. */
function isText(schema: TSchema): boolean {
  const type = typeOf(schema);
  if (type === 'string') return true;
  if (type === 'array') return typeOf((schema as { items?: TSchema }).items) === 'string';
  return false;
}

/** The JSON Schema `type` of a field, or undefined when it admits several types or any value. */
export function typeOf(schema: TSchema | undefined): string | undefined {
  const type = (schema as { type?: unknown } | undefined)?.type;
  return typeof type === 'string' ? type : undefined;
}

/** A short type name for help and usage lines. */
export function typeName(schema: TSchema): string {
  const s = schema as { type?: unknown; enum?: unknown[]; const?: unknown; anyOf?: TSchema[] };
  if (Array.isArray(s.enum)) return s.enum.map(String).join('|');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.anyOf)) return s.anyOf.map(typeName).join('|');
  if (Array.isArray(s.type)) return s.type.join('|');
  if (s.type === 'array') {
    const items = typeOf((schema as { items?: TSchema }).items);
    return items ? `${items}[]` : 'array';
  }
  return typeof s.type === 'string' ? s.type : 'json';
}
