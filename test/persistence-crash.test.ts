/**
 * The durability promise, proven by killing real processes (scripts/crash.ts; 100 kills per
 * policy there, 20 here to keep CI bounded): after each SIGKILL under write load, a restart finds
 * every acknowledged write (always), or all but those acknowledged in the last 2 s (everysec).
 */
import { describe, expect, it } from 'vitest';
import { runCrashTest } from '../scripts/crash.js';

describe('SIGKILL under write load, 20 times', () => {
  it('always: every acknowledged write survives every kill', async () => {
    const report = await runCrashTest({ kills: 20, appendfsync: 'always' });
    expect(report.kills).toBe(20);
    expect(report.acked).toBeGreaterThan(1000); // the load was real
    expect({ lost: report.lost, wentBack: report.wentBack, seed: report.seed }).toEqual({
      lost: 0,
      wentBack: 0,
      seed: report.seed,
    });
  }, 120_000);

  it('everysec: nothing acknowledged more than 2 s before a kill is lost', async () => {
    const report = await runCrashTest({ kills: 20, appendfsync: 'everysec' });
    expect(report.kills).toBe(20);
    expect(report.acked).toBeGreaterThan(1000);
    expect({
      lostOutsideWindow: report.lostOutsideWindow,
      wentBack: report.wentBack,
      seed: report.seed,
    }).toEqual({
      lostOutsideWindow: 0,
      wentBack: 0,
      seed: report.seed,
    });
  }, 120_000);
});
