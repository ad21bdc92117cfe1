/** The fuzzer's runner: sessions over real sockets, churn, and the after-run accounting (see scripts/fuzz.ts). */
import net from 'node:net';
import {
  type InfoSnapshot,
  info,
  LineClient,
  mib,
  type ProbedServer,
  Rng,
  randomSeed,
  type ServerSample,
  startProbedServer,
} from '../harness.js';
import { FUZZ_MAX_LINE_BYTES, frame, j } from './generate.js';
import { frameLines, judge, oracle } from './oracle.js';

// ---------------------------------------------------------------------------------------------
// Sessions

export interface FuzzCounts {
  sessions: number;
  cleanSessions: number;
  abruptSessions: number;
  frames: number;
  bytes: number;
  responses: number;
  /** Pub/sub and key-change pushes received by clean sessions. */
  pushes: number;
  /** Lines of clean sessions, by the action the oracle dispatched them to. */
  cleanDispatched: Record<string, number>;
  cleanErrors: number;
  cleanErrorsByCode: Record<string, number>;
  /** Lines of abrupt sessions the server may or may not have read, by oracle action. */
  abruptDispatched: Record<string, number>;
  abruptLines: number;
}

function newCounts(): FuzzCounts {
  return {
    sessions: 0,
    cleanSessions: 0,
    abruptSessions: 0,
    frames: 0,
    bytes: 0,
    responses: 0,
    pushes: 0,
    cleanDispatched: {},
    cleanErrors: 0,
    cleanErrorsByCode: {},
    abruptDispatched: {},
    abruptLines: 0,
  };
}

const bump = (m: Record<string, number>, k: string, n = 1) => {
  m[k] = (m[k] ?? 0) + n;
};

function pause(rng: Rng): Promise<void> {
  return rng.chance(0.5)
    ? new Promise((resolve) => setImmediate(resolve))
    : new Promise((resolve) => setTimeout(resolve, rng.int(0, 3)));
}

/** Write `stream` in pieces cut at random byte boundaries, sometimes letting them go out separately. */
async function writeSplit(rng: Rng, socket: net.Socket, stream: Buffer): Promise<void> {
  let at = 0;
  while (at < stream.length && !socket.destroyed) {
    const n = rng.chance(0.3) ? rng.int(1, 16) : rng.int(1, Math.max(1, stream.length - at));
    const ok = socket.write(stream.subarray(at, at + n));
    at += n;
    if (!ok)
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    else if (rng.chance(0.2)) await pause(rng);
  }
}

const SESSION_TIMEOUT_MS = 60_000;

function asPush(line: string): { event: unknown; seq?: unknown } | null {
  try {
    const r = JSON.parse(line) as { event?: unknown; seq?: unknown };
    return 'event' in r && !('ok' in r) ? (r as { event: unknown; seq?: unknown }) : null;
  } catch {
    return null;
  }
}

async function session(
  rng: Rng,
  port: number,
  counts: FuzzCounts,
  failures: string[],
  framesLeft: () => number,
): Promise<void> {
  const burst = Math.min(framesLeft(), rng.chance(0.1) ? rng.int(100, 400) : rng.int(1, 48));
  const parts: Buffer[] = [];
  // Now and then a session that reads slowly asks for ~4 MiB of answers first, more than the
  // loopback socket buffers hold, so the server really does back up and stop reading.
  const slow = rng.chance(0.2);
  if (slow && rng.chance(0.25)) {
    const echo = Buffer.from(`{"action":"ECHO","value":"${'e'.repeat(60_000)}"}\n`);
    for (let i = 0; i < 64; i++) parts.push(echo);
  }
  for (let i = 0; i < burst; i++) {
    parts.push(frame(rng), Buffer.from(rng.chance(0.1) ? '\r\n' : '\n'));
  }
  // A clean session sometimes ends without the last newline: the server must answer on FIN.
  if (parts.length > 0 && rng.chance(0.1)) parts.pop();
  const stream = Buffer.concat(parts);
  const abrupt = rng.chance(0.25);
  counts.sessions++;
  counts.frames += burst;

  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });

  if (abrupt) {
    counts.abruptSessions++;
    const cut = rng.int(0, stream.length);
    const sent = stream.subarray(0, cut);
    counts.bytes += sent.length;
    // Whatever the server read of it may have run, the partial last line included (a destroy
    // sends FIN when nothing is unread, and the server answers a final unterminated line).
    for (const line of frameLines(sent, true, FUZZ_MAX_LINE_BYTES)) {
      counts.abruptLines++;
      const e = oracle(line);
      if (e.kind === 'dispatched') bump(counts.abruptDispatched, e.action);
    }
    socket.resume();
    await writeSplit(rng, socket, sent);
    if (rng.chance(0.3)) await pause(rng);
    if (rng.chance(0.5)) socket.resetAndDestroy();
    else socket.destroy();
    return;
  }

  counts.cleanSessions++;
  counts.bytes += stream.length;
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), SESSION_TIMEOUT_MS);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (slow) {
    // A slow reader for a while: the server's output backs up, it stops reading, and must pick
    // up exactly where it stopped once we drain it.
    socket.pause();
    const writing = writeSplit(rng, socket, stream);
    await new Promise((resolve) => setTimeout(resolve, rng.int(1, 50)));
    socket.resume();
    await writing;
  } else {
    await writeSplit(rng, socket, stream);
  }
  socket.end();
  const gotEnd = await ended;
  socket.destroy();
  if (!gotEnd) {
    failures.push(`a clean session was not finished by the server within ${SESSION_TIMEOUT_MS} ms`);
    return;
  }

  const received = Buffer.concat(chunks).toString('utf8').split('\n');
  const tail = received.pop();
  if (tail !== '') failures.push(`response stream ends mid-line: ${j(tail?.slice(0, 100))}`);
  // Pushes (pub/sub messages, once a fuzzed SUBSCRIBE lands) are not responses: set them aside.
  const responses: string[] = [];
  let lastSeq = 0;
  for (const line of received) {
    const push = line.startsWith('{"event":') ? asPush(line) : null;
    if (push === null) {
      responses.push(line);
      continue;
    }
    // Pushes (pub/sub messages and key changes from fuzzed SUBSCRIBE/OBSERVE) are not responses;
    // their `seq` counts every push to this connection, so it only ever grows.
    counts.pushes++;
    if (typeof push.seq === 'number') {
      if (push.seq <= lastSeq) failures.push(`push seq went from ${lastSeq} to ${push.seq}`);
      lastSeq = push.seq;
    }
  }
  const lines = frameLines(stream, true, FUZZ_MAX_LINE_BYTES);
  counts.responses += responses.length;
  if (responses.length !== lines.length) {
    failures.push(`${lines.length} request lines got ${responses.length} responses`);
  }
  for (let i = 0; i < Math.min(lines.length, responses.length); i++) {
    const e = oracle(lines[i]!);
    const problem = judge(e, responses[i]!);
    if (problem) {
      const shown = lines[i] === null ? '<over-long line>' : j(lines[i]!.toString('utf8').slice(0, 200));
      failures.push(`${problem}: request ${shown} got ${responses[i]!.slice(0, 200)}`);
    }
    if (e.kind === 'dispatched') bump(counts.cleanDispatched, e.action);
    const r = JSON.parse(responses[i]!) as { ok?: boolean; error?: { code: string } };
    if (r.ok === false) {
      counts.cleanErrors++;
      bump(counts.cleanErrorsByCode, r.error!.code);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Churn

export interface ChurnResult {
  cycles: number;
  pings: number;
  failures: string[];
}

/**
 * `cycles` connect/disconnect cycles, `concurrency` at a time: a third just connect and close, a
 * third send PING and half-close after the answer, a third reset (RST) mid-request.
 */
export async function runChurn(
  port: number,
  cycles: number,
  { concurrency = 32, seed = 1 }: { concurrency?: number; seed?: number } = {},
): Promise<ChurnResult> {
  const rng = new Rng(seed);
  let started = 0;
  let pings = 0;
  const failures: string[] = [];
  const one = async (kind: number): Promise<void> => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('error', reject);
      });
    } catch (err) {
      if (failures.length < 10) failures.push(`connect failed: ${(err as Error).message}`);
      return;
    }
    if (kind === 0) {
      socket.destroy();
      return;
    }
    if (kind === 2) {
      socket.write('{"action":"SET","key":"churn","val');
      socket.resetAndDestroy();
      return;
    }
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (t: string) => {
        text += t;
        if (text.includes('\n')) resolve(text);
      });
      socket.once('close', () => resolve(text));
      socket.write('{"action":"PING"}\n');
    });
    if (answer === '{"ok":true,"result":"PONG"}\n') pings++;
    else if (failures.length < 10) failures.push(`churn PING answered ${j(answer)}`);
    socket.end();
  };
  const lane = async (): Promise<void> => {
    while (started < cycles) {
      started++;
      await one(rng.int(0, 2));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, cycles) }, lane));
  return { cycles: started, pings, failures };
}

// ---------------------------------------------------------------------------------------------
// The run

export interface FuzzOptions {
  frames: number;
  seconds: number;
  connections?: number;
  seed?: number;
  /** Connect/disconnect cycles after the fuzz (0 = none). */
  churn?: number;
  /** Fuzz a server already running here instead of starting a measured one (no memory checks). */
  port?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  ok: boolean;
  seed: number;
  failures: string[];
  counts: FuzzCounts;
  elapsedMs: number;
  churn: ChurnResult | null;
  before: InfoSnapshot;
  after: InfoSnapshot;
  baseline: ServerSample | null;
  final: ServerSample | null;
  /** Longest event-loop delay in the server while it was being fuzzed (ms). */
  loopMaxMs: number | null;
  /** The server's CPU use while it was being fuzzed (% of one core): low with a long delay = starved. */
  cpuPercent: number | null;
}

const CANARIES: Record<string, unknown> = {
  'canary^plain': 'intact',
  'canary^unicode': 'caf\u00e9 😀 \u0000 \u2028 "quoted"',
  'canary^nested': { a: [1, 2, { b: null }], __proto__x: true, n: -0.5 },
  'canary^null': null,
  'canary^number': 9007199254740991,
  'canary^deep^er^key': [[[[['deep']]]]],
};

/** Heap may sit this far above its baseline after the run (after dropping the fuzz keys and GC). */
const HEAP_SLACK_BYTES = 16 * 1048576;

async function dropFuzzKeys(client: LineClient): Promise<void> {
  // Every key the fuzzer could have written lives outside `canary`; page and remove them all.
  for (;;) {
    const ns = await client.request<{ namespaces: string[] }>({ action: 'NAMESPACES', limit: 10_000 });
    const keys = await client.request<{ keys: string[] }>({ action: 'KEYS', limit: 10_000 });
    const namespaces = (ns.result?.namespaces ?? []).filter((n) => n !== 'canary');
    const roots = keys.result?.keys ?? [];
    if (namespaces.length === 0 && roots.length === 0) return;
    client.send(
      ...namespaces.map((n) => ({ action: 'DROP', namespace: n })),
      ...roots.map((k) => ({ action: 'DEL', key: k })),
    );
    await client.take(namespaces.length + roots.length);
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? randomSeed();
  const rng = new Rng(seed);
  const log = options.log ?? (() => {});
  const failures: string[] = [];
  const counts = newCounts();
  log(`fuzz: seed ${seed} (rerun with --seed ${seed}), ${options.frames} frames / ${options.seconds} s`);

  let server: ProbedServer | null = null;
  let port = options.port;
  if (port === undefined) {
    // No idle timeout: the control connection sits idle through the whole run (idle timeouts are
    // exercised in test/faults.test.ts).
    server = await startProbedServer({ config: { maxLineBytes: FUZZ_MAX_LINE_BYTES, idleTimeout: 0 } });
    port = server.port;
  }
  let control: LineClient | undefined;
  try {
    control = await LineClient.open(port);
    const written = await control.request({ action: 'MSET', entries: CANARIES });
    if (!written.ok) throw new Error(`canaries not written: ${j(written)}`);
    const baseline = server ? await server.sample({ gc: true }) : null;
    const before = await info(control);

    const started = Date.now();
    const deadline = started + options.seconds * 1000;
    const framesLeft = () => options.frames - counts.frames;
    const running = () => framesLeft() > 0 && Date.now() < deadline && failures.length < 50;
    const lane = async (laneRng: Rng): Promise<void> => {
      while (running()) {
        try {
          await session(laneRng, port!, counts, failures, framesLeft);
        } catch (err) {
          failures.push(`session failed: ${(err as Error).message}`);
        }
      }
    };
    await server?.sample(); // the loop-delay window is the fuzz itself
    const lanes = Array.from({ length: options.connections ?? 32 }, () => lane(rng.fork()));
    let ticker: NodeJS.Timeout | undefined;
    ticker = setInterval(() => {
      log(
        `  ${Math.round((Date.now() - started) / 1000)} s: ${counts.frames} frames, ${counts.sessions} sessions`,
      );
    }, 5000);
    await Promise.all(lanes);
    clearInterval(ticker);
    ticker = undefined;
    const elapsedMs = Date.now() - started;
    const fuzzWindow = server ? await server.sample() : null;

    const churn = options.churn ? await runChurn(port, options.churn, { seed: rng.u32() }) : null;
    if (churn) failures.push(...churn.failures);

    // Every connection the run opened is gone (the transport's close is asynchronous).
    const control_ = control;
    let infoCalls = 0;
    const snapshot = () => {
      infoCalls++;
      return info(control_);
    };
    let after = await snapshot();
    const deadlineClose = Date.now() + 15_000;
    while (after.connections.current !== 1 && Date.now() < deadlineClose) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = await snapshot();
    }
    failures.push(
      ...account(before, after, counts, {
        opened: counts.sessions + (churn?.cycles ?? 0),
        controlInfo: infoCalls,
        churnPings: churn?.pings ?? 0,
      }),
    );

    const ping = await control.request({ action: 'PING', id: 'after' });
    if (ping.result !== 'PONG' || ping.id !== 'after') failures.push(`PING after the run: ${j(ping)}`);
    const canaries = await control.request<Record<string, unknown>>({
      action: 'MGET',
      keys: Object.keys(CANARIES),
    });
    if (j(canaries.result) !== j(CANARIES)) failures.push(`canaries changed: ${j(canaries.result)}`);
    const canaryCount = await control.request({ action: 'COUNT', namespace: 'canary' });
    if (canaryCount.result !== Object.keys(CANARIES).length) {
      failures.push(`canary namespace holds ${j(canaryCount.result)} keys`);
    }

    let final: ServerSample | null = null;
    if (server && baseline) {
      await dropFuzzKeys(control);
      final = await server.sample({ gc: true });
      if (final.heapUsed > baseline.heapUsed + HEAP_SLACK_BYTES) {
        failures.push(
          `heap did not return near its baseline: ${mib(baseline.heapUsed)} MiB -> ${mib(final.heapUsed)} MiB`,
        );
      }
      for (const record of server.problems.filter((r) => (r.level as number) >= 50)) {
        failures.push(`server logged an error: ${j(record).slice(0, 300)}`);
      }
    }
    return {
      ok: failures.length === 0,
      seed,
      failures: failures.slice(0, 50),
      counts,
      elapsedMs,
      churn,
      before,
      after,
      baseline,
      final,
      loopMaxMs: fuzzWindow?.loopMaxMs ?? null,
      cpuPercent: fuzzWindow?.cpuPercent ?? null,
    };
  } finally {
    control?.close();
    if (server) {
      const exit = await server.stop();
      if (exit.code !== 0) failures.push(`server exited with ${exit.code ?? exit.signal} on SIGTERM`);
    }
  }
}

/** The INFO accounting described at the top of this file; returns what does not add up. */
export function account(
  before: InfoSnapshot,
  after: InfoSnapshot,
  c: FuzzCounts,
  extra: { opened: number; controlInfo: number; churnPings: number },
): string[] {
  const { opened } = extra;
  const problems: string[] = [];
  const actions = new Set([...Object.keys(after.commands.byAction), ...Object.keys(c.cleanDispatched)]);
  for (const a of actions) {
    const delta = (after.commands.byAction[a] ?? 0) - (before.commands.byAction[a] ?? 0);
    // The control connection's INFOs after `before` (the last one counted itself) and churn's PINGs.
    const low =
      (c.cleanDispatched[a] ?? 0) +
      (a === 'INFO' ? extra.controlInfo : 0) +
      (a === 'PING' ? extra.churnPings : 0);
    const high = low + (c.abruptDispatched[a] ?? 0);
    if (delta < low || delta > high)
      problems.push(`INFO commands.byAction.${a} grew by ${delta}, expected ${low}..${high}`);
  }
  const errors = after.errors.total - before.errors.total;
  if (errors < c.cleanErrors || errors > c.cleanErrors + c.abruptLines) {
    problems.push(
      `INFO errors.total grew by ${errors}, expected ${c.cleanErrors}..${c.cleanErrors + c.abruptLines}`,
    );
  }
  for (const [code, n] of Object.entries(c.cleanErrorsByCode)) {
    const delta = (after.errors.byCode[code] ?? 0) - (before.errors.byCode[code] ?? 0);
    if (delta < n || delta > n + c.abruptLines)
      problems.push(`INFO errors.byCode.${code} grew by ${delta}, expected >= ${n}`);
  }
  if ((after.errors.byCode.INTERNAL ?? 0) !== 0)
    problems.push(`${after.errors.byCode.INTERNAL} INTERNAL errors`);
  const connections = after.connections.total - before.connections.total;
  if (connections !== opened)
    problems.push(`INFO connections.total grew by ${connections}, expected ${opened}`);
  if (after.connections.current !== 1) {
    problems.push(
      `INFO connections.current is ${after.connections.current}, expected 1 (the control connection)`,
    );
  }
  return problems;
}
