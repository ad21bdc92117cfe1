import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CaretError, clientError } from './errors.js';
import { defaultRetryStrategy, parseUrl, resolveOptions } from './options.js';

describe('parseUrl', () => {
  it('reads host and port, defaulting each', () => {
    expect(parseUrl('caretkv://db.internal:9000')).toEqual({ host: 'db.internal', port: 9000 });
    expect(parseUrl('caretkv://db.internal')).toEqual({ host: 'db.internal', port: 7171 });
    expect(parseUrl('caretkv://[::1]:7000')).toEqual({ host: '::1', port: 7000 });
  });

  it('refuses other schemes and junk with a message that shows the expected form', () => {
    expect(() => parseUrl('redis://localhost:6379')).toThrow(/caretkv:\/\/host:port/);
    expect(() => parseUrl('not a url')).toThrow(/caretkv:\/\/host:port/);
  });
});

describe('resolveOptions', () => {
  it('defaults to 127.0.0.1:7171 with bounded queues and timeouts', () => {
    const o = resolveOptions();
    expect(o).toMatchObject({ host: '127.0.0.1', port: 7171, replayInFlight: false, lazyConnect: false });
    expect(o.requestTimeout).toBeGreaterThan(0);
    expect(Number.isFinite(o.maxOfflineQueue)).toBe(true);
    expect(o.maxRetriesPerRequest).toBe(20);
  });

  it('lets the URL set the address and the options everything else', () => {
    const o = resolveOptions('caretkv://10.0.0.1:7000', { requestTimeout: 50, maxRetriesPerRequest: null });
    expect(o).toMatchObject({ host: '10.0.0.1', port: 7000, requestTimeout: 50 });
    expect(o.maxRetriesPerRequest).toBe(Number.POSITIVE_INFINITY);
  });

  it('names the bad option', () => {
    expect(() => resolveOptions({ requestTimeout: -1 })).toThrow(/requestTimeout/);
    expect(() => resolveOptions({ port: 70000 })).toThrow(/port/);
    expect(() => resolveOptions({ retryStrategy: 5 as never })).toThrow(/retryStrategy/);
  });
});

describe('defaultRetryStrategy', () => {
  it('backs off exponentially, capped at 2 s, with jitter of at most half the delay', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), (attempt) => {
        const base = Math.min(2000, 50 * 2 ** (attempt - 1));
        const d = defaultRetryStrategy(attempt);
        expect(d).toBeGreaterThanOrEqual(Math.floor(base / 2));
        expect(d).toBeLessThanOrEqual(base);
      }),
    );
  });
});

describe('CaretError', () => {
  it('names the action and key, carries a stable code, and says what to do', () => {
    const e = clientError('OFFLINE_QUEUE_FULL', 'SET', 'users^1', '3 waiting');
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(CaretError);
    expect(e.name).toBe('CaretError');
    expect(e.code).toBe('OFFLINE_QUEUE_FULL');
    expect(e.message).toMatch(/^SET users\^1: 3 waiting\. .*maxOfflineQueue.* \[OFFLINE_QUEUE_FULL\]$/);
  });
});
