/**
 * Protocol fuzzer over real sockets.
 *
 *   npm run fuzz -- [--frames 200000] [--seconds 60] [--connections 32] [--seed N] [--churn 0]
 *
 * Frames are structure-aware mutations of valid requests (dropped / swapped / retyped fields,
 * huge, negative and non-finite numbers, deep nesting, long strings, unicode, NUL and invalid
 * UTF-8, `__proto__` / `constructor` keys, action case variants, unknown and duplicate fields,
 * ids of every type), byte-level damage to them (truncation, inserted/flipped bytes, stray
 * CR/LF), and raw garbage (random bytes, non-objects, 100000 `[`, lines over the limit). Each
 * session is one connection: a pipelined burst written in pieces split at random byte
 * boundaries (sometimes while not reading, so the server's output backs up and it stops reading),
 * then either a clean half-close (every response is read and checked) or an abrupt exit mid-frame
 * (destroy, or RST).
 *
 * Every response to a clean session is checked against an oracle: the same framing rules and the
 * codec's own `decode()`, run locally. A line the codec refuses must get exactly that error (code,
 * message, id); a line it accepts was dispatched and may only fail with the action's documented
 * codes (never INTERNAL). PING and ECHO answers are checked exactly.
 *
 * Afterwards, what must hold (see docs/reliability.md, "What must add up"):
 * - PING answers; the canary keys written before the run are intact.
 * - INFO accounting, as deltas between an INFO before and one after the run:
 *   clean[a] + 1(INFO itself, for a = INFO) <= commands.byAction[a] <= that + abrupt[a] for
 *   every action a, where clean[a] counts lines of clean sessions the oracle dispatched to a and
 *   abrupt[a] lines of abrupt sessions it would have (the server may have read them or not);
 *   errors.total lies between the error responses received and that plus the abrupt lines;
 *   errors.byCode.INTERNAL stays 0; connections.total grew by exactly the sessions opened and
 *   connections.current is back to 1 (the control connection).
 * - Memory: after the fuzz keys are dropped and a forced GC, heapUsed is within a bound of the
 *   baseline taken after the canaries were written.
 * - The server logged nothing at error level.
 */
import { parseArgs } from 'node:util';
import { runFuzz } from './fuzz/runner.js';

export { FUZZ_MAX_LINE_BYTES, frame } from './fuzz/generate.js';
export { type Expectation, frameLines, judge, oracle } from './fuzz/oracle.js';
export * from './fuzz/runner.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      frames: { type: 'string', default: '200000' },
      seconds: { type: 'string', default: '60' },
      connections: { type: 'string', default: '32' },
      seed: { type: 'string' },
      churn: { type: 'string', default: '0' },
      port: { type: 'string' },
    },
  });
  const report = await runFuzz({
    frames: Number(values.frames),
    seconds: Number(values.seconds),
    connections: Number(values.connections),
    churn: Number(values.churn),
    ...(values.seed !== undefined && { seed: Number(values.seed) }),
    ...(values.port !== undefined && { port: Number(values.port) }),
    log: (line) => console.log(line),
  });
  const { before: _b, after: _a, ...summary } = report;
  console.log(JSON.stringify(summary, null, 2));
  console.log(report.ok ? 'fuzz: PASS' : `fuzz: FAIL (seed ${report.seed})`);
  process.exitCode = report.ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
