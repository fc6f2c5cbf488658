import { describe, expect, it } from 'vitest';
import { EventLoopLag } from './event-loop-lag.js';

/** The `nodejs_eventloop_lag_*` values of one scrape's text, by name (seconds). */
function read(lag: EventLoopLag): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of lag.text().split('\n')) {
    const m = /^(nodejs_eventloop_lag_\w+) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return values;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('EventLoopLag', () => {
  it('reports the delays since the previous scrape, a blocked loop included, then starts afresh', async () => {
    const monitor = new EventLoopLag(10);
    read(monitor); // starts the interval now
    await sleep(50);
    const blockedUntil = performance.now() + 150;
    while (performance.now() < blockedUntil);
    await sleep(50);
    const lag = read(monitor);
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
    const empty = read(monitor);
    expect(empty.get('nodejs_eventloop_lag_mean_seconds')).toBeNaN();
    expect(empty.get('nodejs_eventloop_lag_max_seconds')).toBe(0);
    expect(empty.get('nodejs_eventloop_lag_p99_seconds')).toBe(0);
    monitor.stop();
  });

  it("reports as nodejs_eventloop_lag_seconds the previous scrape's setImmediate wait (0 at the first)", async () => {
    const monitor = new EventLoopLag(100);
    expect(read(monitor).get('nodejs_eventloop_lag_seconds')).toBe(0);
    // The loop is blocked before the immediate the scrape started can run.
    const blockedUntil = performance.now() + 60;
    while (performance.now() < blockedUntil);
    await new Promise((resolve) => setImmediate(resolve));
    const lag = read(monitor).get('nodejs_eventloop_lag_seconds')!;
    expect(lag).toBeGreaterThanOrEqual(0.055);
    expect(lag).toBeLessThan(10);
    monitor.stop();
  });

  it('computes the mean and standard deviation of the recorded delays', async () => {
    const monitor = new EventLoopLag(5);
    read(monitor);
    await sleep(200);
    const lag = read(monitor);
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
    monitor.stop();
  });

  it('records nothing once stopped (the timer is gone)', async () => {
    const monitor = new EventLoopLag(5);
    const stop = (): void => monitor.stop();
    read(monitor);
    await sleep(40);
    expect(read(monitor).get('nodejs_eventloop_lag_mean_seconds')).toBeGreaterThan(0);
    stop();
    await sleep(40);
    expect(read(monitor).get('nodejs_eventloop_lag_mean_seconds')).toBeNaN();
  });
});
