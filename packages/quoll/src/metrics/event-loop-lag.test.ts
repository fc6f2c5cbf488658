import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectEventLoopLag } from './event-loop-lag.js';

/** The registry's `nodejs_eventloop_lag_*` values by name (seconds). */
async function read(registry: Registry): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^(nodejs_eventloop_lag_\w+) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, m[2] === 'Nan' ? NaN : Number(m[2]));
  }
  return values;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('collectEventLoopLag', () => {
  it('reports the delays since the previous scrape, a blocked loop included, then starts afresh', async () => {
    const registry = new Registry();
    collectEventLoopLag(registry, 10);
    await read(registry); // starts the interval now
    await sleep(50);
    const blockedUntil = performance.now() + 150;
    while (performance.now() < blockedUntil);
    await sleep(50);
    const lag = await read(registry);
    // The same eight families as prom-client's collector.
    expect([...lag.keys()].sort()).toEqual([
      'nodejs_eventloop_lag_max_seconds',
      'nodejs_eventloop_lag_mean_seconds',
      'nodejs_eventloop_lag_min_seconds',
      'nodejs_eventloop_lag_p50_seconds',
      'nodejs_eventloop_lag_p90_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_stddev_seconds',
    ]);
    // As Node's monitor: the time between the timer's firings, so about the resolution when idle.
    expect(lag.get('nodejs_eventloop_lag_min_seconds')).toBeGreaterThanOrEqual(0.005);
    expect(lag.get('nodejs_eventloop_lag_min_seconds')).toBeLessThan(0.1);
    expect(lag.get('nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.15);
    expect(lag.get('nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0.15);
    const mean = lag.get('nodejs_eventloop_lag_mean_seconds')!;
    expect(mean).toBeGreaterThan(lag.get('nodejs_eventloop_lag_min_seconds')!);
    expect(mean).toBeLessThan(lag.get('nodejs_eventloop_lag_max_seconds')!);
    // One long delay among short ones: the spread is large against the mean.
    expect(lag.get('nodejs_eventloop_lag_stddev_seconds')).toBeGreaterThan(0.02);
    // The next scrape at once covers no timer firing: nothing recorded, as Node's monitor after a reset.
    const empty = await read(registry);
    expect(empty.get('nodejs_eventloop_lag_mean_seconds')).toBeNaN();
    expect(empty.get('nodejs_eventloop_lag_max_seconds')).toBe(0);
    expect(empty.get('nodejs_eventloop_lag_p99_seconds')).toBe(0);
  });

  it('computes the mean and standard deviation of the recorded delays', async () => {
    const registry = new Registry();
    collectEventLoopLag(registry, 5);
    await read(registry);
    await sleep(200);
    const lag = await read(registry);
    const min = lag.get('nodejs_eventloop_lag_min_seconds')!;
    const max = lag.get('nodejs_eventloop_lag_max_seconds')!;
    const mean = lag.get('nodejs_eventloop_lag_mean_seconds')!;
    const stddev = lag.get('nodejs_eventloop_lag_stddev_seconds')!;
    expect(mean).toBeGreaterThanOrEqual(min * 0.999);
    expect(mean).toBeLessThanOrEqual(max * 1.001);
    expect(stddev).toBeGreaterThanOrEqual(0);
    expect(stddev).toBeLessThanOrEqual((max - min) / 2 + 1e-6);
    const p50 = lag.get('nodejs_eventloop_lag_p50_seconds')!;
    expect(p50).toBeGreaterThanOrEqual(min * 0.999);
    expect(p50).toBeLessThanOrEqual(max * 1.001);
  });

  it('records nothing once stopped (the timer is gone)', async () => {
    const registry = new Registry();
    const stop = collectEventLoopLag(registry, 5);
    await read(registry);
    await sleep(40);
    expect((await read(registry)).get('nodejs_eventloop_lag_mean_seconds')).toBeGreaterThan(0);
    stop();
    await sleep(40);
    expect((await read(registry)).get('nodejs_eventloop_lag_mean_seconds')).toBeNaN();
  });
});
