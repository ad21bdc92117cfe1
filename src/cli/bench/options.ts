/** What `caretkv bench` drives: the JSON server, the transport's echo, or Redis over RESP. */
export const TARGETS = ['caretkv', 'echo', 'redis'] as const;
export type Target = (typeof TARGETS)[number];

/** The actions the generator can send; each target encodes them in its own wire format. */
export const ACTIONS = ['SET', 'GET', 'INCR', 'PING'] as const;
export type Action = (typeof ACTIONS)[number];

/** Relative weights of the actions in the request mix; 0 means the action is never sent. */
export type ActionMix = Readonly<Record<Action, number>>;

export const DEFAULT_PORTS: Readonly<Record<Target, number>> = { caretkv: 7171, echo: 7171, redis: 6379 };

/** One load run, fully resolved: every field has its final value. */
export interface BenchOptions {
  readonly target: Target;
  readonly host: string;
  readonly port: number;
  readonly conns: number;
  readonly pipeline: number;
  /** Exactly one of `durationSeconds` and `requests` is set. */
  readonly durationSeconds: number | null;
  readonly requests: number | null;
  readonly warmupSeconds: number;
  readonly mix: ActionMix;
  readonly keyspace: number;
  readonly valueSize: number;
  /** Worker threads; `auto` lets the runner decide from the load shape and the cores. */
  readonly threads: number | 'auto';
  /** A run fails when no response arrives for this long (a hung or dead server). */
  readonly timeoutSeconds: number;
  /** SET every key once before the run (unmeasured), so GETs hit: caretkv answers a miss with an error. */
  readonly prefill: boolean;
}

/** Limits that keep one run's memory and key width bounded. */
export const LIMITS = {
  conns: 10_000,
  pipeline: 4096,
  keyspace: 100_000_000,
  // Below the server's default 1 MiB line limit once the JSON around the value is added.
  valueSize: 1_000_000,
  threads: 64,
} as const;

/** A bad option value or combination; the message names the option. */
export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

/** `--ratio 1:9` -> SET weight 1, GET weight 9. */
export function parseRatio(text: string): { set: number; get: number } {
  const match = /^\s*(\d{1,6})\s*:\s*(\d{1,6})\s*$/.exec(text);
  if (!match)
    throw new BenchUsageError(
      `--ratio: expected set:get with whole numbers, e.g. 1:1 or 1:9 (got '${text}')`,
    );
  const set = Number(match[1]);
  const get = Number(match[2]);
  if (set + get === 0) throw new BenchUsageError('--ratio: at least one side must be above 0');
  return { set, get };
}

/**
 * The request mix from `--actions` and `--ratio`. `--actions` is a comma list of action names,
 * each with an optional weight (`SET:1,GET:9,INCR`); SET and GET without a weight take theirs from
 * `--ratio`, the others weigh 1. Without `--actions` the mix is SET and GET by `--ratio`.
 */
export function parseMix(actions: string | undefined, ratio: string): ActionMix {
  const { set, get } = parseRatio(ratio);
  const implicit: ActionMix = { SET: set, GET: get, INCR: 1, PING: 1 };
  if (actions === undefined) return { SET: set, GET: get, INCR: 0, PING: 0 };
  const mix: Record<Action, number> = { SET: 0, GET: 0, INCR: 0, PING: 0 };
  const seen = new Set<Action>();
  for (const raw of actions.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const match = /^([A-Za-z]+)(?::(\d{1,6}))?$/.exec(item);
    const name = match?.[1]?.toUpperCase() as Action | undefined;
    if (!match || name === undefined || !ACTIONS.includes(name)) {
      throw new BenchUsageError(
        `--actions: unknown action '${item}' (known: ${ACTIONS.join(', ')}; optional weight as NAME:N)`,
      );
    }
    if (seen.has(name)) throw new BenchUsageError(`--actions: ${name} is listed twice`);
    seen.add(name);
    mix[name] = match[2] === undefined ? implicit[name] : Number(match[2]);
  }
  if (ACTIONS.every((a) => mix[a] === 0)) {
    throw new BenchUsageError('--actions: the mix is empty (every listed action has weight 0)');
  }
  return mix;
}

/** `SET:1 GET:1` for the report. */
export function describeMix(mix: ActionMix): string {
  return ACTIONS.filter((a) => mix[a] > 0)
    .map((a) => `${a}:${mix[a]}`)
    .join(' ');
}
