/**
 * The codec, stage by stage (src/protocol/codec.ts, validate.ts): what one request line costs to
 * decode and one response to encode, for the lines `caretkv bench` sends.
 *
 *   npx tsx bench/codec.ts
 *
 * Each row is the median of 5 runs, CPU time per operation (see bench/lib/stats.ts). The stage
 * rows add up to roughly the `decode()` row; the alternatives beside them are what was weighed.
 */
import { isUtf8 } from 'node:buffer';
import { KeySpace } from '../src/cli/bench/workload.js';
import { decode, encodeOk, nestsDeeperThan } from '../src/protocol/codec.js';
import { COMPILED } from '../src/protocol/validate.js';
import { type MicroResult, micro, printMicro } from './lib/stats.js';

const N = 4096;
const keys = new KeySpace(100_000);
const VALUE = 'x'.repeat(32);
const lines = Array.from({ length: N }, (_, i) =>
  Buffer.from(
    i % 2 === 0
      ? `{"action":"SET","key":"${keys.key(i * 7)}","value":"${VALUE}"}`
      : `{"action":"GET","key":"${keys.key(i * 7)}"}`,
    'latin1',
  ),
);
// The framer hands out views into a larger chunk; so do these.
const chunk = Buffer.concat(lines.map((l) => Buffer.concat([l, Buffer.from('\n')])));
const views: Buffer[] = [];
const ranges: [number, number][] = [];
for (let at = 0, i = 0; i < N; i++) {
  const end = chunk.indexOf(10, at);
  views.push(chunk.subarray(at, end));
  ranges.push([at, end]);
  at = end + 1;
}
const texts = views.map((v) => v.toString('utf8'));
const parsed = texts.map((t) => JSON.parse(t) as { action: string });
const decoder = new TextDecoder('utf-8', { fatal: false });
const setCheck = COMPILED.get('SET')!.check;
const getCheck = COMPILED.get('GET')!.check;
const stored = JSON.stringify(VALUE);

const rows: MicroResult[] = [
  micro('decode() whole', (i) => decode(views[i % N]!)),
  micro('framer view: chunk.subarray(start, end)', (i) => {
    const [s, e] = ranges[i % N]!;
    return chunk.subarray(s, e);
  }),
  micro('bytes -> text: buf.toString("utf8")', (i) => views[i % N]!.toString('utf8')),
  micro('bytes -> text: chunk.toString("utf8", s, e)', (i) => {
    const [s, e] = ranges[i % N]!;
    return chunk.toString('utf8', s, e);
  }),
  micro('bytes -> text: chunk.utf8Slice(s, e)', (i) => {
    const [s, e] = ranges[i % N]!;
    return (chunk as Buffer & { utf8Slice(s: number, e: number): string }).utf8Slice(s, e);
  }),
  micro('bytes -> text: TextDecoder.decode', (i) => decoder.decode(views[i % N]!)),
  micro('U+FFFD scan: text.indexOf("\\uFFFD")', (i) => texts[i % N]!.indexOf('\uFFFD')),
  micro('exact UTF-8 check: isUtf8(buf)', (i) => isUtf8(views[i % N]!)),
  micro('depth check: nestsDeeperThan(text, 64)', (i) => nestsDeeperThan(texts[i % N]!, 64)),
  micro('JSON.parse(text)', (i) => JSON.parse(texts[i % N]!)),
  micro('action lookup: COMPILED.get(action)', (i) => COMPILED.get(parsed[i % N]!.action)),
  micro('schema check (ajv, SET/GET)', (i) => (i % 2 === 0 ? setCheck : getCheck)(parsed[i % N])),
  micro('encodeOk(undefined, stored value)', () => encodeOk(undefined, stored)),
  micro('encodeOk(7, "true")', () => encodeOk(7, 'true')),
  micro('JSON.stringify(value) (SET stores JSON text)', () => JSON.stringify(VALUE)),
];
printMicro('Codec: one bench request line (ns per line; SET and GET alternate)', rows);
