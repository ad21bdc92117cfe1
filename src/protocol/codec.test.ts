import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decode,
  encodeError,
  encodeOk,
  encodeResult,
  nestsDeeperThan,
  RawFields,
  RequestError,
  toJson,
} from './codec.js';

function fails(line: Buffer | string, maxDepth?: number): RequestError {
  const r = decode(line, maxDepth);
  if (!(r instanceof RequestError)) throw new Error(`expected a failure, got ${JSON.stringify(r)}`);
  return r;
}

describe('decode', () => {
  it('returns the validated request with the action upper-cased', () => {
    const req = decode(Buffer.from('{"action":"set","key":"a","value":[1,{"b":null}],"id":"x"}'));
    expect(req).toEqual({ action: 'SET', key: 'a', value: [1, { b: null }], id: 'x' });
  });

  it('accepts any ASCII case of the action, and nothing that merely upper-cases to one', () => {
    expect(decode('{"action":"pInG"}')).toEqual({ action: 'PING' });
    // U+017F (long s) upper-cases to "S"; the action set is ASCII.
    expect(fails('{"action":"\u017fet","key":"a","value":1}').code).toBe('UNKNOWN_ACTION');
  });

  it('BAD_JSON for text that is not JSON', () => {
    const e = fails('{"action":"PING"');
    expect(e.code).toBe('BAD_JSON');
    expect(e.id).toBeUndefined();
  });

  it('BAD_JSON for bytes that are not UTF-8, but a real U+FFFD is fine', () => {
    const bad = Buffer.concat([
      Buffer.from('{"action":"ECHO","value":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}'),
    ]);
    expect(fails(bad)).toMatchObject({ code: 'BAD_JSON', message: 'line is not valid UTF-8' });
    expect(decode(Buffer.from('{"action":"ECHO","value":"\uFFFD"}'))).toEqual({
      action: 'ECHO',
      value: '\uFFFD',
    });
  });

  it('BAD_REQUEST for JSON that is not an object', () => {
    for (const line of ['[1]', '"PING"', 'null', '42', 'true']) {
      expect(fails(line)).toMatchObject({ code: 'BAD_REQUEST', message: 'request: must be a JSON object' });
    }
  });

  it('missing, mistyped and unknown actions, with the id echoed', () => {
    expect(fails('{"id":1}')).toMatchObject({ code: 'BAD_REQUEST', message: 'action: is required', id: 1 });
    expect(fails('{"id":"a","action":7}')).toMatchObject({ code: 'BAD_REQUEST', id: 'a' });
    expect(fails('{"id":2,"action":"NOPE"}')).toMatchObject({ code: 'UNKNOWN_ACTION', id: 2 });
  });

  it('echoes the id of a request that fails its schema', () => {
    expect(fails('{"id":"q","action":"GET"}')).toMatchObject({
      code: 'BAD_REQUEST',
      message: 'key: is required',
      id: 'q',
    });
  });

  it('refuses ids it cannot echo faithfully, without echoing them', () => {
    for (const id of ['{}', '[1]', 'true', 'null', '1e400', JSON.stringify('x'.repeat(257))]) {
      const e = fails(`{"action":"PING","id":${id}}`);
      expect(e.code).toBe('BAD_REQUEST');
      expect(e.message).toMatch(/^id: /);
      expect(e.id).toBeUndefined();
    }
    expect(decode(`{"action":"PING","id":${JSON.stringify('x'.repeat(256))}}`)).not.toBeInstanceOf(
      RequestError,
    );
  });

  it('TOO_DEEP for 100000 brackets, without a RangeError', () => {
    expect(fails('['.repeat(100_000)).code).toBe('TOO_DEEP');
    expect(fails(Buffer.from(`{"action":"ECHO","value":${'['.repeat(100_000)}}`)).code).toBe('TOO_DEEP');
  });

  it('counts the request object as one level: a value may nest maxDepth - 1 levels', () => {
    const nested = (n: number) => `{"action":"ECHO","value":${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(decode(nested(63))).not.toBeInstanceOf(RequestError);
    expect(fails(nested(64)).code).toBe('TOO_DEEP');
    expect(decode(nested(9), 10)).not.toBeInstanceOf(RequestError);
    expect(fails(nested(10), 10).code).toBe('TOO_DEEP');
  });

  it('does not count brackets inside strings (escaped quotes included)', () => {
    const value = JSON.stringify(`"\\${'[{'.repeat(200)}`);
    expect(decode(`{"action":"ECHO","value":${value}}`)).not.toBeInstanceOf(RequestError);
  });

  it('never lets __proto__ or constructor keys pollute anything', () => {
    const top = fails('{"action":"PING","__proto__":{"polluted":true}}');
    expect(top).toMatchObject({ code: 'BAD_REQUEST', message: '__proto__: unknown field' });
    expect(fails('{"action":"PING","constructor":{"prototype":{"polluted":true}}}').message).toBe(
      'constructor: unknown field',
    );
    const req = decode('{"action":"ECHO","value":{"__proto__":{"polluted":true},"constructor":1}}') as {
      value: Record<string, unknown>;
    };
    expect(Object.keys(req.value)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(req.value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(JSON.stringify(req.value)).toBe('{"__proto__":{"polluted":true},"constructor":1}');
  });

  it('huge numbers: Infinity is refused where a number is a parameter, kept as JSON null in values', () => {
    expect(fails('{"action":"SET","key":"a","value":1,"ttl":1e400,"id":5}')).toMatchObject({
      code: 'BAD_REQUEST',
      message: 'ttl: must be an integer',
      id: 5,
    });
    expect(fails('{"action":"INCR","key":"a","by":-1e400}').message).toBe('by: must be an integer');
    expect(decode('{"action":"ECHO","value":123456789012345678901234567890}')).toEqual({
      action: 'ECHO',
      value: Number('123456789012345678901234567890'),
    });
  });

  it('NUL bytes: raw ones are not JSON, escaped ones are ordinary characters', () => {
    expect(fails(Buffer.from('{"action":"ECHO","value":"a\u0000b"}')).code).toBe('BAD_JSON');
    expect(decode('{"action":"ECHO","value":"a\\u0000b"}')).toEqual({ action: 'ECHO', value: 'a\u0000b' });
  });

  it('never throws, whatever the bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = decode(Buffer.from(bytes));
        expect(r === null || typeof r === 'object').toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.json({ depthSize: 'large' }), (text) => {
        const r = decode(text, 8);
        if (r instanceof RequestError) expect(r.code).toMatch(/^(BAD_REQUEST|UNKNOWN_ACTION|TOO_DEEP)$/);
      }),
    );
  });
});

describe('nestsDeeperThan', () => {
  it('agrees with a reference depth computation (property)', () => {
    const depth = (v: unknown): number =>
      typeof v === 'object' && v !== null
        ? 1 + Math.max(0, ...Object.values(v as Record<string, unknown>).map(depth))
        : 0;
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 12 }), (value, max) => {
        expect(nestsDeeperThan(JSON.stringify(value), max)).toBe(depth(value) > max);
      }),
    );
  });

  it('counts openers, not balance: a short line of openers alone is judged by its length', () => {
    expect(nestsDeeperThan('[[[', 3)).toBe(false);
    expect(nestsDeeperThan('[[[[', 3)).toBe(true);
    expect(nestsDeeperThan('{"a":"[[[[[["}', 3)).toBe(false);
  });
});

describe('encode', () => {
  it('builds fixed-shape lines, with the id only when one was sent', () => {
    expect(encodeOk(undefined, '"PONG"')).toBe('{"ok":true,"result":"PONG"}\n');
    expect(encodeOk(undefined, 'true')).toBe('{"ok":true,"result":true}\n');
    expect(encodeOk(7, 'true')).toBe('{"id":7,"ok":true,"result":true}\n');
    expect(encodeOk('a"b', 'null')).toBe('{"id":"a\\"b","ok":true,"result":null}\n');
    expect(JSON.parse(encodeError('x', 'KEY_NOT_FOUND', 'gone "here"\n'))).toEqual({
      id: 'x',
      ok: false,
      error: { code: 'KEY_NOT_FOUND', message: 'gone "here"\n' },
    });
    expect(JSON.parse(encodeError(undefined, 'BAD_JSON', 'no'))).toEqual({
      ok: false,
      error: { code: 'BAD_JSON', message: 'no' },
    });
  });

  it('toJson matches JSON.stringify for the values handlers return', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(toJson(v)).toBe(JSON.stringify(v));
      }),
    );
    expect(toJson(-0)).toBe('0');
    expect(toJson(undefined)).toBe('null');
  });

  it('encodes each result kind: a JSON value, stored text as is, stored texts by name', () => {
    expect(encodeResult(1, 'json', { a: [1, 'x'] })).toBe('{"id":1,"ok":true,"result":{"a":[1,"x"]}}\n');
    expect(encodeResult(undefined, 'json', true)).toBe('{"ok":true,"result":true}\n');
    expect(encodeResult(undefined, 'rawJson', '{"b":  2}')).toBe('{"ok":true,"result":{"b":  2}}\n');
    const fields = new RawFields(['a', 'q"uote', '__proto__', 'gone'], ['1', 'null', '{}', undefined]);
    const line = encodeResult('m', 'rawFields', fields);
    expect(line).toBe('{"id":"m","ok":true,"result":{"a":1,"q\\"uote":null,"__proto__":{}}}\n');
    const parsed = JSON.parse(line).result;
    expect(Object.keys(parsed)).toEqual(['a', 'q"uote', '__proto__']);
    expect(encodeResult(undefined, 'rawFields', new RawFields(['x'], [undefined]))).toBe(
      '{"ok":true,"result":{}}\n',
    );
  });

  it('rawFields matches JSON.stringify of the object it stands for', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string(), fc.option(fc.jsonValue(), { nil: undefined }))), (pairs) => {
        const unique = [...new Map(pairs).entries()];
        const names = unique.map(([n]) => n);
        const values = unique.map(([, v]) => (v === undefined ? undefined : JSON.stringify(v)));
        const line = encodeResult(undefined, 'rawFields', new RawFields(names, values));
        const expected = Object.fromEntries(unique.filter(([, v]) => v !== undefined));
        expect(JSON.parse(line).result).toEqual(JSON.parse(JSON.stringify(expected)));
      }),
    );
  });
});
