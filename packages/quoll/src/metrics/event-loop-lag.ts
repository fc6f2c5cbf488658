import { createHistogram } from 'node:perf_hooks';
import { header } from './prometheus-text.js';

/** Largest loop delay recorded (ns): one hour; a longer one is left out of the histogram's figures. */
const HIGHEST_NS = 3_600_000_000_000;

const LAG = 'nodejs_eventloop_lag_seconds';
const MIN = 'nodejs_eventloop_lag_min_seconds';
const MAX = 'nodejs_eventloop_lag_max_seconds';
const MEAN = 'nodejs_eventloop_lag_mean_seconds';
const STDDEV = 'nodejs_eventloop_lag_stddev_seconds';
const P50 = 'nodejs_eventloop_lag_p50_seconds';
const P90 = 'nodejs_eventloop_lag_p90_seconds';
const P99 = 'nodejs_eventloop_lag_p99_seconds';
/** prom-client's help texts, word for word. */
const HEADERS = {
  lag: header(LAG, 'gauge', 'Lag of event loop in seconds.'),
  min: header(MIN, 'gauge', 'The minimum recorded event loop delay.'),
  max: header(MAX, 'gauge', 'The maximum recorded event loop delay.'),
  mean: header(MEAN, 'gauge', 'The mean of the recorded event loop delays.'),
  stddev: header(STDDEV, 'gauge', 'The standard deviation of the recorded event loop delays.'),
  p50: header(P50, 'gauge', 'The 50th percentile of the recorded event loop delays.'),
  p90: header(P90, 'gauge', 'The 90th percentile of the recorded event loop delays.'),
  p99: header(P99, 'gauge', 'The 99th percentile of the recorded event loop delays.'),
};

/**
 * The `nodejs_eventloop_lag_*` gauges of prom-client's default collectors (same names, help,
 * and meaning), computed for a fraction of the cost at each scrape and written as text.
 *
 * prom-client reads them from Node's `monitorEventLoopDelay` histogram, whose `mean` and
 * `stddev` walk every one of its ~45 000 buckets (range 1 ns to 2^53 ns, 3 significant
 * figures) at each scrape: `stddev` alone took 240–500 µs here, about half of a whole render
 * (docs/benchmarks.md, "Metrics on vs off"). The same samples are taken here: every
 * `resolutionMs` a timer records the time since its previous firing (what Node's monitor
 * records, so the mean is about `resolutionMs` plus the lag) into a histogram of 1 µs to 1 h
 * (the percentiles, min and max, as before), and keeps the count, sum and sum of squares as
 * plain numbers, so the mean and the (population) standard deviation cost a division and a
 * square root. Each {@link text} reads the interval since the previous one and starts a new
 * one; `nodejs_eventloop_lag_seconds` is, as in prom-client, the wait of one `setImmediate`
 * started by the previous scrape (0 at the first). The timer is unref'd (it never keeps the
 * process alive); {@link stop} stops it.
 */
export class EventLoopLag {
  readonly #histogram = createHistogram({ lowest: 1000, highest: HIGHEST_NS, figures: 3 });
  /** Sums of each delay's distance from the resolution (small numbers: no precision lost in the variance). */
  readonly #shift: number;
  #count = 0;
  #sum = 0;
  #squares = 0;
  #previous = performance.now();
  /** Seconds the last scrape's `setImmediate` waited. */
  #lagSeconds = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(resolutionMs: number) {
    this.#shift = resolutionMs * 1e6;
    this.#timer = setInterval(() => this.#sample(), resolutionMs).unref();
  }

  #sample(): void {
    const now = performance.now();
    const ns = Math.round((now - this.#previous) * 1e6);
    this.#previous = now;
    if (ns < 1 || ns > HIGHEST_NS) return;
    this.#histogram.record(ns);
    const x = ns - this.#shift;
    this.#count += 1;
    this.#sum += x;
    this.#squares += x * x;
  }

  /** The eight families' text for the interval since the previous call, which starts a new one. */
  text(): string {
    const start = performance.now();
    setImmediate(() => (this.#lagSeconds = (performance.now() - start) / 1000));
    const h = this.#histogram;
    const count = this.#count;
    const m = count > 0 ? this.#sum / count : NaN;
    const mean = (this.#shift + m) / 1e9;
    const stddev = Math.sqrt(Math.max(0, this.#squares / count - m * m)) / 1e9;
    // An empty histogram's percentiles walk all of it; Node's monitor answers 0 then.
    const p = (q: number): number => (count > 0 ? h.percentile(q) / 1e9 : 0);
    const text =
      `${HEADERS.lag}${LAG} ${this.#lagSeconds}\n` +
      `${HEADERS.min}${MIN} ${h.min / 1e9}\n` +
      `${HEADERS.max}${MAX} ${h.max / 1e9}\n` +
      `${HEADERS.mean}${MEAN} ${Number.isNaN(mean) ? 'NaN' : mean}\n` +
      `${HEADERS.stddev}${STDDEV} ${Number.isNaN(stddev) ? 'NaN' : stddev}\n` +
      `${HEADERS.p50}${P50} ${p(50)}\n` +
      `${HEADERS.p90}${P90} ${p(90)}\n` +
      `${HEADERS.p99}${P99} ${p(99)}\n`;
    h.reset();
    this.#count = 0;
    this.#sum = 0;
    this.#squares = 0;
    return text;
  }

  /** Stops the timer: nothing is recorded after this. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
