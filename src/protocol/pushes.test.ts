import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { ChangeOp } from '../client/subscription.js';
import { CHANGE_OPS, NDJSON_PUSHES as P, PUSHES, type PushName } from './pushes.js';

/** Parses one encoded push line and checks it against its schema. */
function check(name: PushName, line: string): unknown {
  expect(line.endsWith('\n')).toBe(true);
  expect(line.indexOf('\n')).toBe(line.length - 1);
  const value = JSON.parse(line) as unknown;
  expect([...Value.Errors(PUSHES[name], value)].map((e) => `${e.path}: ${e.message}`)).toEqual([]);
  return value;
}

const text = fc.string({ unit: 'binary', maxLength: 40 });
const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v));

describe('pushes: every line the encoder writes matches its schema', () => {
  it('message, from the fragments a publish and a subscription build once', () => {
    fc.assert(
      fc.property(
        text,
        text,
        json,
        fc.oneof(text, fc.nat()),
        fc.integer({ min: 1 }),
        (channel, pattern, message, from, seq) => {
          const line = `${P.messageHead(channel)}${P.quoted(pattern)}${P.messageTail(message, P.quoted(from))}${seq}${P.end}`;
          expect(check('message', line)).toEqual({
            event: 'message',
            channel,
            pattern,
            message: JSON.parse(message),
            from,
            seq,
          });
        },
      ),
    );
  });

  it('change, with and without a value', () => {
    fc.assert(
      fc.property(
        text,
        fc.constantFrom(...CHANGE_OPS),
        fc.option(json, { nil: undefined }),
        fc.integer({ min: 1 }),
        (key, op, value, seq) => {
          const parsed = check('change', `${P.changeHead(key, op, value)}${seq}${P.end}`);
          expect(parsed).toEqual({
            event: 'change',
            key,
            op,
            ...(value !== undefined && { value: JSON.parse(value) }),
            seq,
          });
        },
      ),
    );
  });

  it('gap, revoked, deauthenticated and shutdown', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1 }),
        fc.array(text),
        fc.array(text),
        text,
        (dropped, channels, keys, why) => {
          expect(check('gap', P.gap(dropped))).toEqual({ event: 'gap', dropped });
          expect(check('revoked', P.revoked(channels, keys, why))).toEqual({
            event: 'revoked',
            channels,
            keys,
            reason: why,
          });
          expect(check('deauthenticated', P.deauthenticated(why))).toEqual({
            event: 'deauthenticated',
            message: why,
          });
          expect(check('shutdown', P.shutdown(why))).toEqual({ event: 'shutdown', message: why });
        },
      ),
    );
  });

  it("types the client's push events from the schema", () => {
    expectTypeOf<ChangeOp>().toEqualTypeOf<'set' | 'del' | 'expire' | 'drop' | 'incr' | 'cas'>();
  });
});
