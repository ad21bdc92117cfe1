import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, formatArg, parseLine, tokenize, tokenValue } from './parse.js';

/** The request a line makes (fails the test if it is not a request). */
function request(line: string): Record<string, unknown> {
  const parsed = parseLine(line);
  if (parsed.kind !== 'request') throw new Error(`${line} parsed as ${parsed.kind}`);
  return parsed.request;
}

function refusal(line: string): ArgumentError {
  try {
    parseLine(line);
  } catch (err) {
    expect(err).toBeInstanceOf(ArgumentError);
    return err as ArgumentError;
  }
  throw new Error(`expected ${line} to be refused`);
}

/** Compare as JSON sees it (-0 and 0 are the same number on the wire). */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('tokenize', () => {
  it('splits on whitespace and keeps quoted spaces', () => {
    const values = tokenize(`SET  users^42^name "Ada Lovelace"\t'x y'`).map((t) => tokenValue(t.pieces));
    expect(values).toEqual(['SET', 'users^42^name', 'Ada Lovelace', 'x y']);
  });

  it("decodes JSON escapes in double quotes and only \\' and \\\\ in single quotes", () => {
    const [a, b] = tokenize(String.raw`"a\"b\\c\n\u00e9\t" 'C:\dir\'s \\ end'`);
    expect(tokenValue(a!.pieces)).toBe('a"b\\c\né\t');
    expect(tokenValue(b!.pieces)).toBe("C:\\dir's \\ end");
  });

  it('joins quoted and bare parts of one argument, as a shell does', () => {
    const [token] = tokenize(`name="Ada Lovelace"x`);
    expect(tokenValue(token!.pieces)).toBe('name=Ada Lovelacex');
  });

  it('keeps a JSON object or array with spaces as one argument', () => {
    const tokens = tokenize(`SET u {"name": "Ada }", "tags": [1, "a b"]} ttl=5 f=[1, 2]`);
    expect(tokens.map((t) => t.source)).toEqual([
      'SET',
      'u',
      '{"name": "Ada }", "tags": [1, "a b"]}',
      'ttl=5',
      'f=[1, 2]',
    ]);
  });

  it('an unclosed bracket is just a character', () => {
    expect(tokenize('SET k [abc def').map((t) => t.source)).toEqual(['SET', 'k', '[abc', 'def']);
  });

  it.each([
    [`SET k "abc`, 'unterminated double quote'],
    [`SET k 'abc`, 'unterminated single quote'],
    [String.raw`SET k "a\qb"`, String.raw`bad escape \q`],
    [String.raw`SET k "a\u12"`, String.raw`bad escape \u`],
  ])('%s is refused: %s', (line, message) => {
    const err = refusal(line);
    expect(err.code).toBe('USAGE');
    expect(err.message).toContain(message);
  });

  it('never throws anything but ArgumentError, whatever the line', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (line) => {
        try {
          parseLine(line);
        } catch (err) {
          expect(err).toBeInstanceOf(ArgumentError);
        }
      }),
    );
  });
});

describe('argument values', () => {
  it('bare arguments are JSON when they are JSON, else strings; quoted ones are strings', () => {
    expect(request('ECHO 5').value).toBe(5);
    expect(request('ECHO -1.5e3').value).toBe(-1500);
    expect(request('ECHO true').value).toBe(true);
    expect(request('ECHO null').value).toBe(null);
    expect(request('ECHO Ada').value).toBe('Ada');
    expect(request('ECHO "5"').value).toBe('5');
    expect(request(`ECHO '5'`).value).toBe('5');
    expect(request('ECHO ""').value).toBe('');
    expect(request('ECHO {"a":[1,{"b":null}]}').value).toEqual({ a: [1, { b: null }] });
    expect(request('ECHO Infinity').value).toBe('Infinity');
  });

  it('refuses a number JSON cannot hold rather than sending null', () => {
    expect(refusal('ECHO 1e400').message).toContain('beyond the range');
    expect(request('ECHO "1e400"').value).toBe('1e400');
  });

  it('text fields take the argument as typed: GET 42 reads the key "42"', () => {
    expect(request('GET 42')).toEqual({ action: 'GET', key: '42' });
    expect(request('GET true')).toEqual({ action: 'GET', key: 'true' });
    expect(request('KEYS 7')).toEqual({ action: 'KEYS', namespace: '7' });
  });

  it('property: any JSON value printed with formatArg parses back to itself', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(request(`ECHO ${formatArg(value)}`).value).toEqual(asJson(value));
        expect(request(`SET k ${formatArg(value)} ttl=5`)).toEqual({
          action: 'SET',
          key: 'k',
          value: asJson(value),
          ttl: 5,
        });
      }),
      { numRuns: 500 },
    );
  });

  it('property: any string survives double quotes (JSON literal) and single quotes', () => {
    const singleQuoted = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(request(`ECHO ${JSON.stringify(s)}`).value).toBe(s);
        expect(request(`ECHO ${singleQuoted(s)}`).value).toBe(s);
        expect(request(`GET ${JSON.stringify(s)}`).key).toBe(s);
        expect(request(`SET k v ${`namespace=${JSON.stringify(s)}`}`).namespace).toBe(s);
      }),
      { numRuns: 500 },
    );
  });
});

describe('requests', () => {
  it('maps positional arguments to the action fields', () => {
    expect(request('SET users^42^name "Ada Lovelace"')).toEqual({
      action: 'SET',
      key: 'users^42^name',
      value: 'Ada Lovelace',
    });
    expect(request('get users^42^name')).toEqual({ action: 'GET', key: 'users^42^name' });
    expect(request('KEYS users')).toEqual({ action: 'KEYS', namespace: 'users' });
    expect(request('KEYS')).toEqual({ action: 'KEYS' });
    expect(request('KEYS users b 10')).toEqual({ action: 'KEYS', namespace: 'users', after: 'b', limit: 10 });
    expect(request('INCR n')).toEqual({ action: 'INCR', key: 'n' });
    expect(request('INCR n -5')).toEqual({ action: 'INCR', key: 'n', by: -5 });
    expect(request('CAS k 1 2')).toEqual({ action: 'CAS', key: 'k', expected: 1, value: 2 });
    expect(request('EXPIRE k 1000')).toEqual({ action: 'EXPIRE', key: 'k', ttl: 1000 });
    expect(request('PING')).toEqual({ action: 'PING' });
  });

  it('name=value sets named fields, matched without regard to case', () => {
    expect(request('SET n 5 ttl=1000')).toEqual({ action: 'SET', key: 'n', value: 5, ttl: 1000 });
    expect(request('INCR n by=2')).toEqual({ action: 'INCR', key: 'n', by: 2 });
    expect(request('SET k v TTL=7 ifabsent=true')).toEqual({
      action: 'SET',
      key: 'k',
      value: 'v',
      ttl: 7,
      ifAbsent: true,
    });
    expect(request('GET name namespace=users^42')).toEqual({
      action: 'GET',
      key: 'name',
      namespace: 'users^42',
    });
    expect(request('SET k v namespace="a b"').namespace).toBe('a b');
  });

  it('a boolean field named after the positionals is a flag; before them it is a value', () => {
    expect(request('SET k v ifAbsent')).toMatchObject({ value: 'v', ifAbsent: true });
    expect(request('SET k ifAbsent')).toEqual({ action: 'SET', key: 'k', value: 'ifAbsent' });
  });

  it('a value that looks like name=value but names no field is a value; quoting forces it', () => {
    expect(request('SET k a=b')).toEqual({ action: 'SET', key: 'k', value: 'a=b' });
    expect(request('SET k "ttl=5"')).toEqual({ action: 'SET', key: 'k', value: 'ttl=5' });
  });

  it('MGET takes the rest as keys; MSET takes pairs; either also takes one JSON argument', () => {
    expect(request('MGET a 42 c')).toEqual({ action: 'MGET', keys: ['a', '42', 'c'] });
    expect(request('MGET ["a", "b"]')).toEqual({ action: 'MGET', keys: ['a', 'b'] });
    expect(request('MSET a 1 b "two"')).toEqual({ action: 'MSET', entries: { a: 1, b: 'two' } });
    expect(request('MSET {"a": 1}')).toEqual({ action: 'MSET', entries: { a: 1 } });
    expect(refusal('MSET a 1 b').message).toContain('pairs');
  });

  it('a key named __proto__ stays a key', () => {
    const entries = request('MSET __proto__ 1').entries as Record<string, unknown>;
    expect(Object.hasOwn(entries, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(entries)).toBe(Object.prototype);
  });

  it('refuses missing, doubled and extra arguments with the usage line', () => {
    expect(refusal('SET k').message).toBe(
      'missing value; usage: SET key value [namespace=<string>] [ttl=<integer>] [ifAbsent] [ifPresent]',
    );
    expect(refusal('GET').message).toContain('missing key');
    expect(refusal('SET k v ttl=1 ttl=2').message).toContain('ttl is given twice');
    expect(refusal('GET a b').message).toContain('unexpected argument b; usage: GET key');
    expect(refusal('SET k v tll=5').message).toContain('SET fields: namespace, key, value, ttl');
    expect(refusal('PING x').message).toContain('unexpected argument x');
  });

  it('a line starting with { is a raw request, sent as it is', () => {
    expect(request('{"action":"get","key":"k","id":7}')).toEqual({ action: 'get', key: 'k', id: 7 });
    expect(request('  {"anything": [1]}')).toEqual({ anything: [1] });
    const bad = refusal('{"action": ');
    expect(bad.code).toBe('BAD_JSON');
  });

  it('an action the schema does not know is sent with its named fields for the server to judge', () => {
    expect(request('FUTURE a=1 b="x y"')).toEqual({ action: 'FUTURE', a: 1, b: 'x y' });
    expect(refusal('FUTURE a').message).toContain('unknown action FUTURE');
  });

  it('local commands, comments and blank lines', () => {
    expect(parseLine('help SET')).toEqual({ kind: 'local', command: 'help', args: ['SET'] });
    expect(parseLine('HELP')).toEqual({ kind: 'local', command: 'help', args: [] });
    expect(parseLine('quit')).toEqual({ kind: 'local', command: 'quit', args: [] });
    expect(parseLine('Exit')).toEqual({ kind: 'local', command: 'exit', args: [] });
    expect(parseLine('   ')).toEqual({ kind: 'empty' });
    expect(parseLine('# a comment')).toEqual({ kind: 'empty' });
  });
});
