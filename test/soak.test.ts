/**
 * 60 seconds of the soak (scripts/soak.ts) in CI: mixed load against a measured server process,
 * failing on wrong answers, upward trends in RSS / heap / fds / loop delay, or a loop stall.
 * The 30-minute run is recorded in docs/reliability.md (`npm run soak -- --minutes 30`).
 */
import { describe, expect, it } from 'vitest';
import type { ServerSample } from '../scripts/harness.js';
import { analyse, runSoak } from '../scripts/soak.js';

const flat: ServerSample = {
  rss: 100 * 1048576,
  heapUsed: 20 * 1048576,
  heapTotal: 40 * 1048576,
  external: 0,
  fds: 30,
  loopMaxMs: 20,
  loopP99Ms: 12,
  loopMeanMs: 10,
  cpuPercent: 50,
  connections: 8,
  connectionsTotal: 0,
  connectionsRejected: 0,
};

describe('the trend test', () => {
  it('passes noise around a level and fails a steady climb', () => {
    const noisy = Array.from({ length: 30 }, (_, i) => ({
      ...flat,
      t: i * 2000,
      heapUsed: flat.heapUsed + (i % 3) * 1048576,
      fds: flat.fds + (i % 2),
    }));
    expect(analyse(noisy).every((t) => t.ok)).toBe(true);
    // A leak of 1 MiB of heap per sample and one fd every other sample.
    const leaking = noisy.map((s, i) => ({ ...s, heapUsed: flat.heapUsed + i * 1048576, fds: flat.fds + i }));
    const failed = analyse(leaking)
      .filter((t) => !t.ok)
      .map((t) => t.metric);
    expect(failed).toEqual(['heapUsed', 'fds']);
  });
});

describe('soak', () => {
  it('60 s of mixed load: no wrong answer, nothing trends upward, the loop never stalls', async () => {
    const report = await runSoak({ seconds: 60, sampleSeconds: 2, kvClients: 4, stallMs: 2000 });
    const context = `seed ${report.seed}: ${JSON.stringify({ failures: report.failures, trends: report.trends }, null, 2)}`;
    expect(report.failures, context).toEqual([]);
    expect(report.samples.length, context).toBeGreaterThanOrEqual(20);
    expect(report.totals.kvRequests, context).toBeGreaterThan(10_000);
    expect(report.totals.badLines, context).toBeGreaterThan(100);
    expect(report.totals.churnConnections, context).toBeGreaterThan(100);
    expect(report.exit.code).toBe(0);
  }, 150_000);
});
