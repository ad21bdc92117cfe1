import { describe, expect, it } from 'vitest';
import { colorWanted, formatError, formatPush, formatResult, MACHINE, type Style } from './format.js';

const PRETTY: Style = { color: false, pretty: true };
const COLOR: Style = { color: true, pretty: true };
const ANSI = /\x1b\[/;

describe('format', () => {
  it('machine style: one line of JSON per result, no colour', () => {
    const value = { a: 'x\ny', b: [1, 2, { c: null }], long: 'z'.repeat(200) };
    const text = formatResult(value, MACHINE);
    expect(text).not.toContain('\n');
    expect(JSON.parse(text)).toEqual(value);
    expect(formatResult(undefined, MACHINE)).toBe('null');
    expect(formatError('KEY_NOT_FOUND', 'no such key', MACHINE)).toBe('(error) KEY_NOT_FOUND no such key');
    expect(formatPush({ event: 'message', channel: 'a' }, MACHINE)).toBe('{"event":"message","channel":"a"}');
  });

  it('pretty style: short values on one line, long ones indented, both still JSON', () => {
    expect(formatResult({ a: 1, b: [true] }, PRETTY)).toBe('{"a": 1, "b": [true]}');
    const big = { keys: Array.from({ length: 20 }, (_, i) => `user-${i}`), next: null };
    const text = formatResult(big, PRETTY);
    expect(text.split('\n').length).toBeGreaterThan(3);
    expect(text).toContain('\n  "keys": ');
    expect(JSON.parse(text)).toEqual(big);
    expect(formatResult([], PRETTY)).toBe('[]');
    expect(formatResult('Ada', PRETTY)).toBe('"Ada"');
  });

  it('colour only when the style says so, and the text under it unchanged', () => {
    expect(formatResult({ a: 'b' }, PRETTY)).not.toMatch(ANSI);
    const coloured = formatResult({ a: 'b', n: 1 }, COLOR);
    expect(coloured).toMatch(ANSI);
    expect(coloured.replace(/\x1b\[\d+m/g, '')).toBe('{"a": "b", "n": 1}');
    expect(formatError('X', 'm', COLOR)).toBe('\x1b[31m(error) X\x1b[39m m');
  });

  it('colorWanted: a TTY, unless NO_COLOR or TERM=dumb; FORCE_COLOR for pipes', () => {
    expect(colorWanted({ isTTY: true }, {})).toBe(true);
    expect(colorWanted({ isTTY: false }, {})).toBe(false);
    expect(colorWanted({}, {})).toBe(false);
    expect(colorWanted({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorWanted({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colorWanted({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(colorWanted({ isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorWanted({ isTTY: true }, { FORCE_COLOR: '0' })).toBe(true);
    expect(colorWanted({ isTTY: false }, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(false);
  });
});
