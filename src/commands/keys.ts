/**
 * Key commands: SET GET DEL EXISTS INCR CAS MGET MSET EXPIRE TTL PERSIST.
 * Values cross the store boundary as JSON text: requests are stringified once here, and stored
 * text goes back as a `rawJson` / `rawFields` result that the encoder (protocol/codec.ts) splices
 * in as is, never parsed and re-serialized: the encoder builds every response line.
 */
import { RawFields } from '../protocol/codec.js';
import { ERRORS } from '../protocol/errors.js';
import { andThen, Fail } from '../result.js';
import type { JsonText } from '../store/store.js';
import { keyArg, keyAt } from './args.js';
import { defineCommand } from './table.js';

const KEY_NOT_FOUND = new Fail('KEY_NOT_FOUND', ERRORS.KEY_NOT_FOUND);

// Module-level continuations for `andThen()`: no closure per request on the synchronous path.
const valueOrNotFound = (value: JsonText | undefined): JsonText | Fail => value ?? KEY_NOT_FOUND;
const trueOrNotFound = (existed: boolean): true | Fail => (existed ? true : KEY_NOT_FOUND);
const ttlOrNotFound = (ttl: number | null | undefined): number | null | Fail =>
  ttl === undefined ? KEY_NOT_FOUND : ttl;
const always = (): true => true;

/** `{"<key as sent>":<value>,...}`, built by the encoder from the stored JSON text. */
const mgetObject = (values: readonly (JsonText | undefined)[], sent: readonly string[]): RawFields =>
  new RawFields(sent, values);

export const keyCommands = [
  defineCommand('SET', {
    flags: ['write'],
    keys: { kind: 'key', access: 'write' },
    handler(req, ctx) {
      const key = keyArg(req);
      if (req.ifAbsent === true && req.ifPresent === true) {
        return new Fail('BAD_REQUEST', 'ifPresent: cannot be combined with ifAbsent (a key cannot be both)');
      }
      // The request itself carries `ttl`/`ifAbsent`/`ifPresent`, the SetOptions fields: passing it
      // avoids building an options object per SET.
      const options = req.ttl === undefined && req.ifAbsent === undefined && req.ifPresent === undefined;
      return ctx.store.set(key, JSON.stringify(req.value), options ? undefined : req);
    },
  }),

  defineCommand('GET', {
    flags: ['readonly'],
    keys: { kind: 'key', access: 'read' },
    result: 'rawJson',
    handler: (req, ctx) => andThen(ctx.store.get(keyArg(req)), valueOrNotFound),
  }),

  defineCommand('DEL', {
    flags: ['write'],
    keys: { kind: 'key', access: 'write' },
    handler: (req, ctx) => andThen(ctx.store.del(keyArg(req)), trueOrNotFound),
  }),

  defineCommand('EXISTS', {
    flags: ['readonly'],
    keys: { kind: 'key', access: 'read' },
    handler: (req, ctx) => ctx.store.exists(keyArg(req)),
  }),

  defineCommand('INCR', {
    flags: ['write'],
    keys: { kind: 'key', access: 'write' },
    handler: (req, ctx) => ctx.store.incr(keyArg(req), req.by ?? 1),
  }),

  defineCommand('CAS', {
    flags: ['write'],
    keys: { kind: 'key', access: 'write' },
    handler: (req, ctx) =>
      ctx.store.cas(keyArg(req), JSON.stringify(req.expected), JSON.stringify(req.value)),
  }),

  defineCommand('MGET', {
    flags: ['readonly'],
    keys: { kind: 'keys', access: 'read' },
    result: 'rawFields',
    handler(req, ctx) {
      const keys = new Array<string>(req.keys.length);
      for (let i = 0; i < keys.length; i++) keys[i] = keyAt(req.namespace, req.keys[i]!, `keys[${i}]`);
      return andThen(ctx.store.mget(keys), mgetObject, req.keys);
    },
  }),

  defineCommand('MSET', {
    flags: ['write'],
    keys: { kind: 'entries', access: 'write' },
    handler(req, ctx) {
      // Every key is checked before anything is written: all or none.
      const entries: [string, JsonText][] = [];
      for (const [name, value] of Object.entries(req.entries)) {
        entries.push([keyAt(req.namespace, name, 'entries'), JSON.stringify(value)]);
      }
      return andThen(ctx.store.mset(entries), always);
    },
  }),

  defineCommand('EXPIRE', {
    flags: ['write'],
    keys: { kind: 'key', access: 'write' },
    handler: (req, ctx) => andThen(ctx.store.expire(keyArg(req), req.ttl), trueOrNotFound),
  }),

  defineCommand('TTL', {
    flags: ['readonly'],
    keys: { kind: 'key', access: 'read' },
    handler: (req, ctx) => andThen(ctx.store.ttl(keyArg(req)), ttlOrNotFound),
  }),

  defineCommand('PERSIST', {
    flags: ['write'],
    keys: { kind: 'key', access: 'write' },
    handler: (req, ctx) => ctx.store.persist(keyArg(req)),
  }),
];
