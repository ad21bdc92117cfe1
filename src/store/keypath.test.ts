import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isKeyPathError,
  joinKey,
  joinPath,
  KEY_MAX_DEPTH,
  KEY_MAX_LENGTH,
  KeyPathError,
  type KeyPathResult,
  nameOf,
  namespaceOf,
  parseDropNamespace,
  parseKey,
  parseNamespace,
  segmentCount,
  splitKey,
} from './keypath.js';

function message(result: KeyPathResult): string {
  if (!isKeyPathError(result)) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result.message;
}

describe('parseKey', () => {
  it('accepts canonical keys unchanged (same string, no copy)', () => {
    const key = 'users^42^name';
    expect(parseKey(key)).toBe(key);
    expect(parseKey('a')).toBe('a');
  });

  it('treats a leading ^ as optional', () => {
    expect(parseKey('^users^42^name')).toBe('users^42^name');
    expect(parseKey('^a')).toBe('a');
  });

  it.each([
    ['', 'key: must not be empty'],
    ['^', 'key: must not be empty'],
    ['a^^b', 'key: empty segment at position 2 in "a^^b"'],
    ['a^', 'key: empty segment at position 2 in "a^"'],
    ['^^a', 'key: empty segment at position 1 in "^^a"'],
    ['^a^', 'key: empty segment at position 2 in "^a^"'],
  ])('refuses %j with a message naming the problem', (input, expected) => {
    expect(message(parseKey(input))).toContain(expected);
  });

  it('refuses control characters and shows them escaped', () => {
    expect(message(parseKey('a\u0000b'))).toBe(
      'key: control character U+0000 in segment 1 of "a\\u0000b" (not allowed in key paths)',
    );
    expect(message(parseKey('a^b\nc'))).toContain('U+000A in segment 2');
    expect(message(parseKey('\u007f'))).toContain('U+007F');
    expect(message(parseKey('\u001f'))).toContain('U+001F');
  });

  it('accepts other characters, spaces and non-ASCII included', () => {
    for (const key of ['a b', 'café^ünïcode', '日本^語', 'emoji😀', '\u0080', '__proto__^constructor']) {
      expect(parseKey(key)).toBe(key);
    }
  });

  it('enforces the length limit on the canonical form', () => {
    const max = 'x'.repeat(KEY_MAX_LENGTH);
    expect(parseKey(max)).toBe(max);
    expect(parseKey(`^${max}`)).toBe(max);
    expect(message(parseKey(`${max}y`))).toBe(
      `key: longer than ${KEY_MAX_LENGTH} characters (got ${KEY_MAX_LENGTH + 1})`,
    );
  });

  it('enforces the depth limit', () => {
    const deepest = Array.from({ length: KEY_MAX_DEPTH }, () => 'a').join('^');
    expect(parseKey(deepest)).toBe(deepest);
    expect(message(parseKey(`${deepest}^a`))).toBe(
      `key: deeper than ${KEY_MAX_DEPTH} segments (got ${KEY_MAX_DEPTH + 1})`,
    );
  });

  it('names the field it was given and cuts long input in messages', () => {
    const long = `${'y'.repeat(200)}^^`;
    const text = message(parseKey(long, 'keys/3'));
    expect(text.startsWith('keys/3: empty segment')).toBe(true);
    expect(text.length).toBeLessThan(200);
  });
});

describe('parseNamespace / parseDropNamespace', () => {
  it('maps omitted, empty and a lone ^ to the root', () => {
    expect(parseNamespace(undefined)).toBe('');
    expect(parseNamespace('')).toBe('');
    expect(parseNamespace('^')).toBe('');
  });

  it('canonicalizes like keys', () => {
    expect(parseNamespace('^users^42')).toBe('users^42');
    expect(message(parseNamespace('users^'))).toContain('namespace: empty segment at position 2');
  });

  it('refuses to drop the root', () => {
    for (const root of [undefined, '', '^']) {
      expect(message(parseDropNamespace(root))).toContain('DROP needs a namespace');
    }
    expect(parseDropNamespace('^users')).toBe('users');
  });
});

describe('joinKey', () => {
  it('puts a key inside a namespace', () => {
    expect(joinKey('users', '42')).toBe('users^42');
    expect(joinKey('^users', '42^name')).toBe('users^42^name');
    expect(joinKey('', 'a')).toBe('a');
    expect(joinKey('^', 'a')).toBe('a');
    expect(joinKey(undefined, '^a^b')).toBe('a^b');
  });

  it('refuses an absolute or empty key under a namespace', () => {
    expect(message(joinKey('users', '^42'))).toContain('must not start with ^');
    expect(message(joinKey('users', ''))).toContain('key: must not be empty');
    expect(message(joinKey('users', '42^'))).toContain('empty segment');
    expect(message(joinKey('us^^ers', '42'))).toContain('namespace: empty segment');
  });

  it('applies the limits to the joined path', () => {
    const half = 'n'.repeat(KEY_MAX_LENGTH / 2);
    expect(message(joinKey(half, half))).toContain('longer than');
    const ns = Array.from({ length: KEY_MAX_DEPTH }, () => 'a').join('^');
    expect(message(joinKey(ns, 'b'))).toContain('deeper than');
    expect(joinKey(ns.slice(2), 'b')).toBe(`${ns.slice(2)}^b`);
  });
});

describe('splitting canonical keys', () => {
  it('splits into namespace and name', () => {
    expect(splitKey('users^42^name')).toEqual({ namespace: 'users^42', name: 'name' });
    expect(splitKey('a')).toEqual({ namespace: '', name: 'a' });
    expect(namespaceOf('a^b')).toBe('a');
    expect(nameOf('a^b')).toBe('b');
    expect(segmentCount('')).toBe(0);
    expect(segmentCount('a^b^c')).toBe(3);
    expect(joinPath('', 'a')).toBe('a');
  });
});

// Segments drawn from an alphabet that stresses the rules: carets, controls, astral characters.
const segment = fc.string({
  minLength: 1,
  maxLength: 8,
  unit: fc.constantFrom('a', 'Z', '9', ' ', 'é', '😀', '_'),
});
const segments = fc.array(segment, { minLength: 1, maxLength: 6 });
const anyText = fc.string({
  maxLength: 40,
  unit: fc.oneof(
    fc.constantFrom('^', '^', 'a', '\u0000', '\u001f', '\u007f'),
    fc.string({ minLength: 1, maxLength: 1 }),
  ),
});

describe('key path properties', () => {
  it('join then parse gives the segments back; the leading ^ changes nothing', () => {
    fc.assert(
      fc.property(segments, fc.boolean(), (parts, caret) => {
        const canonical = parts.join('^');
        const parsed = parseKey(caret ? `^${canonical}` : canonical);
        expect(parsed).toBe(canonical);
        expect((parsed as string).split('^')).toEqual(parts);
        const { namespace, name } = splitKey(canonical);
        expect(joinPath(namespace, name)).toBe(canonical);
        expect(joinKey(namespace, name)).toBe(canonical);
      }),
    );
  });

  it('canonical form is idempotent', () => {
    fc.assert(
      fc.property(anyText, (input) => {
        const once = parseKey(input);
        if (typeof once === 'string') expect(parseKey(once)).toBe(once);
      }),
    );
  });

  it('any string either parses or yields a message, never throws', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.string(), fc.string({ unit: 'binary' })), (input) => {
        for (const result of [
          parseKey(input),
          parseNamespace(input),
          parseDropNamespace(input),
          joinKey('ns', input),
        ]) {
          if (typeof result === 'string') {
            expect(result.length).toBeLessThanOrEqual(KEY_MAX_LENGTH);
            expect(result.startsWith('^') || result.endsWith('^') || result.includes('^^')).toBe(false);
            expect(/[\u0000-\u001f\u007f]/.test(result)).toBe(false);
          } else {
            expect(result).toBeInstanceOf(KeyPathError);
            expect(result.message).toMatch(/^(key|namespace): ./);
          }
        }
      }),
    );
  });

  it('agrees with a split-based reference implementation', () => {
    fc.assert(
      fc.property(anyText, (input) => {
        const body = input.startsWith('^') ? input.slice(1) : input;
        const parts = body.split('^');
        const valid =
          body.length > 0 &&
          body.length <= KEY_MAX_LENGTH &&
          parts.length <= KEY_MAX_DEPTH &&
          parts.every((p) => p.length > 0 && !/[\u0000-\u001f\u007f]/.test(p));
        expect(typeof parseKey(input) === 'string').toBe(valid);
      }),
    );
  });
});
