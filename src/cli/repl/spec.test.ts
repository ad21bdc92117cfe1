import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { ACTIONS } from '../../protocol/schema.js';
import { usage } from './parse.js';
import { ACTION_NAMES, actionInfo, derivedPositional, type FieldInfo, POSITIONAL_OVERRIDES } from './spec.js';

const field = (name: string, schema: FieldInfo['schema'], required = true): FieldInfo => ({
  name,
  schema,
  required,
  text: false,
});

/** The CLI's positional table must not drift from the schema: these checks fail when it does. */
describe('positional forms against the schema', () => {
  it('knows exactly the schema actions', () => {
    expect(ACTION_NAMES).toEqual(Object.keys(ACTIONS));
    expect(actionInfo('nope')).toBeUndefined();
    expect(actionInfo('toString')).toBeUndefined();
    expect(actionInfo('set')?.name).toBe('SET');
  });

  it('every override names a schema action and only fields that action takes', () => {
    for (const [name, positional] of Object.entries(POSITIONAL_OVERRIDES)) {
      const info = actionInfo(name);
      expect(info, `${name} is in the overrides but not in the schema`).toBeDefined();
      const fields = new Set(info!.fields.map((f) => f.name));
      for (const field of [...positional.fields, positional.rest, positional.pairs]) {
        if (field !== undefined) expect(fields, `${name}.${field}`).toContain(field);
      }
    }
  });

  it.each(ACTION_NAMES)('%s: every required field can be given by position, no field twice', (name) => {
    const { positional, fields } = actionInfo(name)!;
    const placed = [...positional.fields, positional.rest, positional.pairs].filter((f) => f !== undefined);
    expect(new Set(placed).size).toBe(placed.length);
    for (const field of fields.filter((f) => f.required)) expect(placed).toContain(field.name);
    expect(usage(actionInfo(name)!).startsWith(name)).toBe(true);
  });

  it('derives the common forms from the schema', () => {
    expect(actionInfo('SET')!.positional).toEqual({ fields: ['key', 'value'] });
    expect(actionInfo('MGET')!.positional).toEqual({ fields: [], rest: 'keys' });
    expect(actionInfo('MSET')!.positional).toEqual({ fields: [], pairs: 'entries' });
    expect(actionInfo('CAS')!.positional).toEqual({ fields: ['key', 'expected', 'value'] });
    expect(actionInfo('PING')!.positional).toEqual({ fields: [] });
  });

  it('derives forms for actions yet to come: arrays take the rest, objects take pairs', () => {
    const str = Type.String();
    const arr = Type.Array(str);
    expect(derivedPositional([field('channel', str), field('message', Type.Unknown())])).toEqual({
      fields: ['channel', 'message'],
    });
    expect(derivedPositional([field('channels', arr)])).toEqual({ fields: [], rest: 'channels' });
    expect(derivedPositional([field('channels', arr, false)])).toEqual({ fields: [], rest: 'channels' });
    expect(derivedPositional([field('ns', str, false), field('entries', Type.Object({}))])).toEqual({
      fields: [],
      pairs: 'entries',
    });
    expect(derivedPositional([field('a', arr, false), field('b', arr, false)])).toEqual({ fields: [] });
  });
});
