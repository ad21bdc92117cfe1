/**
 * Codec properties (fast-check), with request generators derived from the schema itself, so every
 * action added to ACTIONS is covered without touching this file:
 * - any valid request, encoded as a client encodes it (`JSON.stringify` + newline framing), decodes
 *   back to itself with the action upper-cased, whatever the case it was sent in;
 * - any response encodes to one line of JSON that parses back to what was encoded;
 * - any byte string either decodes to a request that passes its schema or yields a RequestError
 *   with a catalogued code: never an exception, never something in between.
 */
import type { TSchema } from '@sinclair/typebox';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, encodeError, encodeOk, RequestError, toJson } from './codec.js';
import { ERRORS, type ErrorCode } from './errors.js';
import { ACTIONS, LIMITS } from './schema.js';

type Schema = TSchema & Record<string, unknown>;

const anyString = (constraints: { minLength?: number; maxLength?: number } = {}) =>
  fc.oneof(fc.string(constraints), fc.string({ ...constraints, unit: 'binary' }));

/** A generator of values that satisfy `schema` (the subset of JSON Schema our TypeBox schemas use). */
function arbitraryFor(schema: Schema, where: string): fc.Arbitrary<unknown> {
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.anyOf)) {
    return fc.oneof(...(schema.anyOf as Schema[]).map((s, i) => arbitraryFor(s, `${where}|${i}`)));
  }
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  const type = schema.type;
  if (Array.isArray(type)) {
    // The id: a string or a finite number.
    return fc.oneof(
      ...(type as string[]).map((t) => arbitraryFor({ ...schema, type: t } as Schema, `${where}:${t}`)),
    );
  }
  switch (type) {
    case undefined:
      // Type.Unknown: any JSON value (deep enough to matter, within the nesting limit).
      return fc.jsonValue({ maxDepth: 8 });
    case 'string':
      if (schema.pattern !== undefined || schema.format !== undefined) {
        throw new Error(`${where}: teach codec.property.test.ts to generate a patterned string`);
      }
      return anyString({
        ...(schema.minLength !== undefined && { minLength: schema.minLength as number }),
        maxLength: Math.min((schema.maxLength as number | undefined) ?? 40, 300),
      });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'integer':
      return fc.integer({
        min: Math.max((schema.minimum as number | undefined) ?? -(2 ** 31), Number.MIN_SAFE_INTEGER),
        max: Math.min((schema.maximum as number | undefined) ?? 2 ** 31, Number.MAX_SAFE_INTEGER),
      });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(arbitraryFor(schema.items as Schema, `${where}[]`), {
        minLength: (schema.minItems as number | undefined) ?? 0,
        maxLength: Math.min((schema.maxItems as number | undefined) ?? 10, 10),
      });
    case 'object': {
      const patterns = schema.patternProperties as Record<string, Schema> | undefined;
      if (patterns) {
        const [valueSchema] = Object.values(patterns);
        return fc.dictionary(anyString({ maxLength: 20 }), arbitraryFor(valueSchema!, `${where}{}`), {
          minKeys: (schema.minProperties as number | undefined) ?? 0,
          maxKeys: Math.min((schema.maxProperties as number | undefined) ?? 8, 8),
        });
      }
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set((schema.required as string[] | undefined) ?? []);
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, s] of Object.entries(properties)) record[name] = arbitraryFor(s, `${where}.${name}`);
      return fc.record(record, { requiredKeys: [...required] });
    }
    default:
      throw new Error(`${where}: teach codec.property.test.ts to generate type ${String(type)}`);
  }
}

const requestArbitraries = Object.values(ACTIONS).map((spec) =>
  arbitraryFor(spec.request as Schema, spec.name).map(
    (r) => r as { action: string } & Record<string, unknown>,
  ),
);
const anyRequest = fc.oneof(...requestArbitraries);

/** Any ASCII-case variant of the action name, as clients may send it. */
const withActionCase = fc
  .tuple(anyRequest, fc.array(fc.boolean(), { minLength: 32, maxLength: 32 }))
  .map(([req, flips]) => ({
    req,
    sent: {
      ...req,
      action: [...req.action].map((c, i) => (flips[i] ? c.toLowerCase() : c)).join(''),
    },
  }));

const CODES = new Set(Object.keys(ERRORS));

function assertOutcome(result: unknown): void {
  if (result instanceof RequestError) {
    expect(CODES.has(result.code)).toBe(true);
    expect(typeof result.message).toBe('string');
    expect(result.message.length).toBeGreaterThan(0);
    if (result.id !== undefined) expect(['string', 'number']).toContain(typeof result.id);
    return;
  }
  const req = result as { action: unknown };
  expect(typeof req).toBe('object');
  expect(Object.keys(ACTIONS)).toContain(req.action);
  // What decoded is itself a valid request: encoding and decoding it again changes nothing.
  const again = decode(JSON.stringify(req));
  expect(again).not.toBeInstanceOf(RequestError);
  expect(JSON.stringify(again)).toBe(JSON.stringify(req));
}

describe('codec properties', () => {
  it('every valid request of every action encodes and decodes back, in any action case', () => {
    fc.assert(
      fc.property(withActionCase, ({ req, sent }) => {
        const line = Buffer.from(`${JSON.stringify(sent)}\n`).subarray(0, -1);
        const decoded = decode(line);
        if (decoded instanceof RequestError) {
          throw new Error(`${decoded.code}: ${decoded.message} for ${JSON.stringify(sent)}`);
        }
        // Compared as JSON text: -0 and 0 are the same number on the wire.
        expect(JSON.stringify(decoded)).toBe(JSON.stringify(req));
      }),
      { numRuns: 2000 },
    );
  });

  it('every response encodes to one JSON line that parses back', () => {
    const id = fc.option(
      fc.oneof(
        anyString({ maxLength: LIMITS.maxIdLength }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
      ),
      { nil: undefined },
    );
    fc.assert(
      fc.property(id, fc.jsonValue(), (id, value) => {
        const line = encodeOk(id, toJson(value));
        expect(line.indexOf('\n')).toBe(line.length - 1);
        expect(JSON.stringify(JSON.parse(line))).toBe(
          JSON.stringify(id === undefined ? { ok: true, result: value } : { id, ok: true, result: value }),
        );
      }),
    );
    fc.assert(
      fc.property(
        id,
        fc.constantFrom(...(Object.keys(ERRORS) as ErrorCode[])),
        anyString(),
        (id, code, msg) => {
          const line = encodeError(id, code, msg);
          expect(line.indexOf('\n')).toBe(line.length - 1);
          const error = { code, message: msg };
          expect(JSON.stringify(JSON.parse(line))).toBe(
            JSON.stringify(id === undefined ? { ok: false, error } : { id, ok: false, error }),
          );
        },
      ),
    );
  });

  it('any byte string decodes or yields a catalogued protocol error, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assertOutcome(decode(Buffer.from(bytes)));
      }),
      { numRuns: 3000 },
    );
  });

  it('valid requests damaged at the byte level decode or yield a protocol error', () => {
    // Random bytes rarely look like JSON; damaged requests reach the deeper layers (schema, ids).
    const damaged = fc
      .tuple(
        anyRequest,
        fc.array(
          fc.tuple(
            fc.constantFrom('insert', 'delete', 'replace', 'truncate'),
            fc.nat(),
            fc.uint8Array({ minLength: 1, maxLength: 4 }),
          ),
          { minLength: 1, maxLength: 4 },
        ),
      )
      .map(([req, edits]) => {
        let bytes = Buffer.from(JSON.stringify(req));
        for (const [op, at, inserted] of edits) {
          const i = bytes.length === 0 ? 0 : at % bytes.length;
          if (op === 'insert') bytes = Buffer.concat([bytes.subarray(0, i), inserted, bytes.subarray(i)]);
          else if (op === 'delete') bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
          else if (op === 'replace')
            bytes = Buffer.concat([bytes.subarray(0, i), inserted, bytes.subarray(i + inserted.length)]);
          else bytes = bytes.subarray(0, i);
        }
        return bytes;
      });
    fc.assert(
      fc.property(damaged, (bytes) => assertOutcome(decode(bytes))),
      { numRuns: 3000 },
    );
  });

  it('JSON of any shape decodes or yields a protocol error (field swaps, retyped fields, extra keys)', () => {
    const reshaped = fc
      .tuple(
        anyRequest,
        fc.dictionary(
          fc.constantFrom('__proto__', 'constructor', 'id', 'key', 'value', 'x'),
          fc.jsonValue({ maxDepth: 3 }),
        ),
      )
      .map(([req, extra]) => {
        // JSON text, so a `__proto__` key arrives as an own property, as it would off the wire.
        const fields = [...Object.entries(req), ...Object.entries(extra)];
        return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
      });
    fc.assert(
      fc.property(reshaped, (text) => {
        assertOutcome(decode(Buffer.from(text)));
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });
});
