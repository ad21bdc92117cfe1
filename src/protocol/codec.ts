/**
 * Lines to requests, results to lines.
 *
 * decode: bytes -> UTF-8 check -> nesting-depth check -> JSON.parse -> object check -> action lookup
 * (case-insensitive) -> compiled schema check. Failures come back as `RequestError` values, not
 * exceptions: bad input is routine for a server, and capturing a stack per bad line would let a
 * garbage-spewing client cost us far more than it costs itself.
 *
 * encode: fixed-shape responses from precomputed fragments; only the dynamic parts are serialized.
 * Handlers return values, never JSON text of their own making; each command declares the kind of
 * its result (`ResultKind`) and `encodeResult` is the one place that turns it into text. Stored
 * values are already JSON text, so a GET result is spliced in as is.
 */
import { isUtf8 } from 'node:buffer';
import { ERRORS, type ErrorCode } from './errors.js';
import { LIMITS, type Request } from './schema.js';
import { COMPILED, validationMessage } from './validate.js';

export type RequestId = string | number;

/** A request that could not be decoded or validated. Not an Error: no stack to capture. */
export class RequestError {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
    /** The request's id when it could be recovered (the line parsed and its id was valid). */
    readonly id: RequestId | undefined = undefined,
  ) {}
}

const OPEN_BRACE = '{';
const OPEN_BRACKET = '[';

/**
 * Whether `text` nests deeper than `max` levels. Runs before JSON.parse so that a line of 100000
 * `[` is refused up front rather than handed to anything recursive (validation, deep-equal,
 * JSON.stringify) later. Counting brackets first is a native-speed scan; only a line with more
 * than `max` openers pays for the exact scan that skips brackets inside strings.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  // Every level needs an opener, so a line no longer than `max` cannot nest deeper (most GETs).
  if (text.length <= max) return false;
  let openers = 0;
  for (let i = text.indexOf(OPEN_BRACE); i !== -1; i = text.indexOf(OPEN_BRACE, i + 1)) {
    if (++openers > max) break;
  }
  if (openers <= max) {
    for (let i = text.indexOf(OPEN_BRACKET); i !== -1; i = text.indexOf(OPEN_BRACKET, i + 1)) {
      if (++openers > max) break;
    }
  }
  if (openers <= max) return false;

  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}

const ASCII_WORD = /^[A-Za-z]{1,32}$/;

/**
 * Decodes one request line. The returned request has `action` normalized to upper case and has
 * passed its action's schema; nothing else is copied or rewritten (so `__proto__` or `constructor`
 * keys are never assigned through: JSON.parse makes them plain own properties, and the schemas
 * refuse them as unknown fields).
 */
export function decode(
  line: Buffer | string,
  maxDepth: number = LIMITS.defaultMaxDepth,
): Request | RequestError {
  let text: string;
  if (typeof line === 'string') {
    text = line;
  } else {
    text = line.toString('utf8');
    // The decoder substitutes U+FFFD for invalid bytes; only then is the exact check worth its cost.
    if (text.indexOf('\uFFFD') !== -1 && !isUtf8(line)) {
      return new RequestError('BAD_JSON', 'line is not valid UTF-8');
    }
  }

  if (nestsDeeperThan(text, maxDepth)) {
    return new RequestError(
      'TOO_DEEP',
      `request nests deeper than ${maxDepth} levels (the request object counts as one)`,
    );
  }

  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    return new RequestError('BAD_JSON', `invalid JSON: ${(err as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return new RequestError('BAD_REQUEST', 'request: must be a JSON object');
  }

  const req = obj as { action?: unknown; id?: unknown };
  const id = req.id;
  if (
    id !== undefined &&
    !(typeof id === 'string' && id.length <= LIMITS.maxIdLength) &&
    !(typeof id === 'number' && Number.isFinite(id))
  ) {
    return new RequestError(
      'BAD_REQUEST',
      `id: must be a string (at most ${LIMITS.maxIdLength} characters) or a finite number`,
    );
  }

  const action = req.action;
  if (typeof action !== 'string') {
    return new RequestError(
      'BAD_REQUEST',
      action === undefined ? 'action: is required' : 'action: must be a string',
      id,
    );
  }
  let compiled = COMPILED.get(action);
  if (compiled === undefined) {
    compiled = ASCII_WORD.test(action) ? COMPILED.get(action.toUpperCase()) : undefined;
    if (compiled === undefined) {
      const shown = action.length > 40 ? `${action.slice(0, 40)}...` : action;
      return new RequestError(
        'UNKNOWN_ACTION',
        `unknown action ${JSON.stringify(shown)}; send {"action":"HELP"} for the list`,
        id,
      );
    }
    req.action = compiled.name;
  }

  if (!compiled.check(req)) {
    return new RequestError('BAD_REQUEST', validationMessage(compiled.check), id);
  }
  return req as Request;
}

// ---------------------------------------------------------------------------------------------
// Encoding

const OK_NO_ID = '{"ok":true,"result":';
const OK_AFTER_ID = ',"ok":true,"result":';
const ID_OPEN = '{"id":';

/** `,"ok":false,"error":{"code":"X","message":` per code, built once. */
const ERROR_AFTER_ID = Object.fromEntries(
  Object.keys(ERRORS).map((code) => [code, `,"ok":false,"error":{"code":"${code}","message":`]),
) as Record<ErrorCode, string>;

export function encodeId(id: RequestId): string {
  // A finite number's String() is its JSON form; string ids are bounded in length by decode().
  return typeof id === 'number' ? `${id}` : JSON.stringify(id);
}

/** The answer of most writes to a request without an id, built once. */
const OK_TRUE_NO_ID = `${OK_NO_ID}true}\n`;

/** A success line; `json` is the result as JSON text. */
export function encodeOk(id: RequestId | undefined, json: string): string {
  if (id === undefined) return json === 'true' ? OK_TRUE_NO_ID : `${OK_NO_ID}${json}}\n`;
  return `${ID_OPEN}${encodeId(id)}${OK_AFTER_ID}${json}}\n`;
}

/** An error line. */
export function encodeError(id: RequestId | undefined, code: ErrorCode, message: string): string {
  const msg = JSON.stringify(message);
  return id === undefined
    ? `{"ok":false,"error":{"code":"${code}","message":${msg}}}\n`
    : `${ID_OPEN}${encodeId(id)}${ERROR_AFTER_ID[code]}${msg}}}\n`;
}

/** JSON text of a handler's plain result, with the common scalars precomputed. */
export function toJson(value: unknown): string {
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return Number.isFinite(value) ? `${value}` : 'null';
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// Results: what a command hands back, and the one place that turns it into response text

/**
 * How a command's result becomes the response's `result` member. A command declares its kind once
 * (in the table), so a GET's stored text needs no wrapper object per request:
 * - `json`: any JSON value, serialized here (`toJson`);
 * - `rawJson`: JSON text as the store keeps it (`JsonText`), spliced in as is, never re-parsed;
 * - `rawFields`: an object of stored texts under names (`RawFields`), built here.
 */
export type ResultKind = 'json' | 'rawJson' | 'rawFields';

/**
 * A result object whose values are JSON text already (values as the store holds them): encoded
 * by splicing the text in, never parsed and re-serialized. Names without a value are left out
 * (MGET's missing keys; `null` is a value, not an absence).
 */
export class RawFields {
  constructor(
    readonly names: readonly string[],
    readonly values: readonly (string | undefined)[],
  ) {}

  encode(): string {
    let out = '{';
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i];
      if (v === undefined) continue;
      if (out.length > 1) out += ',';
      out += `${JSON.stringify(this.names[i])}:${v}`;
    }
    return `${out}}`;
  }
}

/** What a handler of each kind returns (besides a Fail, or a promise of either). */
export interface ResultValue {
  json: unknown;
  rawJson: string;
  rawFields: RawFields;
}

/** The success line for a result of the given kind. */
export function encodeResult<K extends ResultKind>(
  id: RequestId | undefined,
  kind: K,
  value: ResultValue[K],
): string {
  if (kind === 'rawJson') return encodeOk(id, value as string);
  if (kind === 'json') return encodeOk(id, toJson(value));
  return encodeOk(id, (value as RawFields).encode());
}
