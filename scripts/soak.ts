/**
 * Soak: mixed load against a measured server for a long time, sampling the server's RSS, heap
 * (after a forced GC), open fds and event-loop delay every few seconds; fails when any of them
 * trends upward, when the loop stalls, or when any client sees a wrong answer.
 *
 *   npm run soak -- --minutes 30 [--seed N] [--sample-seconds 5] [--kv-clients 6] [--stall-ms 1000]
 *   npm run soak -- --minutes 0 --big-keys 1000000     (loop delay of big COUNT/KEYS/MGET/MSET/DROP)
 *
 * Load (all over loopback, against a server in a child process, see harness.ts):
 * - KV clients: pipelined batches of SET/GET/DEL/EXISTS/INCR/MGET/MSET/KEYS/COUNT/EXPIRE/TTL on
 *   keys only that client writes, checked against a local model (every GET, every INCR, every
 *   DEL's KEY_NOT_FOUND), plus TTL'd keys that expire on their own (churn in the expiry queue).
 * - A bad-input client: garbage lines, each of which must get its error, then a PING to prove the
 *   stream is still aligned.
 * - A churn client: connect, PING, close (FIN or RST), over and over.
 * - Pub/sub and observe (when the server has them): numbered messages to three pattern
 *   subscribers checked for order and holes, and an observer on one KV client's keys.
 *
 * Trend test (robust to noise and to the odd GC): after a warm-up (the first 20% of samples), the
 * median of the last third must not exceed the median of the first third by more than a relative
 * plus an absolute tolerance (per metric, see TRENDS). A least-squares slope per minute is
 * reported alongside, as a figure, not a verdict.
 */
import { parseArgs } from 'node:util';
import {
  info,
  LineClient,
  median,
  mib,
  Rng,
  randomSeed,
  type ServerSample,
  startProbedServer,
} from './harness.js';

export interface SoakOptions {
  seconds: number;
  seed?: number;
  sampleSeconds?: number;
  kvClients?: number;
  /** A loop-delay window whose max exceeds this fails the soak. */
  stallMs?: number;
  /** Progress lines (one per sample) go here. */
  log?: (line: string) => void;
}

export interface Trend {
  metric: keyof ServerSample;
  firstMedian: number;
  lastMedian: number;
  limit: number;
  slopePerMinute: number;
  ok: boolean;
}

export interface SoakReport {
  ok: boolean;
  seed: number;
  seconds: number;
  failures: string[];
  samples: (ServerSample & { t: number })[];
  trends: Trend[];
  totals: {
    requests: number;
    kvRequests: number;
    badLines: number;
    churnConnections: number;
    pubsub: { published: number; delivered: number; changesObserved: number } | string;
  };
  worstLoopMaxMs: number;
  exit: { code: number | null; signal: string | null };
}

/** Per metric: the last third's median may exceed the first third's by `rel` (fraction) + `abs`. */
const TRENDS: { metric: keyof ServerSample; rel: number; abs: number }[] = [
  { metric: 'rss', rel: 0.15, abs: 24 * 1048576 },
  { metric: 'heapUsed', rel: 0.15, abs: 8 * 1048576 },
  { metric: 'fds', rel: 0, abs: 8 },
  { metric: 'loopP99Ms', rel: 1, abs: 20 },
];

const MAX_FAILURES = 20;

class Failures {
  readonly list: string[] = [];
  add(message: string): void {
    if (this.list.length < MAX_FAILURES) this.list.push(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Workers

interface Worker {
  run(): Promise<void>;
  requests: number;
}

/**
 * A client that owns the keys `soak^w<n>^*` and checks every answer against a local model.
 * Values vary in size so the allocator sees a realistic mix.
 */
class KvWorker implements Worker {
  requests = 0;
  private readonly model = new Map<string, string>();
  private counter = 0;
  private readonly ns: string;

  constructor(
    readonly n: number,
    private readonly port: number,
    private readonly rng: Rng,
    private readonly running: () => boolean,
    private readonly failures: Failures,
  ) {
    this.ns = `soak^w${n}`;
  }

  private key(): string {
    return `${this.ns}^k${this.rng.int(0, 999)}`;
  }

  private value(): string {
    const size = this.rng.pick([8, 40, 200, 1000, 4000]);
    return `v${this.rng.u32().toString(36)}${'x'.repeat(this.rng.int(0, size))}`;
  }

  async run(): Promise<void> {
    const client = await LineClient.open(this.port);
    try {
      // A fresh start: the model begins empty, so must the namespace.
      await client.request({ action: 'DROP', namespace: this.ns });
      while (this.running()) await this.batch(client);
    } finally {
      client.close();
    }
  }

  private async batch(client: LineClient): Promise<void> {
    const rng = this.rng;
    const requests: object[] = [];
    const checks: ((res: { ok?: boolean; result?: unknown; error?: { code: string } }) => string | null)[] =
      [];
    const model = this.model;
    for (let i = 0; i < 32; i++) {
      const roll = rng.int(0, 99);
      if (roll < 30) {
        const key = this.key();
        const value = this.value();
        requests.push({ action: 'SET', key, value });
        model.set(key, value);
        checks.push((r) => (r.ok && r.result === true ? null : `SET ${key}`));
      } else if (roll < 60) {
        const key = this.key();
        const expected = model.get(key);
        requests.push({ action: 'GET', key });
        checks.push((r) =>
          expected === undefined
            ? r.error?.code === 'KEY_NOT_FOUND'
              ? null
              : `GET ${key}: expected KEY_NOT_FOUND`
            : r.ok && r.result === expected
              ? null
              : `GET ${key}: wrong value`,
        );
      } else if (roll < 67) {
        const key = this.key();
        const existed = model.delete(key);
        requests.push({ action: 'DEL', key });
        checks.push((r) =>
          (existed ? r.ok === true : r.error?.code === 'KEY_NOT_FOUND')
            ? null
            : `DEL ${key}: existed=${existed}`,
        );
      } else if (roll < 72) {
        const key = this.key();
        const exists = model.has(key);
        requests.push({ action: 'EXISTS', key });
        checks.push((r) => (r.ok && r.result === exists ? null : `EXISTS ${key}`));
      } else if (roll < 80) {
        const by = rng.int(-5, 10);
        this.counter += by;
        const expected = this.counter;
        requests.push({ action: 'INCR', key: `${this.ns}^counter`, by });
        checks.push((r) => (r.ok && r.result === expected ? null : `INCR: expected ${expected}`));
      } else if (roll < 85) {
        const keys = Array.from({ length: 10 }, () => this.key());
        const expected: Record<string, string> = {};
        for (const k of keys) {
          const v = model.get(k);
          if (v !== undefined) expected[k] = v;
        }
        requests.push({ action: 'MGET', keys });
        checks.push((r) =>
          r.ok && JSON.stringify(r.result) === JSON.stringify(expected) ? null : 'MGET: wrong values',
        );
      } else if (roll < 89) {
        const entries: Record<string, string> = {};
        for (let j = 0; j < 5; j++) entries[this.key()] = this.value();
        for (const [k, v] of Object.entries(entries)) model.set(k, v);
        requests.push({ action: 'MSET', entries });
        checks.push((r) => (r.ok ? null : 'MSET failed'));
      } else if (roll < 94) {
        // Keys with a short TTL outside the model: they come and go on their own.
        const ttl = rng.int(20, 3000);
        requests.push({ action: 'SET', key: `soak^ttl^w${this.n}^t${rng.int(0, 4999)}`, value: 1, ttl });
        checks.push((r) => (r.ok ? null : 'SET with ttl failed'));
      } else if (roll < 97) {
        requests.push({ action: 'KEYS', namespace: this.ns, limit: rng.int(1, 200) });
        checks.push((r) => (r.ok ? null : 'KEYS failed'));
      } else {
        // Anywhere in the batch, with writes pipelined behind it: a COUNT that settles an expiry
        // backlog must still count exactly what was written before it (reliability bug 1).
        const expected = model.size + (this.counterWritten ? 1 : 0);
        requests.push({ action: 'COUNT', namespace: this.ns });
        checks.push((r) =>
          r.ok && r.result === expected ? null : `COUNT: expected ${expected}, got ${r.result}`,
        );
      }
      if ((requests[requests.length - 1] as { action: string }).action === 'INCR') this.counterWritten = true;
    }
    client.send(...requests);
    const lines = await client.take(requests.length);
    this.requests += requests.length;
    for (let i = 0; i < lines.length; i++) {
      const problem = checks[i]!(JSON.parse(lines[i]!));
      if (problem) this.failures.add(`kv worker ${this.n}: ${problem} (response ${lines[i]!.slice(0, 200)})`);
    }
  }

  private counterWritten = false;
}

/** Lines that must each get an error (and never close the connection). */
function badLine(rng: Rng): Buffer {
  switch (rng.int(0, 9)) {
    case 0:
      return Buffer.from('{"action":"SET","key":');
    case 1:
      return Buffer.from(`${'['.repeat(rng.int(65, 5000))}`);
    case 2:
      return Buffer.from('{"action":"NOPE"}');
    case 3:
      return Buffer.from('{"action":"GET","key":"a^^b"}');
    case 4:
      return Buffer.from('{"action":"SET","key":"x","value":1,"__proto__":{"p":1}}');
    case 5:
      return Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x7d]);
    case 6:
      return Buffer.from(`{"action":"SET","key":"${'k'.repeat(rng.int(1, 3000))}","value":1,"ttl":-1}`);
    case 7:
      return Buffer.from('[1,2,3]');
    case 8: {
      // Random printable garbage (no newline).
      const bytes = Buffer.alloc(rng.int(1, 300));
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(0x20, 0x7e);
      return bytes;
    }
    default: {
      const bytes = Buffer.alloc(rng.int(1, 300));
      for (let i = 0; i < bytes.length; i++) {
        let b = rng.int(0, 255);
        if (b === 0x0a || b === 0x0d) b = 0x20;
        bytes[i] = b;
      }
      // Make sure it cannot be valid JSON by accident (a lone digit would be BAD_REQUEST, still an error).
      return bytes;
    }
  }
}

class BadInputWorker implements Worker {
  requests = 0;
  lines = 0;

  constructor(
    private readonly port: number,
    private readonly rng: Rng,
    private readonly running: () => boolean,
    private readonly failures: Failures,
  ) {}

  async run(): Promise<void> {
    const client = await LineClient.open(this.port);
    try {
      while (this.running()) {
        const n = this.rng.int(1, 20);
        const parts: Buffer[] = [];
        for (let i = 0; i < n; i++) parts.push(badLine(this.rng), Buffer.from('\n'));
        parts.push(Buffer.from('{"action":"PING","id":"align"}\n'));
        client.socket.write(Buffer.concat(parts));
        const lines = await client.take(n + 1);
        this.lines += n;
        this.requests += n + 1;
        for (let i = 0; i < n; i++) {
          const res = JSON.parse(lines[i]!) as { ok?: boolean };
          if (res.ok !== false) this.failures.add(`bad input got a non-error: ${lines[i]!.slice(0, 200)}`);
        }
        if (lines[n] !== '{"id":"align","ok":true,"result":"PONG"}') {
          this.failures.add(`bad-input stream misaligned: ${lines[n]!.slice(0, 200)}`);
        }
      }
    } finally {
      client.close();
    }
  }
}

class ChurnWorker implements Worker {
  requests = 0;
  connections = 0;

  constructor(
    private readonly port: number,
    private readonly rng: Rng,
    private readonly running: () => boolean,
    private readonly failures: Failures,
  ) {}

  async run(): Promise<void> {
    while (this.running()) {
      const client = await LineClient.open(this.port);
      this.connections++;
      try {
        const res = await client.request({ action: 'PING' });
        this.requests++;
        if (res.result !== 'PONG') this.failures.add(`churn PING: ${JSON.stringify(res)}`);
      } finally {
        if (this.rng.chance(0.5)) client.socket.resetAndDestroy();
        else client.socket.end();
      }
      // About 50 connections a second: churn, not a flood (test/faults.test.ts does floods).
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Pub/sub and observe under load: a publisher sends numbered messages on four channels; three
 * subscribers (pattern `soak^ch^*`) each check that, per channel, numbers arrive in order with no
 * hole unless a `gap` push said pushes were dropped; an observer watches KV worker 0's keys and
 * checks that `seq` only grows. At the end each subscriber proves with a PING round trip that it
 * has read everything pushed before it, and received + dropped must equal what was published.
 */
class PubSubWorker implements Worker {
  requests = 0;
  published = 0;
  delivered = 0;
  changes = 0;

  constructor(
    private readonly port: number,
    private readonly rng: Rng,
    private readonly running: () => boolean,
    private readonly failures: Failures,
  ) {}

  async run(): Promise<void> {
    const subscribers = await Promise.all([0, 1, 2].map(() => LineClient.open(this.port)));
    const observer = await LineClient.open(this.port);
    const publisher = await LineClient.open(this.port);
    const received = subscribers.map(() => ({ count: 0, dropped: 0, last: new Map<string, number>() }));
    try {
      for (const sub of subscribers) {
        const res = await sub.request({ action: 'SUBSCRIBE', channels: ['soak^ch^*'] });
        if (res.result !== 1) this.failures.add(`SUBSCRIBE answered ${JSON.stringify(res)}`);
      }
      const obs = await observer.request({ action: 'OBSERVE', keys: ['soak^w0^>'] });
      if (obs.result !== 1) this.failures.add(`OBSERVE answered ${JSON.stringify(obs)}`);

      const reading = subscribers.map((sub, i) => this.readPushes(sub, received[i]!));
      const observing = this.readChanges(observer);
      const next = [0, 0, 0, 0];
      while (this.running()) {
        const batch: object[] = [];
        for (let k = 0; k < 16; k++) {
          const c = this.rng.int(0, 3);
          batch.push({ action: 'PUBLISH', channel: `soak^ch^${c}`, message: { c, n: next[c]!++ } });
        }
        publisher.send(...batch);
        for (const line of await publisher.take(batch.length)) {
          const r = JSON.parse(line) as { ok?: boolean; result?: number };
          if (!r.ok) this.failures.add(`PUBLISH failed: ${line.slice(0, 200)}`);
          else this.delivered += r.result!;
        }
        this.published += batch.length;
        this.requests += batch.length;
        // Leave the KV clients most of the CPU: pub/sub is one part of the mix.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      // Everything pushed before a PONG was read before it: then the tallies must close.
      for (let i = 0; i < subscribers.length; i++) {
        subscribers[i]!.socket.write('{"action":"PING","id":"fence"}\n');
      }
      await Promise.all(reading);
      for (const [i, r] of received.entries()) {
        if (r.count + r.dropped !== this.published) {
          this.failures.add(
            `subscriber ${i}: ${r.count} received + ${r.dropped} dropped != ${this.published} published`,
          );
        }
      }
      observer.socket.write('{"action":"PING","id":"fence"}\n');
      await observing;
    } finally {
      for (const c of [...subscribers, observer, publisher]) c.close();
    }
  }

  /** Until the fence PONG: message pushes in order per channel, gaps only where announced. */
  private async readPushes(
    sub: LineClient,
    tally: { count: number; dropped: number; last: Map<string, number> },
  ): Promise<void> {
    let gapPending = false;
    for (;;) {
      const [line] = await sub.take(1, 120_000);
      const r = JSON.parse(line!) as {
        id?: string;
        event?: string;
        channel?: string;
        message?: { n: number };
        dropped?: number;
      };
      if (r.id === 'fence') return;
      if (r.event === 'gap') {
        tally.dropped += r.dropped ?? 0;
        gapPending = true;
        continue;
      }
      if (r.event !== 'message') {
        this.failures.add(`subscriber got ${line!.slice(0, 200)}`);
        continue;
      }
      tally.count++;
      const prev = tally.last.get(r.channel!) ?? -1;
      const n = r.message!.n;
      if (n <= prev || (n !== prev + 1 && !gapPending)) {
        this.failures.add(`subscriber: ${r.channel} message ${n} after ${prev} with no gap announced`);
      }
      tally.last.set(r.channel!, n);
      gapPending = false;
    }
  }

  private async readChanges(observer: LineClient): Promise<void> {
    let lastSeq = 0;
    for (;;) {
      const [line] = await observer.take(1, 120_000);
      const r = JSON.parse(line!) as { id?: string; event?: string; seq?: number; op?: string };
      if (r.id === 'fence') return;
      if (r.event === 'gap') continue;
      if (r.event !== 'change' || typeof r.seq !== 'number' || r.seq <= lastSeq) {
        this.failures.add(`observer got ${line!.slice(0, 200)} after seq ${lastSeq}`);
      } else {
        lastSeq = r.seq;
        this.changes++;
      }
    }
  }
}

/** Pub/sub joins the mix when the server has it (HELP lists PUBLISH, SUBSCRIBE and OBSERVE). */
async function pubsubAvailable(port: number): Promise<boolean> {
  const client = await LineClient.open(port);
  try {
    const res = await client.request<{ action: string }[]>({ action: 'HELP' });
    const actions = new Set((res.result ?? []).map((a) => a.action));
    return actions.has('PUBLISH') && actions.has('SUBSCRIBE') && actions.has('OBSERVE');
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Analysis

function slopePerMinute(points: { t: number; v: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const mv = points.reduce((s, p) => s + p.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

export function analyse(samples: (ServerSample & { t: number })[]): Trend[] {
  const warm = samples.slice(Math.max(1, Math.floor(samples.length * 0.2)));
  const third = Math.max(1, Math.floor(warm.length / 3));
  return TRENDS.map(({ metric, rel, abs }) => {
    const values = warm.map((s) => s[metric] as number);
    const firstMedian = median(values.slice(0, third));
    const lastMedian = median(values.slice(-third));
    const limit = firstMedian * (1 + rel) + abs;
    return {
      metric,
      firstMedian,
      lastMedian,
      limit,
      slopePerMinute: slopePerMinute(warm.map((s) => ({ t: s.t, v: s[metric] as number }))),
      ok: !(lastMedian > limit),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The run

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? randomSeed();
  const rng = new Rng(seed);
  const sampleMs = (options.sampleSeconds ?? 5) * 1000;
  const stallMs = options.stallMs ?? 1000;
  const log = options.log ?? (() => {});
  const failures = new Failures();
  const samples: (ServerSample & { t: number })[] = [];
  log(`soak: seed ${seed}, ${options.seconds} s, sample every ${sampleMs / 1000} s`);

  const server = await startProbedServer({ config: { idleTimeout: 60 } });
  let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
  let workers: Worker[] = [];
  let churn: ChurnWorker | undefined;
  let bad: BadInputWorker | undefined;
  let ps: PubSubWorker | undefined;
  try {
    const withPubsub = await pubsubAvailable(server.port);
    const started = Date.now();
    const deadline = started + options.seconds * 1000;
    const running = () => Date.now() < deadline && failures.list.length < MAX_FAILURES;
    const kv = Array.from(
      { length: options.kvClients ?? 6 },
      (_, i) => new KvWorker(i, server.port, rng.fork(), running, failures),
    );
    bad = new BadInputWorker(server.port, rng.fork(), running, failures);
    churn = new ChurnWorker(server.port, rng.fork(), running, failures);
    workers = [...kv, bad, churn];
    if (withPubsub) {
      ps = new PubSubWorker(server.port, rng.fork(), running, failures);
      workers.push(ps);
    }

    const runs = workers.map((w) =>
      w.run().catch((err: unknown) => failures.add(`worker failed: ${(err as Error).message}`)),
    );
    await server.sample(); // start the first loop window now
    while (running()) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(sampleMs, Math.max(0, deadline - Date.now()))),
      );
      const s = await server.sample({ gc: true });
      samples.push({ ...s, t: Date.now() - started });
      const requests = workers.reduce((sum, w) => sum + w.requests, 0);
      log(
        `t=${Math.round((Date.now() - started) / 1000)}s rss=${mib(s.rss)}MiB heap=${mib(s.heapUsed)}MiB ` +
          `fds=${s.fds} loopMax=${s.loopMaxMs}ms p99=${s.loopP99Ms}ms cpu=${s.cpuPercent}% conns=${s.connections} requests=${requests}`,
      );
      if (s.loopMaxMs > stallMs) {
        failures.add(
          `event loop stalled ${s.loopMaxMs} ms (limit ${stallMs} ms; server CPU ${s.cpuPercent}% of a core)`,
        );
      }
    }
    await Promise.all(runs);

    // The server is still healthy afterwards and saw no fault of its own.
    const control = await LineClient.open(server.port);
    try {
      const ping = await control.request({ action: 'PING' });
      if (ping.result !== 'PONG') failures.add(`PING after the soak: ${JSON.stringify(ping)}`);
      const stats = await info(control);
      if (stats.errors.byCode.INTERNAL) failures.add(`${stats.errors.byCode.INTERNAL} INTERNAL errors`);
    } finally {
      control.close();
    }
    for (const record of server.problems.filter((r) => (r.level as number) >= 50)) {
      failures.add(`server logged an error: ${JSON.stringify(record).slice(0, 300)}`);
    }
  } catch (err) {
    failures.add(`soak aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    exit = await server.stop();
  }
  if (exit.code !== 0) failures.add(`server exited with ${exit.code ?? exit.signal} on SIGTERM`);

  const trends = samples.length >= 6 ? analyse(samples) : [];
  if (samples.length < 6) failures.add(`only ${samples.length} samples: too short to judge a trend`);
  for (const t of trends.filter((t) => !t.ok)) {
    failures.add(
      `${t.metric} trends upward: median ${t.firstMedian} -> ${t.lastMedian} (limit ${Math.round(t.limit)})`,
    );
  }
  const kvRequests = workers.filter((w) => w instanceof KvWorker).reduce((s, w) => s + w.requests, 0);
  return {
    ok: failures.list.length === 0,
    seed,
    seconds: options.seconds,
    failures: failures.list,
    samples,
    trends,
    totals: {
      requests: workers.reduce((s, w) => s + w.requests, 0),
      kvRequests,
      badLines: bad?.lines ?? 0,
      churnConnections: churn?.connections ?? 0,
      pubsub: ps
        ? { published: ps.published, delivered: ps.delivered, changesObserved: ps.changes }
        : 'not available (no PUBLISH/SUBSCRIBE/OBSERVE action)',
    },
    worstLoopMaxMs: Math.max(0, ...samples.map((s) => s.loopMaxMs)),
    exit,
  };
}

// ---------------------------------------------------------------------------------------------
// Event-loop health of big operations

export interface BigOpFigure {
  op: string;
  /** Longest event-loop delay in the server while the operation ran (ms). */
  loopMaxMs: number;
  /** Wall time as the client saw it (ms). */
  elapsedMs: number;
  result: string;
}

/**
 * Fills a namespace with `keys` keys (straight into the store, not timed) and measures the server's
 * longest loop delay while single commands work on all of them: COUNT, KEYS paged through to the
 * end, the last page of KEYS, MGET and MSET at the batch limit, and DROP of the whole namespace;
 * then (when the server has pub/sub) PUBLISH fanning out to 2000 subscriber connections.
 */
export async function measureBigOps(keys: number): Promise<BigOpFigure[]> {
  const server = await startProbedServer();
  const figures: BigOpFigure[] = [];
  try {
    await server.fill('big', keys);
    const c = await LineClient.open(server.port);
    const measure = async (op: string, run: () => Promise<unknown>) => {
      await server.sample({ gc: true });
      const started = performance.now();
      const result = await run();
      const elapsedMs = Math.round(performance.now() - started);
      const { loopMaxMs } = await server.sample();
      figures.push({ op, loopMaxMs, elapsedMs, result: JSON.stringify(result).slice(0, 80) });
    };
    const ok = async <R>(req: object): Promise<R> => {
      const res = await c.request<R>(req);
      if (!res.ok)
        throw new Error(`${JSON.stringify(req).slice(0, 80)} failed: ${JSON.stringify(res.error)}`);
      return res.result!;
    };
    const batch = Array.from({ length: 10_000 }, (_, i) => `big^k${String(i * 37).padStart(8, '0')}`);
    await measure(`COUNT over ${keys} keys`, () => ok({ action: 'COUNT', namespace: 'big' }));
    await measure(`KEYS first page (limit 10000) of ${keys}`, () =>
      ok<{ keys: string[] }>({ action: 'KEYS', namespace: 'big', limit: 10_000 }).then((r) => r.keys.length),
    );
    await measure(`KEYS page after the last-but-one key of ${keys}`, () =>
      ok({ action: 'KEYS', namespace: 'big', after: `k${String(keys - 2).padStart(8, '0')}`, limit: 10_000 }),
    );
    await measure(`KEYS paged through all ${keys} (10000 per page)`, async () => {
      let after: string | undefined;
      let seen = 0;
      for (;;) {
        const page: { keys: string[]; next: string | null } = await ok({
          action: 'KEYS',
          namespace: 'big',
          limit: 10_000,
          ...(after !== undefined && { after }),
        });
        seen += page.keys.length;
        if (page.next === null) return seen;
        after = page.next;
      }
    });
    await measure('MGET of 10000 keys', () => ok({ action: 'MGET', keys: batch }).then(() => 10_000));
    await measure('MSET of 10000 entries', () =>
      ok({ action: 'MSET', entries: Object.fromEntries(batch.map((k) => [k, 1])) }),
    );
    await measure(`DROP of a ${keys}-key namespace`, () => ok({ action: 'DROP', namespace: 'big' }));
    await measure('COUNT of the root after the DROP', () => ok({ action: 'COUNT' }));
    if (await pubsubAvailable(server.port)) {
      // Fan-out: one PUBLISH pushed to FANOUT subscriber connections, then 100 in a row.
      const FANOUT = 2000;
      const subs: LineClient[] = [];
      for (let i = 0; i < FANOUT; i++) {
        const sub = await LineClient.open(server.port);
        subs.push(sub);
        sub.send({ action: 'SUBSCRIBE', channels: ['fan^>'] });
        await sub.take(1);
      }
      const message = { text: 'f'.repeat(1000) };
      await measure(`PUBLISH of 1 KB to ${FANOUT} subscribers`, () =>
        ok({ action: 'PUBLISH', channel: 'fan^x', message }),
      );
      await measure(`100 PUBLISHes of 1 KB to ${FANOUT} subscribers each (pipelined)`, async () => {
        c.send(...Array.from({ length: 100 }, () => ({ action: 'PUBLISH', channel: 'fan^x', message })));
        const lines = await c.take(100);
        return lines.reduce((sum, l) => sum + ((JSON.parse(l) as { result?: number }).result ?? 0), 0);
      });
      for (const sub of subs) sub.close();
    }
    c.close();
  } finally {
    await server.stop();
  }
  return figures;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '1' },
      seed: { type: 'string' },
      'sample-seconds': { type: 'string', default: '5' },
      'kv-clients': { type: 'string', default: '6' },
      'stall-ms': { type: 'string', default: '1000' },
      json: { type: 'boolean', default: false },
      'big-keys': { type: 'string' },
    },
  });
  if (values['big-keys'] !== undefined) {
    const figures = await measureBigOps(Number(values['big-keys']));
    console.table(figures);
    if (values.minutes === '0') return;
  }
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error('--minutes: must be a positive number (0 only with --big-keys)');
  const report = await runSoak({
    seconds: minutes * 60,
    ...(values.seed !== undefined && { seed: Number(values.seed) }),
    sampleSeconds: Number(values['sample-seconds']),
    kvClients: Number(values['kv-clients']),
    stallMs: Number(values['stall-ms']),
    log: (line) => console.log(line),
  });
  const { samples, ...summary } = report;
  console.log(JSON.stringify(values.json ? report : { ...summary, sampleCount: samples.length }, null, 2));
  console.log(report.ok ? 'soak: PASS' : `soak: FAIL (seed ${report.seed})`);
  process.exitCode = report.ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
