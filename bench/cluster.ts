/**
 * Cluster engine benchmark (issue 16): caretkv nodes over a Redis Cluster, against the cluster
 * itself. Starts its own 3-master cluster on loopback and two `caretkv serve --store
 * redis-cluster://...` nodes (A and B, spawned from dist/), prints Markdown tables on stdout and
 * progress on stderr.
 *
 *   npm run bench:cluster                               # everything (~8 min on 2 cores)
 *   npx tsx bench/cluster.ts --only throughput --rounds 5
 *   npx tsx bench/cluster.ts --only delivery,drop --publish on
 *
 * - throughput: the same load generator (bench/lib/cluster-load.ts; 32 clients, pipeline 1 and
 *   16, SET-only and GET-only over 100k keys in 256 top-level namespaces) through node A alone,
 *   through A and B (half the clients each), and straight at the Redis masters; the three are
 *   interleaved in every round, each ratio to direct Redis is taken within its round, then the
 *   median. CPU time per request of the caretkv nodes, the masters and the generator (from /proc)
 *   says where the time went; it moves less with machine load than ops/s.
 * - delivery: a writer on node A at a fixed rate, a subscriber on node B (and, as a baseline, on A
 *   itself): time from the write leaving the writer to the push reaching the subscriber (one
 *   process, one clock). OBSERVE of SETs always; PUBLISH to SUBSCRIBE when it crosses nodes
 *   (`--publish auto` probes for it first; `on` insists, `off` leaves it out).
 * - drop: 100k keys in one namespace (filled with MSETs), then DROP through node A while probes on
 *   A send a PING (answered by the node alone: its event loop) and a GET (a round trip to the
 *   master that holds the namespace) every ~1 ms; the masters log every command (`slowlog-log-
 *   slower-than 0`) so each DROP step's time inside Redis is read back from SLOWLOG.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { build } from 'hdr-histogram-js';
import { Redis } from 'ioredis';
import { DROP, DROP_BATCH } from '../src/store/redis/scripts.js';
import {
  KEYSPACE,
  keySlot,
  type LoadResult,
  type LoadTarget,
  type Mix,
  NAMESPACES,
  namespaceOf,
  prefill,
  runLoad,
  VALUE,
} from './lib/cluster-load.js';
import { type BenchCluster, startBenchCluster } from './lib/redis-cluster.js';
import { cpuSeconds, type RunningServer, redisAvailable, redisVersion, startServer } from './lib/servers.js';
import { fixed, kilo, markdownTable, mb, median } from './lib/stats.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}
/** The caretkv build to run (`--cli <build>/dist/cli.js` measures another checkout's build). */
const CLI = resolve(arg('cli', join(ROOT, 'dist/cli.js')));
const only = new Set(arg('only', 'throughput,delivery,drop').split(','));
const rounds = Number(arg('rounds', '5'));
const conns = Number(arg('conns', '32'));
const durationMs = Number(arg('duration', '3')) * 1000;
const pipelines = arg('pipelines', '1,16').split(',').map(Number);
const mixes = arg('mixes', 'set,get').split(',') as Mix[];
const deliveryRate = Number(arg('rate', '1000'));
const deliveryMs = Number(arg('delivery-seconds', '3')) * 1000;
const dropKeys = Number(arg('drop-keys', '100000'));
/**
 * Cross-node PUBLISH/SUBSCRIBE (since 07c0aae): `auto` measures it when a PUBLISH on A reaches a
 * SUBSCRIBE on B (a `--cli` build from before does not, and the row is left out with a note);
 * `on` measures it regardless (a missing delivery then shows as lost); `off` leaves it out.
 */
const publishMode = arg('publish', 'auto') as 'auto' | 'on' | 'off';

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const loadavg = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** The value at quantile q of already sorted numbers (nearest rank). */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

interface Setup {
  cluster: BenchCluster;
  a: RunningServer;
  b: RunningServer;
  /** One admin connection per master (CLUSTER SLOTS, CONFIG, SLOWLOG). */
  admins: Redis[];
}

/**
 * A node answers UNAVAILABLE until its cluster client is connected to the master a request needs:
 * wait until an EXISTS in each of the benchmark's top-level namespaces (so every master) is
 * answered, three times in a row.
 */
async function untilServing(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  const probe = Array.from(
    { length: NAMESPACES },
    (_, i) => `{"action":"EXISTS","key":"${namespaceOf(i)}^warm"}`,
  );
  for (let good = 0; good < 3; ) {
    const line = await Line.open(port);
    const replies = await Promise.all(probe.map((request) => line.request(request)));
    line.close();
    good = replies.every((r) => r.startsWith('{"ok":true')) ? good + 1 : 0;
    if (Date.now() > deadline)
      throw new Error(
        `caretkv on ${port} did not reach every master: ${replies.find((r) => !r.startsWith('{"ok":true'))}`,
      );
    await sleep(100);
  }
}

/** A caretkv connection for single requests and pushes: `request` resolves with the reply line. */
class Line {
  private pending: ((line: string) => void)[] = [];
  private partial = '';
  onPush: (line: string, at: number) => void = () => {};
  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const at = performance.now();
      const text = this.partial + chunk.toString('utf8');
      let from = 0;
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
        const line = text.slice(from, nl);
        from = nl + 1;
        if (line.startsWith('{"event"')) this.onPush(line, at);
        else this.pending.shift()?.(line);
      }
      this.partial = text.slice(from);
    });
  }
  static open(port: number): Promise<Line> {
    return new Promise((resolvePromise, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('error', reject);
      socket.once('connect', () => resolvePromise(new Line(socket)));
    });
  }
  /** Sends without waiting; the reply goes to `onReply` (or nowhere). */
  send(request: string, onReply: (line: string) => void = () => {}): void {
    this.pending.push(onReply);
    this.socket.write(`${request}\n`);
  }
  /** Takes the reply of a request the caller writes on `socket` itself (several in one write). */
  expect(onReply: (line: string) => void): void {
    this.pending.push(onReply);
  }
  request(request: string): Promise<string> {
    return new Promise((r) => this.send(request, r));
  }
  /** Sends a request that must succeed; resolves with its result. */
  async ok(request: string): Promise<unknown> {
    const reply = JSON.parse(await this.request(request)) as { ok: boolean; result?: unknown };
    if (!reply.ok) throw new Error(`${request.slice(0, 120)} -> ${JSON.stringify(reply)}`);
    return reply.result;
  }
  close(): void {
    this.socket.destroy();
  }
}

// ---- throughput ----------------------------------------------------------------------------------------

const TARGETS = ['1 node', '2 nodes', 'direct'] as const;
type Target = (typeof TARGETS)[number];

interface Cell {
  result: LoadResult;
  /** CPU µs per request inside the measured window: caretkv nodes (A + B), masters, generator. */
  nodesUs: number;
  redisUs: number;
  generatorUs: number;
}

async function slotMap(setup: Setup): Promise<Uint8Array> {
  const ports = setup.cluster.masters.map((m) => m.port);
  const slots = new Uint8Array(16384);
  const reply = (await setup.admins[0]!.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  for (const [from, to, [, port]] of reply) slots.fill(ports.indexOf(port), from, to + 1);
  return slots;
}

async function throughput(setup: Setup): Promise<string> {
  const { a, b, cluster } = setup;
  const loadTargets: Record<Target, LoadTarget> = {
    '1 node': { kind: 'caretkv', ports: [a.port] },
    '2 nodes': { kind: 'caretkv', ports: [a.port, b.port] },
    direct: { kind: 'redis', ports: cluster.masters.map((m) => m.port), slots: await slotMap(setup) },
  };
  log('throughput: prefilling 100k keys through caretkv and directly');
  await prefill(loadTargets['1 node']);
  await prefill(loadTargets.direct);
  const loadBefore = loadavg();
  const cells = new Map<string, Cell[]>();
  const cellKey = (mix: Mix, pipeline: number, t: Target): string => `${mix} ${pipeline} ${t}`;
  for (let round = 0; round < rounds; round++) {
    for (const mix of mixes) {
      for (const pipeline of pipelines) {
        const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]!);
        for (const t of order) {
          const nodePids = [a.pid, b.pid];
          const masterPids = cluster.masters.map((m) => m.pid);
          const sum = (pids: number[]): number => pids.reduce((s, pid) => s + cpuSeconds(pid), 0);
          let nodes0 = 0;
          let redis0 = 0;
          let gen0 = process.cpuUsage();
          let nodesS = 0;
          let redisS = 0;
          let genS = 0;
          const result = await runLoad(loadTargets[t], {
            conns,
            pipeline,
            mix,
            warmupMs: 500,
            durationMs,
            onWindow: (edge) => {
              if (edge === 'start') {
                nodes0 = sum(nodePids);
                redis0 = sum(masterPids);
                gen0 = process.cpuUsage();
              } else {
                nodesS = sum(nodePids) - nodes0;
                redisS = sum(masterPids) - redis0;
                const g = process.cpuUsage(gen0);
                genS = (g.user + g.system) / 1e6;
              }
            },
          });
          if (result.errors > 0)
            throw new Error(`${t} ${mix}: ${result.errors} errors, first: ${result.firstError}`);
          const perOp = (s: number): number => (s * 1e6) / result.requests;
          const cell = { result, nodesUs: perOp(nodesS), redisUs: perOp(redisS), generatorUs: perOp(genS) };
          const k = cellKey(mix, pipeline, t);
          cells.set(k, [...(cells.get(k) ?? []), cell]);
          log(
            `round ${round + 1}/${rounds} ${mix.toUpperCase()} p${pipeline} ${t.padEnd(7)} ${kilo(result.opsPerSec).padStart(7)} ops/s  p99 ${fixed(result.p99Ms, 2)} ms  CPU us/op nodes ${fixed(cell.nodesUs, 1)} redis ${fixed(cell.redisUs, 1)} gen ${fixed(cell.generatorUs, 1)}  load ${loadavg()}`,
          );
        }
      }
    }
  }
  const rows: string[][] = [];
  for (const mix of mixes) {
    for (const pipeline of pipelines) {
      const direct = cells.get(cellKey(mix, pipeline, 'direct'))!;
      for (const t of TARGETS) {
        const list = cells.get(cellKey(mix, pipeline, t))!;
        const ratios = list.map((c, i) => c.result.opsPerSec / direct[i]!.result.opsPerSec);
        const m = (f: (c: Cell) => number): number => median(list.map(f));
        rows.push([
          mix.toUpperCase(),
          String(pipeline),
          t === 'direct' ? 'Redis Cluster direct' : t === '1 node' ? 'caretkv, 1 node' : 'caretkv, 2 nodes',
          kilo(m((c) => c.result.opsPerSec)),
          t === 'direct'
            ? '1'
            : `**${fixed(median(ratios), 2)}x** (${fixed(Math.min(...ratios), 2)}–${fixed(Math.max(...ratios), 2)})`,
          fixed(
            m((c) => c.result.p50Ms),
            2,
          ),
          fixed(
            m((c) => c.result.p99Ms),
            2,
          ),
          t === 'direct'
            ? '–'
            : fixed(
                m((c) => c.nodesUs),
                1,
              ),
          fixed(
            m((c) => c.redisUs),
            1,
          ),
          fixed(
            m((c) => c.generatorUs),
            1,
          ),
        ]);
      }
    }
  }
  return [
    `${conns} clients, ${KEYSPACE / 1000}k keys over ${NAMESPACES} top-level namespaces (prefilled), ${VALUE.length}-byte values, ` +
      `${rounds} interleaved rounds of ${durationMs / 1000} s (after 0.5 s warm-up) per target; medians over the rounds; ` +
      `ratio to direct Redis taken within each round (median, min–max). Load average ${loadBefore} before, ${loadavg()} after.`,
    markdownTable(
      [
        'op',
        'pipeline',
        'target',
        'ops/s',
        'vs direct',
        'p50 ms',
        'p99 ms',
        'caretkv CPU µs/op',
        'Redis CPU µs/op',
        'generator CPU µs/op',
      ],
      rows,
    ),
  ].join('\n\n');
}

// ---- cross-node delivery -----------------------------------------------------------------------------

/**
 * One way of carrying numbered writes to a subscriber. `open` subscribes and resolves once the
 * subscription is held; then `write(i)` sends write i and `onArrival(i, at)` hears it arrive.
 * Add a mode by adding one of these (a new caretkv action pair is a `caretkvPair`).
 */
interface DeliveryMode {
  readonly name: string;
  open(onArrival: (i: number, at: number) => void): Promise<DeliveryPair>;
}
interface DeliveryPair {
  /** Sends writes [from, to) in one go; `onError` hears a failed one. */
  write(from: number, to: number, onError: () => void): void;
  close(): void;
}

/** A subscriber connection on one node holding `subscribe`, a writer connection on another. */
function caretkvPair(
  name: string,
  subscriberPort: number,
  writerPort: number,
  subscribe: string,
  write: (i: number) => string,
  numberOf: (push: { event: string; value?: unknown; message?: unknown }) => number | undefined,
): DeliveryMode {
  return {
    name,
    async open(onArrival) {
      const sub = await Line.open(subscriberPort);
      const writer = await Line.open(writerPort);
      sub.onPush = (line, at) => {
        const i = numberOf(JSON.parse(line) as { event: string });
        if (i !== undefined) onArrival(i, at);
      };
      await sub.ok(subscribe);
      // A node hears other nodes' changes over its Redis subscription: give it a moment to hold it.
      await sleep(200);
      return {
        write(from, to, onError) {
          let out = '';
          for (let i = from; i < to; i++) {
            out += `${write(i)}\n`;
            writer.expect((reply) => {
              if (!reply.startsWith('{"ok":true')) onError();
            });
          }
          writer.socket.write(out);
        },
        close() {
          sub.close();
          writer.close();
        },
      };
    },
  };
}

/** Redis alone: PUBLISH on one master, SUBSCRIBE on another (the path a change event takes). */
function redisPair(name: string, publishPort: number, subscribePort: number, channel: string): DeliveryMode {
  return {
    name,
    async open(onArrival) {
      const sub = new Redis({ host: '127.0.0.1', port: subscribePort });
      const pub = new Redis({ host: '127.0.0.1', port: publishPort });
      sub.on('message', (_channel: string, message: string) => onArrival(Number(message), performance.now()));
      await sub.subscribe(channel);
      await sleep(200);
      return {
        write(from, to, onError) {
          for (let i = from; i < to; i++) pub.publish(channel, String(i)).catch(onError);
        },
        close() {
          sub.disconnect();
          pub.disconnect();
        },
      };
    },
  };
}

interface DeliveryRun {
  latenciesMs: number[];
  sent: number;
  errors: number;
}

/** `deliveryRate` writes per second for `deliveryMs`, each timed from its send to its arrival. */
async function deliveryRun(mode: DeliveryMode): Promise<DeliveryRun> {
  const count = Math.round((deliveryRate * deliveryMs) / 1000);
  const sentAt = new Float64Array(count).fill(Number.NaN);
  const latenciesMs: number[] = [];
  const pair = await mode.open((i, at) => {
    if (i >= 0 && i < count && !Number.isNaN(sentAt[i]!)) latenciesMs.push(at - sentAt[i]!);
  });
  let errors = 0;
  let sent = 0;
  const started = performance.now();
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      const due = Math.min(count, Math.floor(((performance.now() - started) * deliveryRate) / 1000) + 1);
      if (due > sent) {
        sentAt.fill(performance.now(), sent, due);
        pair.write(sent, due, () => errors++);
        sent = due;
      }
      if (sent === count) {
        clearInterval(tick);
        done();
      }
    }, 1);
  });
  // Pushes still on their way: wait until they stop coming (at most 2 s).
  for (let waited = 0, seen = -1; waited < 2000 && latenciesMs.length !== seen; waited += 200) {
    seen = latenciesMs.length;
    await sleep(200);
  }
  pair.close();
  return { latenciesMs, sent: count, errors };
}

/** Whether a PUBLISH on A reaches a SUBSCRIBE on B now. */
async function publishCrossesNodes(setup: Setup): Promise<boolean> {
  const sub = await Line.open(setup.b.port);
  const pub = await Line.open(setup.a.port);
  let heard = false;
  sub.onPush = (line) => {
    if (line.includes('"channel":"probe^x"')) heard = true;
  };
  await sub.ok('{"action":"SUBSCRIBE","channels":["probe^>"]}');
  await sleep(200);
  for (let i = 0; i < 10 && !heard; i++) {
    await pub.ok('{"action":"PUBLISH","channel":"probe^x","message":1}');
    await sleep(100);
  }
  sub.close();
  pub.close();
  return heard;
}

/** Local TCP ports of a process's IPv4 sockets (its fds' inodes looked up in /proc/net/tcp). */
function localPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {}
  }
  const ports = new Set<number>();
  for (const row of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = row.trim().split(/\s+/);
    if (cols.length > 9 && inodes.has(cols[9]!)) ports.add(Number.parseInt(cols[1]!.split(':')[1]!, 16));
  }
  return ports;
}

/**
 * The master (index) that a node's subscription for change events (its "feed") is on: where a
 * change must travel to over the cluster bus when it is written on another master. The node also
 * holds one subscribed connection per master for Redis's expiry events, so the feed's master is
 * the one where the node has more subscribed connections than on the others. -1 if unclear.
 */
async function subscriptionMaster(setup: Setup, pid: number): Promise<number> {
  const ports = localPorts(pid);
  const counts: number[] = [];
  for (const admin of setup.admins) {
    let n = 0;
    for (const line of String(await admin.call('CLIENT', 'LIST')).split('\n')) {
      const port = Number(/ addr=[^ ]*:(\d+) /.exec(` ${line}`)?.[1]);
      if (ports.has(port) && / (p?sub)=[1-9]/.test(` ${line}`)) n++;
    }
    counts.push(n);
  }
  const most = Math.max(...counts);
  return most > 0 && counts.filter((n) => n === most).length === 1 ? counts.indexOf(most) : -1;
}

async function delivery(setup: Setup): Promise<string> {
  const { a, b, cluster } = setup;
  const masterPorts = cluster.masters.map((m) => m.port);
  const slots = await slotMap(setup);
  // The written namespace lives on a master other than the one B's subscription is on, so every
  // change crosses the cluster bus (with 3 masters, 2 namespaces in 3 would; this makes it all).
  const bMaster = await subscriptionMaster(setup, b.pid);
  let top = 'lat';
  for (let n = 0; bMaster !== -1 && slots[keySlot(`{${top}}`)] === bMaster; n++) top = `lat${n}`;
  const owner = slots[keySlot(`{${top}}`)]!;
  const observe = (name: string, port: number): DeliveryMode =>
    caretkvPair(
      name,
      port,
      a.port,
      `{"action":"OBSERVE","keys":["${top}^>"]}`,
      (i) => `{"action":"SET","key":"${top}^k${i % 1000}","value":${i}}`,
      (p) => (p.event === 'change' && typeof p.value === 'number' ? p.value : undefined),
    );
  const modes: DeliveryMode[] = [
    observe('caretkv OBSERVE of SET, node A -> node B', b.port),
    observe('caretkv OBSERVE of SET, node A -> node A (same node)', a.port),
    redisPair(
      'Redis alone: PUBLISH -> SUBSCRIBE, one master to another',
      masterPorts[owner]!,
      masterPorts[bMaster === -1 ? (owner + 1) % 3 : bMaster]!,
      'lat',
    ),
    redisPair(
      'Redis alone: PUBLISH -> SUBSCRIBE, same master',
      masterPorts[owner]!,
      masterPorts[owner]!,
      'lat',
    ),
  ];
  let publishNote = '';
  // Cross-node PUBLISH/SUBSCRIBE: measured when it works, or when asked for.
  if (publishMode === 'on' || (publishMode === 'auto' && (await publishCrossesNodes(setup))))
    modes.splice(
      1,
      0,
      caretkvPair(
        'caretkv PUBLISH -> SUBSCRIBE, node A -> node B',
        b.port,
        a.port,
        `{"action":"SUBSCRIBE","channels":["${top}^>"]}`,
        (i) => `{"action":"PUBLISH","channel":"${top}^c${i % 1000}","message":${i}}`,
        (p) => (p.event === 'message' && typeof p.message === 'number' ? p.message : undefined),
      ),
    );
  else if (publishMode === 'auto')
    publishNote =
      '\n\ncaretkv PUBLISH to SUBSCRIBE across nodes: not measured, a PUBLISH on A did not reach a SUBSCRIBE on B ' +
      '(a build without cross-node pub/sub); `--publish on` measures it regardless.';
  const runs = new Map<string, DeliveryRun[]>(modes.map((m) => [m.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const mode of modes.map((_, i) => modes[(i + round) % modes.length]!)) {
      const r = await deliveryRun(mode);
      runs.get(mode.name)!.push(r);
      const sorted = [...r.latenciesMs].sort((x, y) => x - y);
      log(
        `delivery round ${round + 1}/${rounds} ${mode.name}: ${r.latenciesMs.length}/${r.sent} p50 ${fixed(quantile(sorted, 0.5), 2)} p99 ${fixed(quantile(sorted, 0.99), 2)} max ${fixed(sorted.at(-1) ?? Number.NaN, 2)} ms`,
      );
    }
  }
  const rows = modes.map((mode) => {
    const list = runs.get(mode.name)!;
    const histogram = build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 60_000_000,
      numberOfSignificantValueDigits: 3,
    });
    for (const r of list)
      for (const ms of r.latenciesMs) histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
    const perRoundP99 = list.map((r) =>
      quantile(
        [...r.latenciesMs].sort((x, y) => x - y),
        0.99,
      ),
    );
    const sent = list.reduce((s, r) => s + r.sent, 0);
    const got = list.reduce((s, r) => s + r.latenciesMs.length, 0);
    return [
      mode.name,
      String(got),
      String(sent - got),
      fixed(histogram.getValueAtPercentile(50) / 1000, 2),
      fixed(histogram.getValueAtPercentile(99) / 1000, 2),
      fixed(histogram.maxValue / 1000, 2),
      perRoundP99.map((v) => fixed(v, 1)).join(', '),
      String(list.reduce((s, r) => s + r.errors, 0)),
    ];
  });
  const placement =
    bMaster === -1
      ? `Node B's Redis subscription was not found on any master, so whether a change crosses the cluster bus is unknown.`
      : `The written namespace \`${top}\` lives on master ${owner + 1} and node B's Redis subscription is on master ${bMaster + 1}: every change crosses the cluster bus.`;
  return (
    `A writer on node A at ${deliveryRate}/s for ${deliveryMs / 1000} s per round (a timer every ~1 ms sends what is due), ` +
    `a subscriber holding \`${top}^>\`; latency is the push's arrival at the subscriber minus the write's send time ` +
    `(one process, performance.now()). ${placement} The Redis rows send the same rate over ioredis between the same masters. ` +
    `${rounds} rounds, modes interleaved; percentiles over all rounds' samples:\n\n` +
    markdownTable(
      ['mode', 'pushes', 'lost', 'p50 ms', 'p99 ms', 'max ms', 'p99 per round ms', 'write errors'],
      rows,
    ) +
    publishNote
  );
}

// ---- DROP of a big namespace --------------------------------------------------------------------------------

interface ProbeSample {
  sentAt: number;
  ms: number;
}

/** Sends `request` on its own connection every ~1 ms (whether or not the last one came back). */
async function startProbe(port: number, request: string): Promise<() => ProbeSample[]> {
  const line = await Line.open(port);
  const samples: ProbeSample[] = [];
  const timer = setInterval(() => {
    const sentAt = performance.now();
    line.send(request, () => samples.push({ sentAt, ms: performance.now() - sentAt }));
  }, 1);
  return () => {
    clearInterval(timer);
    line.close();
    return samples;
  };
}

function probeFigures(samples: readonly ProbeSample[], from: number, to: number): [string, string, string] {
  const ms = samples
    .filter((s) => s.sentAt >= from && s.sentAt <= to)
    .map((s) => s.ms)
    .sort((x, y) => x - y);
  return [String(ms.length), fixed(quantile(ms, 0.99), 1), fixed(ms.at(-1) ?? Number.NaN, 1)];
}

/**
 * Every command into the masters' slow logs (`on`), or back to Redis's defaults. Turning it off
 * stops the logging first; the log is read, and only then shortened (that would trim it).
 */
async function slowlogOn(setup: Setup): Promise<void> {
  for (const admin of setup.admins) {
    await admin.call('CONFIG', 'SET', 'slowlog-max-len', '1000000');
    await admin.call('SLOWLOG', 'RESET');
    await admin.call('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
  }
}
async function slowlogOff(setup: Setup): Promise<void> {
  for (const admin of setup.admins) await admin.call('CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
}
async function slowlogDefaults(setup: Setup): Promise<void> {
  for (const admin of setup.admins) {
    await admin.call('SLOWLOG', 'RESET');
    await admin.call('CONFIG', 'SET', 'slowlog-max-len', '128');
  }
}

/**
 * Durations (µs) of the DROP script's runs in the masters' slow logs, told by the script's SHA1 as
 * src/store/redis/scripts.ts computes it: a `--cli` build whose DROP script differs finds none.
 */
async function dropSteps(setup: Setup): Promise<number[]> {
  const steps: number[] = [];
  for (const admin of setup.admins) {
    const entries = (await admin.call('SLOWLOG', 'GET', '-1')) as [number, number, number, string[]][];
    for (const [, , micros, args] of entries)
      if (args[0]?.toUpperCase() === 'EVALSHA' && args[1] === DROP.sha) steps.push(micros);
  }
  if (steps.length === 0)
    log('drop: no EVALSHA of the DROP script in SLOWLOG (does the server build match src/?)');
  return steps;
}

async function drop(setup: Setup): Promise<string> {
  const rows: string[][] = [];
  const batch = 1000;
  for (let round = 0; round < rounds; round++) {
    const top = `drop${round}`;
    const ns = `${top}^items`;
    const conn = await Line.open(setup.a.port);
    const fillStarted = performance.now();
    // MSET batches, 4 in flight.
    const inFlight: Promise<unknown>[] = [];
    for (let from = 0; from < dropKeys; from += batch) {
      const entries: Record<string, string> = {};
      for (let i = from; i < Math.min(dropKeys, from + batch); i++)
        entries[`k${String(i).padStart(6, '0')}`] = VALUE;
      inFlight.push(conn.ok(JSON.stringify({ action: 'MSET', namespace: ns, entries })));
      if (inFlight.length >= 4) await inFlight.shift();
    }
    await Promise.all(inFlight);
    const fillMs = performance.now() - fillStarted;
    const count = await conn.ok(`{"action":"COUNT","namespace":"${ns}"}`);
    if (count !== dropKeys) throw new Error(`${ns} holds ${String(count)} keys, not ${dropKeys}`);
    await conn.ok(`{"action":"SET","key":"${top}^probe","value":"p"}`);
    // Loads the DROP script into the namespace's master (a first run is EVAL, not EVALSHA).
    await conn.ok(`{"action":"DROP","namespace":"${top}^warm"}`);

    const stopPing = await startProbe(setup.a.port, '{"action":"PING"}');
    const stopGet = await startProbe(setup.a.port, `{"action":"GET","key":"${top}^probe"}`);
    // Baseline: the probes alone for 1 s.
    const idleFrom = performance.now();
    await sleep(1000);
    const idleTo = performance.now();
    await slowlogOn(setup);
    await sleep(50);
    const t0 = performance.now();
    const dropped = await conn.ok(`{"action":"DROP","namespace":"${ns}"}`);
    const t1 = performance.now();
    await slowlogOff(setup);
    await sleep(100);
    const ping = stopPing();
    const get = stopGet();
    conn.close();
    const steps = (await dropSteps(setup)).sort((x, y) => x - y);
    await slowlogDefaults(setup);
    const redisMs = steps.reduce((s, v) => s + v, 0) / 1000;
    const [, idlePing99, idlePingMax] = probeFigures(ping, idleFrom, idleTo);
    const [, idleGet99, idleGetMax] = probeFigures(get, idleFrom, idleTo);
    const [, ping99, pingMax] = probeFigures(ping, t0, t1);
    const [, get99, getMax] = probeFigures(get, t0, t1);
    log(
      `drop round ${round + 1}/${rounds}: ${String(dropped)} keys in ${fixed(t1 - t0, 0)} ms, ${steps.length} steps, max ${quantile(steps, 1)} us; PING p99/max ${ping99}/${pingMax} ms, GET ${get99}/${getMax} ms`,
    );
    rows.push([
      String(round + 1),
      fixed(fillMs, 0),
      String(dropped),
      fixed(t1 - t0, 0),
      String(steps.length),
      fixed(quantile(steps, 0.5), 0),
      fixed(quantile(steps, 1), 0),
      fixed(redisMs, 0),
      `${ping99} / ${pingMax}`,
      `${get99} / ${getMax}`,
      `${idlePing99} / ${idlePingMax}`,
      `${idleGet99} / ${idleGetMax}`,
    ]);
  }
  return (
    `${dropKeys / 1000}k keys in one namespace (\`dropN^items\`, filled through node A with MSETs of ${batch}, 4 in flight), ` +
    `then DROP through node A (the engine deletes at most ${DROP_BATCH} keys per script step). Probes on node A, each on ` +
    `its own connection, every ~1 ms: PING (the node's event loop only) and GET of a key in the same top-level ` +
    `namespace (a round trip to the master the DROP works on); "idle" is the second before the DROP. ` +
    `Step times are the DROP script's EVALSHA entries in the masters' SLOWLOG (execution inside Redis).\n\n` +
    markdownTable(
      [
        'round',
        'fill ms',
        'keys dropped',
        'DROP ms',
        'steps',
        'step p50 µs',
        'step max µs',
        'Redis ms in steps',
        'PING p99 / max ms',
        'GET p99 / max ms',
        'idle PING p99 / max',
        'idle GET p99 / max',
      ],
      rows,
    )
  );
}

// ---- main ----------------------------------------------------------------------------------------------------

function machine(): string {
  // `--commit` names the build `--cli` points at when it is not this checkout's.
  let commit = arg('commit', '');
  try {
    commit ||= execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    commit = 'unknown';
  }
  return (
    `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${mb(os.totalmem())} RAM, Node ${process.version}, ` +
    `Redis ${redisVersion()}, commit ${commit}, load ${loadavg()}. Everything (3 masters, 2 caretkv nodes, the generator) ` +
    `shares these cores.`
  );
}

async function main(): Promise<void> {
  if (!redisAvailable()) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const parts = [machine()];
  log('starting a 3-master Redis Cluster and two caretkv nodes');
  const cluster = await startBenchCluster(3);
  const servers: RunningServer[] = [];
  const admins: Redis[] = [];
  const cleanUp = async (): Promise<void> => {
    for (const admin of admins) admin.disconnect();
    for (const s of servers) await s.stop();
    await cluster.stop();
  };
  // Ctrl-C stops the Redis and caretkv processes too (they would outlive us otherwise).
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
  try {
    const flags = ['--store', cluster.storeUrl];
    const a = await startServer('caretkv', CLI, flags);
    servers.push(a);
    const b = await startServer('caretkv', CLI, flags);
    servers.push(b);
    await untilServing(a.port);
    await untilServing(b.port);
    for (const m of cluster.masters) admins.push(new Redis({ host: '127.0.0.1', port: m.port }));
    const setup: Setup = { cluster, a, b, admins };
    if (only.has('throughput')) parts.push(await throughput(setup));
    if (only.has('delivery')) parts.push(await delivery(setup));
    if (only.has('drop')) parts.push(await drop(setup));
  } finally {
    await cleanUp();
  }
  process.stdout.write(`${parts.join('\n\n')}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
