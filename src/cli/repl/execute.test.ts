import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { CaretError, type RawRequest } from '../../client/index.js';
import {
  type ClientLike,
  describeError,
  execute,
  PIPE_WINDOW,
  runLines,
  STREAMING,
  streamPushes,
} from './execute.js';
import { MACHINE } from './format.js';

/** Answers from a function and records what was sent. */
class FakeClient extends EventEmitter implements ClientLike {
  readonly sent: RawRequest[] = [];
  constructor(private readonly answer: (request: RawRequest) => Promise<unknown>) {
    super();
  }
  send(request: RawRequest): Promise<unknown> {
    this.sent.push(request);
    return this.answer(request);
  }
}

/** A tiny key-value server in memory: enough to see requests and replies line up. */
function kvClient(): FakeClient {
  const data = new Map<string, unknown>();
  return new FakeClient(async (r) => {
    switch (r.action) {
      case 'SET':
        data.set(String(r.key), r.value);
        return true;
      case 'GET':
        if (!data.has(String(r.key))) {
          throw new CaretError('KEY_NOT_FOUND', 'The key does not exist.', {
            action: 'GET',
            key: String(r.key),
          });
        }
        return data.get(String(r.key));
      default:
        return { echo: r };
    }
  });
}

async function* linesOf(...lines: string[]): AsyncIterable<string> {
  yield* lines;
}

describe('execute', () => {
  it('sends the request and prints the result; errors print code and server message', async () => {
    const client = kvClient();
    expect(await execute('SET users^42^name "Ada Lovelace"', client, MACHINE)).toEqual({
      ok: true,
      text: 'true',
    });
    expect(await execute('GET users^42^name', client, MACHINE)).toEqual({ ok: true, text: '"Ada Lovelace"' });
    expect(await execute('GET nope', client, MACHINE)).toEqual({
      ok: false,
      text: '(error) KEY_NOT_FOUND The key does not exist.',
    });
    expect(client.sent).toHaveLength(3);
  });

  it('refuses bad input locally, without sending', async () => {
    const client = kvClient();
    const reply = await execute('SET k', client, MACHINE);
    expect(reply.ok).toBe(false);
    expect(reply.text).toMatch(/^\(error\) USAGE missing value; usage: SET key value/);
    expect((await execute('{nope', client, MACHINE)).text).toMatch(/^\(error\) BAD_JSON /);
    expect(client.sent).toEqual([]);
  });

  it('local commands answer at once: help from the schema, quit', () => {
    const client = kvClient();
    const help = execute('help SET', client, MACHINE);
    expect(help).not.toBeInstanceOf(Promise);
    expect((help as { text: string }).text).toContain('SET key value');
    expect((help as { text: string }).text).toContain('Time to live in milliseconds.');
    expect(execute('quit', client, MACHINE)).toEqual({ ok: true, text: '', quit: true });
    expect((execute('help', client, MACHINE) as { text: string }).text).toContain('NAMESPACES');
  });

  it('marks a successful streaming action so the caller keeps printing pushes', async () => {
    const client = new FakeClient(async () => 1);
    const action = Object.keys(STREAMING)[0]!;
    const reply = await execute(`{"action":"${action.toLowerCase()}","channels":["a"]}`, client, MACHINE);
    expect(reply.stream).toEqual({ action: action.toLowerCase(), channels: ['a'] });
    expect((await execute('PING', client, MACHINE)).stream).toBeUndefined();
  });
});

describe('describeError', () => {
  it('strips the client library decorations, keeps the code', () => {
    const err = new CaretError('KEY_NOT_FOUND', 'no such key', { action: 'GET', key: 'a b' });
    expect(err.message).toBe('GET a b: no such key [KEY_NOT_FOUND]');
    expect(describeError(err)).toEqual({ code: 'KEY_NOT_FOUND', message: 'no such key' });
    expect(describeError(new CaretError('TIMEOUT', 'slow'))).toEqual({ code: 'TIMEOUT', message: 'slow' });
    expect(describeError(new Error('boom'))).toEqual({ code: 'INTERNAL', message: 'boom' });
  });
});

describe('runLines (piped mode)', () => {
  it('prints one line per command in input order, counting failures', async () => {
    const client = kvClient();
    const out: string[] = [];
    const result = await runLines(
      linesOf('SET a 1', '', '# comment', 'GET a', 'GET b', 'SET b {"x": [1]}', 'GET b', 'oops "'),
      client,
      MACHINE,
      (t) => out.push(t),
    );
    expect(out).toEqual([
      'true',
      '1',
      '(error) KEY_NOT_FOUND The key does not exist.',
      'true',
      '{"x":[1]}',
      expect.stringMatching(/^\(error\) USAGE unterminated double quote/),
    ]);
    expect(result).toEqual({ failed: 2, streams: [], quit: false });
  });

  it('pipelines: every line is sent before the first reply is awaited, replies still print in order', async () => {
    const resolvers: ((v: unknown) => void)[] = [];
    const client = new FakeClient(() => new Promise((resolve) => resolvers.push(resolve)));
    const out: string[] = [];
    const done = runLines(linesOf('ECHO 1', 'ECHO 2', 'ECHO 3'), client, MACHINE, (t) => out.push(t));
    await new Promise<void>((resolve) => {
      const check = () => (resolvers.length === 3 ? resolve() : setImmediate(check));
      check();
    });
    resolvers[2]!(3);
    resolvers[1]!(2);
    resolvers[0]!(1);
    await done;
    expect(out).toEqual(['1', '2', '3']);
  });

  it('bounds the requests awaiting replies', async () => {
    let inFlight = 0;
    let most = 0;
    const client = new FakeClient(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return 1;
    });
    const lines = Array.from({ length: PIPE_WINDOW * 3 }, () => 'PING');
    const out: string[] = [];
    const result = await runLines(linesOf(...lines), client, MACHINE, (t) => out.push(t));
    expect(out).toHaveLength(lines.length);
    expect(result.failed).toBe(0);
    expect(most).toBeLessThanOrEqual(PIPE_WINDOW);
  });

  it('quit stops reading: nothing after it is sent', async () => {
    const client = kvClient();
    const out: string[] = [];
    const result = await runLines(linesOf('SET a 1', 'quit', 'SET b 2'), client, MACHINE, (t) => out.push(t));
    expect(out).toEqual(['true']);
    expect(client.sent.map((r) => r.key)).toEqual(['a']);
    expect(result.quit).toBe(true);
  });
});

describe('streamPushes', () => {
  it('prints pushes until aborted, renews after a reconnect, then ends the subscription', async () => {
    const client = new FakeClient(async () => true);
    const out: string[] = [];
    const controller = new AbortController();
    const request = { action: 'SUBSCRIBE', channels: ['news^>'] };
    const streaming = streamPushes(client, request, (t) => out.push(t), MACHINE, controller.signal);
    client.emit('push', { event: 'message', channel: 'news^a', message: 1 });
    client.emit('ready');
    client.emit('push', { event: 'message', channel: 'news^b', message: 2 });
    controller.abort();
    await streaming;
    client.emit('push', { event: 'message', channel: 'news^c', message: 3 });
    expect(out).toEqual([
      '{"event":"message","channel":"news^a","message":1}',
      '{"event":"message","channel":"news^b","message":2}',
    ]);
    expect(client.sent).toEqual([request, { action: 'UNSUBSCRIBE' }]);
    expect(client.listenerCount('push')).toBe(0);
    expect(client.listenerCount('ready')).toBe(0);
  });
});
