import { createHistogram } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** Largest loop delay recorded (ns): one hour; a longer one is left out of the histogram's figures. */
const HIGHEST_NS = 3_600_000_000_000;

/**
 * The `nodejs_eventloop_lag_*` gauges of prom-client's default collectors (same names, help,
 * aggregators and meaning), computed for a fraction of the cost at each scrape.
 *
 * prom-client reads them from Node's `monitorEventLoopDelay` histogram, whose `mean` and
 * `stddev` walk every one of its ~45 000 buckets (range 1 ns to 2^53 ns, 3 significant
 * figures) at each scrape: `stddev` alone took 240–500 µs here, about half of a whole render
 * (docs/benchmarks.md, "Metrics on vs off"). The same samples are taken here: every
 * `resolutionMs` a timer records the time since its previous firing (what Node's monitor
 * records, so the mean is about `resolutionMs` plus the lag) into a histogram of 1 µs to 1 h
 * (the percentiles, min and max, as before), and keeps the count, sum and sum of squares as
 * plain numbers, so the mean and the (population) standard deviation cost a division and a
 * square root. Each scrape reads the interval since the previous one and starts a new one;
 * `nodejs_eventloop_lag_seconds` is, as in prom-client, the wait of one `setImmediate`.
 * The timer is unref'd (it never keeps the process alive); the returned function stops it.
 */
export function collectEventLoopLag(registry: Registry, resolutionMs: number): () => void {
  const histogram = createHistogram({ lowest: 1000, highest: HIGHEST_NS, figures: 3 });
  let previous = performance.now();
  // Sums of each delay's distance from the resolution (small numbers: no precision lost in the variance).
  const shift = resolutionMs * 1e6;
  let count = 0;
  let sum = 0;
  let squares = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const ns = Math.round((now - previous) * 1e6);
    previous = now;
    if (ns < 1 || ns > HIGHEST_NS) return;
    histogram.record(ns);
    const x = ns - shift;
    count += 1;
    sum += x;
    squares += x * x;
  }, resolutionMs).unref();

  const registers = [registry];
  const lag: Gauge = new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers,
    aggregator: 'average',
    // This one metric's collect sets all of them (as prom-client's does); registered first, so
    // the others are read after it.
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => lag.set(Number(process.hrtime.bigint() - start) / 1e9));
      const m = count > 0 ? sum / count : NaN;
      min.set(histogram.min / 1e9);
      max.set(histogram.max / 1e9);
      mean.set((shift + m) / 1e9);
      stddev.set(Math.sqrt(Math.max(0, squares / count - m * m)) / 1e9);
      // An empty histogram's percentiles walk all of it; Node's monitor answers 0 then.
      p50.set(count > 0 ? histogram.percentile(50) / 1e9 : 0);
      p90.set(count > 0 ? histogram.percentile(90) / 1e9 : 0);
      p99.set(count > 0 ? histogram.percentile(99) / 1e9 : 0);
      histogram.reset();
      count = 0;
      sum = 0;
      squares = 0;
    },
  });
  const gauge = (name: string, help: string, aggregator: 'min' | 'max' | 'average'): Gauge =>
    new Gauge({ name, help, registers, aggregator });
  const min = gauge('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', 'min');
  const max = gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', 'max');
  const mean = gauge(
    'nodejs_eventloop_lag_mean_seconds',
    'The mean of the recorded event loop delays.',
    'average',
  );
  const stddev = gauge(
    'nodejs_eventloop_lag_stddev_seconds',
    'The standard deviation of the recorded event loop delays.',
    'average',
  );
  const p50 = gauge(
    'nodejs_eventloop_lag_p50_seconds',
    'The 50th percentile of the recorded event loop delays.',
    'average',
  );
  const p90 = gauge(
    'nodejs_eventloop_lag_p90_seconds',
    'The 90th percentile of the recorded event loop delays.',
    'average',
  );
  const p99 = gauge(
    'nodejs_eventloop_lag_p99_seconds',
    'The 99th percentile of the recorded event loop delays.',
    'average',
  );
  return () => clearInterval(timer);
}
