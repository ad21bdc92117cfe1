/**
 * The NDJSON codec on its own, with a recording runner in place of the dispatcher and a settable
 * gate in place of the connection's authentication: framing, decode+validate, the line limit
 * following AUTH, bounded pre-auth input, the shutdown notice and the sampled bad-request log.
 * transport/pipeline.test.ts checks ordering and backpressure; handler.test.ts the composition.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RequestError, RequestId } from './codec.js';
import type { ErrorCode } from './errors.js';
import { type LineGate, NdjsonCodec, type RequestRunner, SHUTDOWN_PUSH } from './ndjson.js';
import type { Request } from './schema.js';

interface Ctx {
  readonly name: string;
}

/** Answers `run:<ACTION>:<id>`, `reject:<CODE>`, `error:<CODE>:<message>`, one per line. */
class RecordingRunner implements RequestRunner<Ctx> {
  readonly requests: Request[] = [];
  readonly contexts: Ctx[] = [];
  run(req: Request, ctx: Ctx): string {
    this.requests.push(req);
    this.contexts.push(ctx);
    return `run:${req.action}:${req.id}\n`;
  }
  reject(err: RequestError): string {
    return `reject:${err.code}\n`;
  }
  error(_id: RequestId | undefined, code: ErrorCode, message: string): string {
    return `error:${code}:${message}\n`;
  }
}

class Gate implements LineGate {
  lineLimit = 100;
  busy = false;
  authenticated = false;
}

function setup() {
  const runner = new RecordingRunner();
  const gate = new Gate();
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const events: string[] = [];
  const codec = new NdjsonCodec(runner, { name: 'ctx' }, gate, {
    maxDepth: 8,
    log,
    onDrained: () => events.push('drained'),
    onClosed: () => events.push('closed'),
  });
  /** Every answer to what is buffered now. */
  const drain = (): string[] => {
    const out: string[] = [];
    for (let r = codec.next(); r !== null; r = codec.next()) out.push(r as string);
    return out;
  };
  return { runner, gate, codec, logs, events, drain };
}

describe('NdjsonCodec', () => {
  it('runs one decoded, validated request per line, with the connection context', () => {
    const { runner, codec, drain } = setup();
    codec.push(
      Buffer.from('{"action":"ping","id":1}\r\n\n{"action":"GET","key":"a","id":"x"}\n{"action":"PI'),
    );
    expect(codec.hasInput).toBe(true);
    expect(drain()).toEqual(['run:PING:1\n', 'run:GET:x\n']);
    expect(codec.hasInput).toBe(false);
    codec.push(Buffer.from('NG"}\n'));
    expect(drain()).toEqual(['run:PING:undefined\n']);
    expect(runner.contexts.map((c) => c.name)).toEqual(['ctx', 'ctx', 'ctx']);
  });

  it('hands lines that fail to decode or validate to the runner as rejections, and goes on', () => {
    const { codec, drain } = setup();
    const lines = ['garbage', '[1]', '{"action":"NOPE"}', '{"action":"GET"}', '[[[[[[[[[[[[1]]]]]]]]]]]]'];
    codec.push(Buffer.from(`${lines.join('\n')}\n{"action":"PING","id":2}\n`));
    expect(drain()).toEqual([
      'reject:BAD_JSON\n',
      'reject:BAD_REQUEST\n',
      'reject:UNKNOWN_ACTION\n',
      'reject:BAD_REQUEST\n',
      'reject:TOO_DEEP\n',
      'run:PING:2\n',
    ]);
  });

  it('runs an unterminated last line on finish', () => {
    const { codec, drain } = setup();
    codec.push(Buffer.from('{"action":"PING","id":1}\n{"action":"PING","id":2}'));
    expect(drain()).toEqual(['run:PING:1\n']);
    expect(codec.finish()).toBe('run:PING:2\n');
    expect(codec.finish()).toBeNull();
  });

  it('answers a line over the limit with LINE_TOO_LONG once, naming the limit that applies', () => {
    const { gate, codec, drain } = setup();
    codec.push(Buffer.from(`{"action":"ECHO","value":"${'y'.repeat(200)}"}\n{"action":"PING","id":1}\n`));
    const [tooLong, next] = drain();
    expect(tooLong).toMatch(/^error:LINE_TOO_LONG:line longer than 100 bytes .*--pre-auth-max-line-bytes/);
    expect(next).toBe('run:PING:1\n');

    gate.authenticated = true;
    gate.lineLimit = 1000;
    codec.push(Buffer.from(`{"action":"ECHO","value":"${'y'.repeat(500)}"}\n`));
    expect(drain()).toEqual(['run:ECHO:undefined\n']);
    codec.push(Buffer.from(`{"action":"ECHO","value":"${'y'.repeat(2000)}"}\n`));
    expect(drain()[0]).toMatch(/^error:LINE_TOO_LONG:line longer than 1000 bytes .*--max-line-bytes/);
  });

  it('is blocked while the gate is busy (an AUTH being verified)', () => {
    const { gate, codec } = setup();
    expect(codec.blocked).toBe(false);
    gate.busy = true;
    expect(codec.blocked).toBe(true);
  });

  it('before AUTH asks to hold input past twice the line limit buffered; after AUTH never', () => {
    const { gate, codec, drain } = setup();
    const line = `{"action":"ECHO","value":"${'y'.repeat(40)}"}\n`;
    codec.push(Buffer.from(line.repeat(5)));
    expect(codec.holdInput).toBe(true);
    drain();
    expect(codec.holdInput).toBe(false);
    gate.authenticated = true;
    codec.push(Buffer.from(line.repeat(5)));
    expect(codec.holdInput).toBe(false);
  });

  it('ends the connection with the shutdown push line', () => {
    const { codec } = setup();
    expect(codec.shutdownNotice).toBe(SHUTDOWN_PUSH);
    expect(JSON.parse(SHUTDOWN_PUSH)).toEqual({ event: 'shutdown', message: expect.any(String) });
    expect(SHUTDOWN_PUSH.endsWith('\n')).toBe(true);
  });

  it('reports drain and close, and drops buffered input on close', () => {
    const { codec, events } = setup();
    codec.push(Buffer.from('{"action":"PING"}\n'));
    codec.drained();
    codec.closed();
    expect(events).toEqual(['drained', 'closed']);
    expect(codec.hasInput).toBe(false);
  });

  it('answers a failed promise with INTERNAL and logs it', () => {
    const { codec, logs } = setup();
    expect(codec.fault(new Error('boom'))).toMatch(/^error:INTERNAL:/);
    expect(logs.some((l) => l.msg === 'response failed')).toBe(true);
  });

  it('samples the debug log of bad requests: garbage cannot flood the log', () => {
    const { codec, logs, drain } = setup();
    codec.push(Buffer.from('junk\n'.repeat(100)));
    expect(drain()).toHaveLength(100);
    const bad = logs.filter((l) => l.msg === 'bad request');
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.length).toBeLessThanOrEqual(10);
  });
});
