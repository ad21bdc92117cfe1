import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogLimiter } from './log.js';

function capture(level = 'debug') {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe('LogLimiter', () => {
  it('passes a burst, then suppresses, then reports how many lines it dropped', () => {
    const { logger, lines } = capture();
    let now = 0;
    const limiter = new LogLimiter(logger, { burst: 3, perSecond: 1, now: () => now });
    for (let i = 0; i < 100; i++) limiter.log('warn', { i }, 'bad line');
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2]);
    expect(limiter.suppressed).toBe(97);

    now += 1000; // one token back
    limiter.log('warn', { i: 100 }, 'bad line');
    expect(lines.slice(3)).toMatchObject([
      { msg: 'suppressed log lines', suppressed: 97, level: 40 },
      { msg: 'bad line', i: 100 },
    ]);
  });

  it('refills at the configured rate and never above the burst', () => {
    const { logger, lines } = capture();
    let now = 0;
    const limiter = new LogLimiter(logger, { burst: 2, perSecond: 10, now: () => now });
    now += 60_000;
    for (let i = 0; i < 5; i++) limiter.log('info', {}, 'x');
    expect(lines).toHaveLength(2);
    now += 100;
    limiter.log('info', {}, 'x');
    expect(lines.map((l) => l.msg)).toEqual(['x', 'x', 'suppressed log lines', 'x']);
  });

  it('flush() reports what is left, once', () => {
    const { logger, lines } = capture();
    const limiter = new LogLimiter(logger, { burst: 1, now: () => 0 });
    limiter.log('debug', {}, 'a');
    limiter.log('debug', {}, 'b');
    limiter.flush();
    limiter.flush();
    expect(lines).toMatchObject([{ msg: 'a' }, { msg: 'suppressed log lines', suppressed: 1, level: 20 }]);
  });

  it('spends nothing on a disabled level', () => {
    const { logger, lines } = capture('info');
    const limiter = new LogLimiter(logger, { burst: 1, now: () => 0 });
    for (let i = 0; i < 10; i++) limiter.log('debug', {}, 'quiet');
    limiter.log('info', {}, 'loud');
    expect(lines.map((l) => l.msg)).toEqual(['loud']);
    expect(limiter.suppressed).toBe(0);
  });
});
