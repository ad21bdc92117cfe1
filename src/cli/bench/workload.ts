import { ACTIONS, type Action, type ActionMix, type Target } from './options.js';

/**
 * The requests a run sends, encoded once before the clock starts.
 *
 * Every request of the run is a slice of one contiguous "ring" of pre-encoded request bytes, so a
 * connection refills its pipeline with a single zero-copy `subarray` + `write` per read instead of
 * building lines per request. The ring lives in a SharedArrayBuffer: worker threads read the same
 * bytes without copying. Each connection starts at its own offset and walks the ring in a circle.
 *
 *   ring:    | SET k17 | GET k3 | GET k90 | INCR c5 | SET k2 | ... |   (offsets[i] = start of slot i)
 *   conn 0:    ^cursor -> write(ring[offsets[c] .. offsets[c + n]]) when n replies came back
 *   conn 1:                                ^cursor
 */
export interface Ring {
  /** Encoded requests, back to back. */
  readonly bytes: SharedArrayBuffer;
  /** `count + 1` Int32 offsets into `bytes`: slot i is [offsets[i], offsets[i + 1]). */
  readonly offsets: SharedArrayBuffer;
  readonly count: number;
}

/**
 * Keys exercise caretkv's namespaces: 1000 keys per namespace, fixed width so every line of an
 * action has the same length. Counters live in their own namespaces because INCR on a string
 * value is an error on both caretkv (WRONG_TYPE) and Redis.
 *   data:    bench^d042^k0042137     counters: bench^c042^k0042137
 */
export class KeySpace {
  readonly #idWidth: number;
  readonly #nsWidth: number;

  constructor(readonly size: number) {
    this.#idWidth = String(size - 1).length;
    this.#nsWidth = String(Math.floor((size - 1) / 1000)).length;
  }

  key(id: number, counter = false): string {
    const ns = String(Math.floor(id / 1000)).padStart(this.#nsWidth, '0');
    return `bench^${counter ? 'c' : 'd'}${ns}^k${String(id).padStart(this.#idWidth, '0')}`;
  }
}

/** Encodes one request line for a target; keys and values are plain ASCII by construction. */
export type Encoder = (action: Action, key: string, value: string) => string;

/** The caretkv JSON protocol; `echo` carries exactly these lines too. */
export const encodeNdjson: Encoder = (action, key, value) => {
  switch (action) {
    case 'SET':
      return `{"action":"SET","key":${JSON.stringify(key)},"value":${JSON.stringify(value)}}\n`;
    case 'GET':
      return `{"action":"GET","key":${JSON.stringify(key)}}\n`;
    case 'INCR':
      return `{"action":"INCR","key":${JSON.stringify(key)}}\n`;
    case 'PING':
      return '{"action":"PING"}\n';
  }
};

function respArray(parts: readonly string[]): string {
  let out = `*${parts.length}\r\n`;
  for (const part of parts) out += `$${Buffer.byteLength(part)}\r\n${part}\r\n`;
  return out;
}

/** Redis commands as RESP arrays of bulk strings, as every Redis client sends them. */
export const encodeResp: Encoder = (action, key, value) => {
  switch (action) {
    case 'SET':
      return respArray(['SET', key, value]);
    case 'GET':
      return respArray(['GET', key]);
    case 'INCR':
      return respArray(['INCR', key]);
    case 'PING':
      return respArray(['PING']);
  }
};

export function encoderFor(target: Target): Encoder {
  return target === 'redis' ? encodeResp : encodeNdjson;
}

/** xorshift32: deterministic, so two runs with the same options send the same requests. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export interface RingSpec {
  readonly target: Target;
  readonly mix: ActionMix;
  readonly keyspace: number;
  readonly valueSize: number;
  /** The ring must hold at least this many requests (a connection's pipeline, at least). */
  readonly minSlots: number;
  readonly seed?: number;
  /** Upper bound on the ring's bytes; large values get fewer slots. */
  readonly maxBytes?: number;
  /** Instead of random keys: exactly these key ids, in order (the `--prefill` pass). */
  readonly sequential?: { readonly from: number; readonly count: number };
}

const DEFAULT_RING_BYTES = 64 * 1024 * 1024;
const MIN_SLOTS = 65_536;

/**
 * Build the ring: as many slots as keys (so a run touches the whole keyspace) but at least 64k
 * (so the mix is smooth) and at most `maxBytes` (so 1 MB values stay affordable).
 */
export function buildRing(spec: RingSpec): Ring {
  const encode = encoderFor(spec.target);
  const keys = new KeySpace(spec.keyspace);
  const value = 'x'.repeat(spec.valueSize);
  const picks: Action[] = [];
  for (const action of ACTIONS) for (let i = 0; i < spec.mix[action]; i++) picks.push(action);
  if (picks.length === 0) throw new Error('empty action mix');

  // Every line of one action has the same length (fixed-width keys): size the ring from that.
  const lineBytes = new Map<Action, number>();
  for (const action of ACTIONS) lineBytes.set(action, Buffer.byteLength(encode(action, keys.key(0), value)));
  const average = picks.reduce((sum, a) => sum + lineBytes.get(a)!, 0) / picks.length;
  const byBytes = Math.floor((spec.maxBytes ?? DEFAULT_RING_BYTES) / average);
  const count =
    spec.sequential?.count ?? Math.max(spec.minSlots, Math.min(Math.max(spec.keyspace, MIN_SLOTS), byBytes));

  const random = xorshift32(spec.seed ?? 0x5eed);
  const chosen = new Uint8Array(count);
  const ids = new Uint32Array(count);
  const offsets = new Int32Array(new SharedArrayBuffer((count + 1) * 4));
  let total = 0;
  for (let i = 0; i < count; i++) {
    const action = picks[random() % picks.length]!;
    chosen[i] = ACTIONS.indexOf(action);
    ids[i] = spec.sequential ? spec.sequential.from + i : random() % spec.keyspace;
    offsets[i] = total;
    total += lineBytes.get(action)!;
  }
  offsets[count] = total;
  if (total > 2 ** 31 - 1) throw new Error('request ring would exceed 2 GiB; lower --value-size');

  const bytes = new SharedArrayBuffer(total);
  const view = Buffer.from(bytes);
  for (let i = 0; i < count; i++) {
    const action = ACTIONS[chosen[i]!]!;
    view.write(encode(action, keys.key(ids[i]!, action === 'INCR'), value), offsets[i]!, 'latin1');
  }
  return { bytes, offsets: offsets.buffer as SharedArrayBuffer, count };
}
