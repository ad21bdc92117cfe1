import { describe, expect, it } from 'vitest';
import { complete } from './complete.js';

describe('tab completion', () => {
  it('completes action names from the schema, in the case being typed', () => {
    expect(complete('')[0]).toEqual(expect.arrayContaining(['SET', 'GET', 'KEYS', 'HELP', 'QUIT']));
    expect(complete('SE')).toEqual([['SET'], 'SE']);
    expect(complete('se')).toEqual([['set'], 'se']);
    expect(complete('EX')).toEqual([['EXISTS', 'EXPIRE', 'EXIT'], 'EX']);
    expect(complete('NAM')).toEqual([['NAMESPACES'], 'NAM']);
    expect(complete('zz')).toEqual([[], 'zz']);
  });

  it('completes named fields after the action, and actions after help', () => {
    expect(complete('SET k v t')).toEqual([['ttl='], 't']);
    expect(complete('SET k v if')).toEqual([['ifAbsent', 'ifPresent'], 'if']);
    expect(complete('incr n ')).toEqual([['namespace=', 'key=', 'by='], '']);
    expect(complete('SET k v ttl=')).toEqual([[], 'ttl=']);
    expect(complete('help mg')).toEqual([['mget'], 'mg']);
    expect(complete('NOPE x')).toEqual([[], 'x']);
  });
});
