import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Journal } from '../memory.js';
import {
  crcOfString,
  decode,
  frame,
  RecordError,
  recordJournal,
  setRecord,
  writeSetRecord,
} from './records.js';
import { scanFile } from './scan.js';

type Call = [string, ...unknown[]];

function recorder(calls: Call[]): Journal {
  return {
    set: (...a) => calls.push(['set', ...a]),
    del: (...a) => calls.push(['del', ...a]),
    drop: (...a) => calls.push(['drop', ...a]),
    mset: (e) => calls.push(['mset', e.map(([k, v]) => [k, v])]),
    expire: (...a) => calls.push(['expire', ...a]),
    persist: (...a) => calls.push(['persist', ...a]),
  };
}

// Any string a key may be (lone surrogates, quotes, backslashes, tabs included: the format must not care).
const key = fc.string({ unit: 'binary', maxLength: 20 });
const value = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v));
const time = fc.oneof(fc.integer({ min: 0, max: 2 ** 47 }), fc.double({ min: 0, max: 2 ** 47, noNaN: true }));
const call: fc.Arbitrary<Call> = fc.oneof(
  fc.tuple(fc.constant('set'), key, value, fc.option(time, { nil: undefined })),
  fc.tuple(fc.constant('del'), key),
  fc.tuple(fc.constant('drop'), key),
  fc.tuple(fc.constant('mset'), fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 5 })),
  fc.tuple(fc.constant('expire'), key, time),
  fc.tuple(fc.constant('persist'), key),
);

function replay(lines: string[]): Call[] {
  const calls: Call[] = [];
  for (const line of lines) decode(line.slice(9, -1), recorder(calls));
  return calls;
}

function write(lines: string[], calls: Call[]): void {
  const journal = recordJournal({
    append: (line) => lines.push(line),
    appendSet: (k, v, at) => lines.push(setRecord(k, v, at)),
  });
  for (const [op, ...args] of calls) (journal[op as keyof Journal] as (...a: unknown[]) => void)(...args);
}

const dir = mkdtempSync(join(tmpdir(), 'caretkv-records-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('log records', () => {
  it('decode what they encode: every change, any key, any JSON value (property)', () => {
    fc.assert(
      fc.property(fc.array(call, { maxLength: 20 }), (calls) => {
        const lines: string[] = [];
        write(lines, calls);
        for (const line of lines) expect(line.split('\n')).toHaveLength(2); // one line per record
        expect(replay(lines)).toEqual(calls);
      }),
    );
  });

  it('are read back from a file with their checksums verified (same CRC-32 as zlib)', () => {
    fc.assert(
      fc.property(fc.array(call, { minLength: 1, maxLength: 20 }), (calls) => {
        const lines: string[] = [];
        write(lines, calls);
        const path = join(dir, 'prop.log');
        writeFileSync(path, lines.join(''));
        const read: Call[] = [];
        const scan = scanFile(path, recorder(read));
        expect(scan.problem).toBeNull();
        expect(scan.records).toBe(calls.length);
        expect(read).toEqual(calls);
      }),
      { numRuns: 50 },
    );
  });

  it('are written into a buffer byte for byte as setRecord writes them (the rewrite path)', () => {
    fc.assert(
      fc.property(key, value, fc.option(time, { nil: undefined }), fc.nat(64), (k, v, at, offset) => {
        const buf = Buffer.alloc(offset + 8 * (k.length + v.length) + 64);
        const end = writeSetRecord(buf, offset, k, v, at);
        expect(buf.subarray(offset, end).toString('utf8')).toBe(setRecord(k, v, at));
        expect(writeSetRecord(Buffer.alloc(offset + 10), offset, k, v, at)).toBe(-1);
      }),
    );
  });

  it("checksum a string's UTF-8 bytes exactly as zlib.crc32 does (any string, lone surrogates too)", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 40 }),
          fc.string({ unit: 'grapheme', maxLength: 40 }),
        ),
        (text) => {
          expect(crcOfString(text)).toBe(crc32(text));
        },
      ),
      { numRuns: 1000 },
    );
    expect(crcOfString('é😀\ud800x')).toBe(crc32('é😀\ud800x'));
  });

  it('are one readable line each', () => {
    const lines: string[] = [];
    write(lines, [
      ['set', 'users^1', '{"name":"Ada"}', undefined],
      ['set', 'session^x', '1', 1_700_000_000_000],
      [
        'mset',
        [
          ['a', '1'],
          ['b', 'null'],
        ],
      ],
    ]);
    expect(lines.map((l) => l.slice(9))).toEqual([
      'S\t"users^1"\t{"name":"Ada"}\n',
      'T\t"session^x"\t1700000000000\t1\n',
      'M\t[["a",1],["b",null]]\n',
    ]);
  });

  it('refuse payloads with no meaning, even with a valid checksum', () => {
    const sink = recorder([]);
    for (const payload of [
      'X\t"k"',
      'S\t"k"',
      'S\tk\t1',
      'D\t"k"\textra',
      'T\t"k"\tsoon\t1',
      'M\t{"a":1}',
      'E\t"k"\t',
    ]) {
      expect(() => decode(payload, sink), payload).toThrow(RecordError);
    }
    expect(frame('D\t"k"')).toMatch(/^[0-9a-f]{8} D\t"k"\n$/);
  });

  it('tells a torn tail from damage in the middle', () => {
    const lines: string[] = [];
    write(lines, [
      ['del', 'a'],
      ['del', 'b'],
      ['del', 'c'],
    ]);
    const path = join(dir, 'torn.log');
    writeFileSync(path, `${lines[0]}${lines[1]}${lines[2]!.slice(0, 5)}`);
    expect(scanFile(path, recorder([])).problem).toMatchObject({
      offset: lines[0]!.length * 2,
      validAfter: false,
    });
    writeFileSync(path, `${lines[0]}garbage\n${lines[2]}`);
    expect(scanFile(path, recorder([])).problem).toMatchObject({
      offset: lines[0]!.length,
      reason: 'not a record line',
      validAfter: true,
    });
  });
});
