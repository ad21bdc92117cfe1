/**
 * The CLI's input grammar: a line is either a raw JSON request (it starts with `{`), a local
 * command (`help`, `quit`), or `ACTION arg ...` in the style of redis-cli:
 *
 *   SET users^42^name "Ada Lovelace"     positional arguments fill the action's fields (spec.ts)
 *   SET n 5 ttl=1000                     name=value sets a named field
 *   SET k v ifAbsent                     a boolean field's bare name (after the positionals) is true
 *   SET u {"name": "Ada", "tags": [1]}   a JSON object or array may contain spaces
 *
 * An argument is JSON when it parses as JSON, else a string: `5` is a number, `"5"` and `'5'` are
 * strings, `Ada` is a string. Fields the schema types as strings (keys, namespaces) always take the
 * text as typed, so `GET 42` reads the key "42". Double quotes take JSON escapes (`\n`, `\"`,
 * `\u00e9`); single quotes are literal except `\'` and `\\`. Quoted and bare parts of one argument
 * join, as in a shell: `name="Ada Lovelace"`.
 */
import type { RawRequest } from '../../client/index.js';
import { type ActionInfo, actionInfo, type FieldInfo, typeName, typeOf } from './spec.js';

/** Input the CLI refuses before sending anything; `code` is printed like a server error code. */
export class ArgumentError extends Error {
  override name = 'ArgumentError';
  constructor(
    readonly code: 'USAGE' | 'BAD_JSON',
    message: string,
  ) {
    super(message);
  }
}

/** Part of an argument: quoted text is always a string; bare text may be JSON. */
interface Piece {
  readonly text: string;
  readonly quoted: boolean;
}

export interface Token {
  readonly pieces: readonly Piece[];
  /** The argument as typed, for messages. */
  readonly source: string;
}

export const LOCAL_COMMANDS = ['help', 'quit', 'exit'] as const;
export type LocalCommand = (typeof LOCAL_COMMANDS)[number];

export type ParsedLine =
  | { readonly kind: 'empty' }
  | { readonly kind: 'local'; readonly command: LocalCommand; readonly args: readonly string[] }
  | { readonly kind: 'request'; readonly request: RawRequest };

const isSpace = (c: string | undefined): boolean =>
  c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\f' || c === '\v';

const NAMED = /^([A-Za-z_$][\w$]*)=/;
const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/** Split a line into arguments. Throws ArgumentError for an unterminated quote or a bad escape. */
export function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && isSpace(line[i])) i++;
    if (i >= n) break;
    const start = i;
    const pieces: Piece[] = [];
    let bare = '';
    while (i < n && !isSpace(line[i])) {
      const c = line[i]!;
      if (c === '"' || c === "'") {
        if (bare !== '') pieces.push({ text: bare, quoted: false });
        bare = '';
        const [text, end] = c === '"' ? readDouble(line, i) : readSingle(line, i);
        pieces.push({ text, quoted: true });
        i = end;
        continue;
      }
      // A JSON object or array at the start of a value keeps its spaces and quotes. If it never
      // closes, the bracket is just a character (the argument is then a string, or an error later).
      if ((c === '{' || c === '[') && pieces.length === 0 && (bare === '' || NAMED.test(bare))) {
        const end = scanJson(line, i);
        if (end !== -1) {
          bare += line.slice(i, end);
          i = end;
          continue;
        }
      }
      bare += c;
      i++;
    }
    if (bare !== '') pieces.push({ text: bare, quoted: false });
    tokens.push({ pieces, source: line.slice(start, i) });
  }
  return tokens;
}

function readDouble(line: string, open: number): [string, number] {
  let out = '';
  let i = open + 1;
  while (i < line.length) {
    const c = line[i]!;
    if (c === '"') return [out, i + 1];
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = line[i + 1];
    if (e !== undefined && Object.hasOwn(SIMPLE_ESCAPES, e)) {
      out += SIMPLE_ESCAPES[e];
      i += 2;
    } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(line.slice(i + 2, i + 6))) {
      out += String.fromCharCode(Number.parseInt(line.slice(i + 2, i + 6), 16));
      i += 6;
    } else {
      throw new ArgumentError(
        'USAGE',
        `bad escape \\${e ?? ''} in a double-quoted argument (JSON escapes only; single quotes keep backslashes)`,
      );
    }
  }
  throw new ArgumentError('USAGE', `unterminated double quote in ${line.slice(open)}`);
}

function readSingle(line: string, open: number): [string, number] {
  let out = '';
  let i = open + 1;
  while (i < line.length) {
    const c = line[i]!;
    if (c === "'") return [out, i + 1];
    if (c === '\\' && (line[i + 1] === "'" || line[i + 1] === '\\')) {
      out += line[i + 1];
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  throw new ArgumentError('USAGE', `unterminated single quote in ${line.slice(open)}`);
}

/** Index just past the bracket that closes the one at `open`, or -1 when the line ends first. */
function scanJson(line: string, open: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < line.length; i++) {
    const c = line[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{' || c === '[') {
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Bare text as JSON when it is JSON, else as the string it is. */
export function jsonOrString(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ArgumentError(
      'USAGE',
      `${text} is beyond the range of a JSON number (quote it to send a string)`,
    );
  }
  return value;
}

/** An argument's value: the text as typed for text fields, else JSON when it is JSON. */
export function tokenValue(pieces: readonly Piece[], asText = false): unknown {
  const text = pieces.map((p) => p.text).join('');
  if (asText) return text;
  const only = pieces[0];
  return pieces.length === 1 && only !== undefined && !only.quoted ? jsonOrString(text) : text;
}

/**
 * An argument that the tokenizer reads back as `value`: the inverse of `tokenValue` for
 * a non-text field. Strings print bare when that is unambiguous, else as JSON string literals.
 */
export function formatArg(value: unknown): string {
  if (typeof value === 'string') {
    const bare = /^[A-Za-z_^][\w^.:@/-]*$/.test(value) && !NAMED.test(value) && jsonOrString(value) === value;
    return bare ? value : JSON.stringify(value);
  }
  const text = JSON.stringify(value);
  if (text === undefined) throw new ArgumentError('USAGE', `${String(value)} is not a JSON value`);
  return text;
}

/** Parse one line of input. Throws ArgumentError for input that cannot make a request. */
export function parseLine(line: string): ParsedLine {
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'empty' };
  if (trimmed.startsWith('{')) return { kind: 'request', request: parseRaw(trimmed) };

  const tokens = tokenize(trimmed);
  const [head, ...args] = tokens;
  if (head === undefined) return { kind: 'empty' };
  const word = String(tokenValue(head.pieces, true));
  const local = LOCAL_COMMANDS.find((c) => c === word.toLowerCase());
  if (local)
    return { kind: 'local', command: local, args: args.map((t) => String(tokenValue(t.pieces, true))) };

  const info = actionInfo(word);
  return { kind: 'request', request: info ? buildRequest(info, args) : unknownAction(word, args) };
}

function parseRaw(text: string): RawRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ArgumentError('BAD_JSON', `not a JSON object: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ArgumentError('BAD_JSON', 'a line starting with { must be one JSON object');
  }
  return value as RawRequest;
}

/**
 * An action this CLI's schema does not know may still exist on a newer server: send it with its
 * named fields and let the server answer. Positional arguments cannot be mapped without a schema.
 */
function unknownAction(word: string, args: readonly Token[]): RawRequest {
  const entries: [string, unknown][] = [['action', word.toUpperCase()]];
  for (const token of args) {
    const named = splitNamed(token);
    if (!named) {
      throw new ArgumentError(
        'USAGE',
        `unknown action ${word} (type help for the list; an action this CLI does not know takes name=value fields or a raw {...} line)`,
      );
    }
    entries.push([named.name, tokenValue(named.value)]);
  }
  return Object.fromEntries(entries) as RawRequest;
}

/** `name=value`, when the argument starts with a bare identifier and `=`. */
function splitNamed(token: Token): { name: string; value: Piece[] } | undefined {
  const [first, ...others] = token.pieces;
  if (!first || first.quoted) return undefined;
  const m = NAMED.exec(first.text);
  if (!m) return undefined;
  const rest = first.text.slice(m[0].length);
  return { name: m[1]!, value: rest === '' ? others : [{ text: rest, quoted: false }, ...others] };
}

function fieldNamed(info: ActionInfo, name: string): FieldInfo | undefined {
  const lower = name.toLowerCase();
  return info.fields.find((f) => f.name.toLowerCase() === lower);
}

function buildRequest(info: ActionInfo, args: readonly Token[]): RawRequest {
  const { positional } = info;
  const named = new Map<string, unknown>();
  const values: Token[] = [];
  const slotsFull = () =>
    positional.rest === undefined &&
    positional.pairs === undefined &&
    values.length >= positional.fields.length;

  for (const token of args) {
    const split = splitNamed(token);
    const field = split && fieldNamed(info, split.name);
    if (split && field) {
      if (named.has(field.name)) throw new ArgumentError('USAGE', `${field.name} is given twice`);
      named.set(field.name, tokenValue(split.value, field.text));
      continue;
    }
    const flag =
      token.pieces.length === 1 && !token.pieces[0]!.quoted ? fieldNamed(info, token.source) : undefined;
    if (flag && typeOf(flag.schema) === 'boolean' && slotsFull()) {
      named.set(flag.name, true);
      continue;
    }
    values.push(token);
  }

  const entries: [string, unknown][] = [['action', info.name]];
  const fieldsByName = new Map(info.fields.map((f) => [f.name, f]));
  positional.fields.forEach((name, i) => {
    const token = values[i];
    if (token === undefined) return;
    if (named.has(name))
      throw new ArgumentError('USAGE', `${name} is given twice (by position and as ${name}=)`);
    entries.push([name, tokenValue(token.pieces, fieldsByName.get(name)?.text ?? false)]);
  });
  const extra = values.slice(positional.fields.length);
  if (positional.rest !== undefined && extra.length > 0) {
    entries.push([positional.rest, restValue(fieldsByName.get(positional.rest), extra)]);
  } else if (positional.pairs !== undefined && extra.length > 0) {
    entries.push([positional.pairs, pairsValue(info, extra)]);
  } else if (extra.length > 0) {
    throw new ArgumentError(
      'USAGE',
      `unexpected argument ${extra[0]!.source}; usage: ${usage(info)}${hintFor(info, extra[0]!)}`,
    );
  }
  for (const [name, value] of named) entries.push([name, value]);

  const given = new Set(entries.map(([name]) => name));
  const missing = info.fields.filter((f) => f.required && !given.has(f.name));
  if (missing.length > 0) {
    throw new ArgumentError(
      'USAGE',
      `missing ${missing.map((f) => f.name).join(', ')}; usage: ${usage(info)}`,
    );
  }
  return Object.fromEntries(entries) as RawRequest;
}

/** `MGET a b c`, or one JSON array: `MGET ["a","b"]`. */
function restValue(field: FieldInfo | undefined, tokens: readonly Token[]): unknown[] {
  const only = tokens.length === 1 ? tokens[0]! : undefined;
  if (only && only.pieces.length === 1 && !only.pieces[0]!.quoted && only.source.startsWith('[')) {
    const value = jsonOrString(only.source);
    if (Array.isArray(value)) return value;
  }
  const itemsText = typeOf((field?.schema as { items?: never } | undefined)?.items) === 'string';
  return tokens.map((t) => tokenValue(t.pieces, itemsText));
}

/** `MSET a 1 b 2`, or one JSON object: `MSET {"a":1,"b":2}`. */
function pairsValue(info: ActionInfo, tokens: readonly Token[]): unknown {
  const only = tokens.length === 1 ? tokens[0]! : undefined;
  if (only && only.pieces.length === 1 && !only.pieces[0]!.quoted && only.source.startsWith('{')) {
    const value = jsonOrString(only.source);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value;
  }
  if (tokens.length % 2 !== 0) {
    throw new ArgumentError('USAGE', `${info.name} takes key value pairs; usage: ${usage(info)}`);
  }
  const pairs: [string, unknown][] = [];
  for (let i = 0; i < tokens.length; i += 2) {
    pairs.push([String(tokenValue(tokens[i]!.pieces, true)), tokenValue(tokens[i + 1]!.pieces)]);
  }
  // fromEntries defines own properties, so a key named __proto__ stays a key.
  return Object.fromEntries(pairs);
}

/** A near-miss named field (`tll=5`) deserves a pointer to the real names. */
function hintFor(info: ActionInfo, token: Token): string {
  if (!splitNamed(token)) return '';
  const names = info.fields.map((f) => f.name).join(', ');
  return names === '' ? ` (${info.name} takes no fields)` : ` (${info.name} fields: ${names})`;
}

/** `SET key value [ttl=<integer>] [ifAbsent] [ifPresent] [namespace=<string>]`, from the schema. */
export function usage(info: ActionInfo): string {
  const { positional } = info;
  const parts = [info.name];
  const byName = new Map(info.fields.map((f) => [f.name, f]));
  for (const name of positional.fields) parts.push(byName.get(name)?.required ? name : `[${name}]`);
  if (positional.rest !== undefined) parts.push(`${positional.rest.replace(/s$/, '')}...`);
  if (positional.pairs !== undefined) parts.push('key value [key value ...]');
  const placed = new Set([...positional.fields, positional.rest, positional.pairs]);
  for (const field of info.fields) {
    if (placed.has(field.name)) continue;
    const part =
      typeOf(field.schema) === 'boolean' ? field.name : `${field.name}=<${typeName(field.schema)}>`;
    parts.push(field.required ? part : `[${part}]`);
  }
  return parts.join(' ');
}
