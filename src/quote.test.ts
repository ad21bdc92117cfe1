import { describe, expect, it } from 'vitest';
import { PATH_QUOTE_MAX, quote } from './quote.js';

describe('quote', () => {
  it('JSON-quotes short text as is', () => {
    expect(quote('a "b"\n')).toBe('"a \\"b\\"\\n"');
  });

  it('cuts long text to the limit, marking the cut', () => {
    const q = JSON.parse(quote('x'.repeat(500))) as string;
    expect(q).toHaveLength(200);
    expect(q.endsWith('...')).toBe(true);
    expect(JSON.parse(quote('y'.repeat(65), PATH_QUOTE_MAX))).toHaveLength(PATH_QUOTE_MAX);
    expect(JSON.parse(quote('y'.repeat(64), PATH_QUOTE_MAX))).toBe('y'.repeat(64));
  });
});
