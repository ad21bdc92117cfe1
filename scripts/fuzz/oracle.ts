import { decode, RequestError } from '../../src/protocol/codec.js';
import { ACTIONS } from '../../src/protocol/schema.js';
import { j, MAX_DEPTH } from './generate.js';

// ---------------------------------------------------------------------------------------------
// The oracle: the server's framing rules and its own codec, run locally

export type Expectation =
  | { kind: 'rejected'; code: string; message: string | null; id: string | number | undefined }
  | { kind: 'dispatched'; action: string; id: string | number | undefined; value?: unknown };

const LF = 0x0a;
const CR = 0x0d;

/** The lines of `stream` as the server frames them (trailing bytes count only if `fin`). */
export function frameLines(stream: Buffer, fin: boolean, maxLineBytes: number): (Buffer | null)[] {
  const lines: (Buffer | null)[] = [];
  let start = 0;
  const add = (end: number) => {
    let e = end;
    if (e > start && stream[e - 1] === CR) e--;
    if (e === start) return;
    lines.push(e - start > maxLineBytes ? null : stream.subarray(start, e));
  };
  for (let i = stream.indexOf(LF); i !== -1; i = stream.indexOf(LF, start)) {
    add(i);
    start = i + 1;
  }
  if (fin && start < stream.length) add(stream.length);
  return lines;
}

export function oracle(line: Buffer | null): Expectation {
  if (line === null) return { kind: 'rejected', code: 'LINE_TOO_LONG', message: null, id: undefined };
  const r = decode(line, MAX_DEPTH);
  if (r instanceof RequestError) return { kind: 'rejected', code: r.code, message: r.message, id: r.id };
  return {
    kind: 'dispatched',
    action: r.action,
    id: r.id,
    ...(r.action === 'ECHO' && { value: (r as { value: unknown }).value }),
  };
}

/** Codes a dispatched request may fail with: its action's own, plus BAD_REQUEST from handlers. */
const ALLOWED = new Map(
  Object.values(ACTIONS).map((a) => [a.name, new Set<string>([...a.errors, 'BAD_REQUEST'])]),
);

/** Why `response` is not an acceptable answer to `e`, or null. */
export function judge(e: Expectation, response: string): string | null {
  let r: { id?: unknown; ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
  try {
    r = JSON.parse(response);
  } catch {
    return 'response is not JSON';
  }
  if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean') return 'response has no ok field';
  if ('event' in r) return 'a push where a response belongs';
  if (r.id !== e.id) return `id ${j(r.id)} where ${j(e.id)} was expected`;
  if (e.kind === 'rejected') {
    if (r.ok !== false || r.error?.code !== e.code) return `expected ${e.code}`;
    if (e.message !== null && r.error.message !== e.message) return `expected message ${j(e.message)}`;
    return null;
  }
  if (r.ok) {
    if (e.action === 'PING' && r.result !== 'PONG') return 'PING did not answer PONG';
    if (e.action === 'ECHO' && j(r.result) !== j(e.value)) return 'ECHO changed the value';
    return null;
  }
  const code = r.error?.code;
  if (typeof code !== 'string' || !ALLOWED.get(e.action)?.has(code)) {
    return `${e.action} failed with ${j(code)}, which it may not`;
  }
  return null;
}
