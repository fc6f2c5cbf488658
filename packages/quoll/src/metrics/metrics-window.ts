import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import type { ServerMetrics } from './server-metrics.js';

/** One pipeline's numbers over one sampling interval. */
export interface PipelineWindowPoint {
  workspaceId: number;
  pipeline: string;
  /** Requests answered per second over the interval. */
  requestsPerSecond: number;
  /** Rows inferred per second over the interval. */
  rowsPerSecond: number;
  /** Latency quantiles over the interval's requests (ms, interpolated in the histogram buckets); null without requests. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Requests answered with a status ≥ 400 over the interval. */
  errors: number;
}

/** One sample of the window. */
export interface MetricsSample {
  /** End of the interval (ISO 8601). */
  time: string;
  pipelines: PipelineWindowPoint[];
  /** Task runs handed to the runner and not ended, at the sample. */
  runningRuns: number;
}

/** Options of {@link MetricsWindow}. */
export interface MetricsWindowOptions {
  /** Between samples. @default 5000 */
  intervalMs?: number;
  /** Samples kept (oldest dropped). @default 120 (10 minutes at 5 s) */
  size?: number;
  /** @default systemClock */
  clock?: Clock;
}

interface Totals {
  count: number;
  rows: number;
  errors: number;
  /** Cumulative bucket counts, in bucket order (`+Inf` last). */
  buckets: number[];
}

/**
 * A short in-memory history of the {@link ServerMetrics} numbers for the console's charts:
 * every `intervalMs` the per-pipeline totals are read from the same numbers that `/metrics`
 * shows and turned into rates and latency quantiles for that interval.
 *
 * @example
 * const window = new MetricsWindow(metrics);
 * window.start();
 * window.samples(); // newest last
 * await window.stop();
 */
export class MetricsWindow {
  readonly intervalMs: number;
  readonly #size: number;
  readonly #clock: Clock;
  readonly #samples: MetricsSample[] = [];
  #previous = new Map<string, Totals>();
  #timer: TimerHandle | null = null;
  #sampling: Promise<void> | null = null;
  #stopped = false;

  constructor(
    private readonly metrics: ServerMetrics,
    options: MetricsWindowOptions = {},
  ) {
    this.intervalMs = Math.max(10, options.intervalMs ?? 5000);
    this.#size = Math.max(1, options.size ?? 120);
    this.#clock = options.clock ?? systemClock;
  }

  /** Starts sampling (the first totals are read at once, the first sample one interval later). */
  start(): void {
    if (this.#stopped || this.#timer !== null) return;
    this.#sampling = this.sample(false);
    this.#arm();
  }

  /** Samples kept, oldest first. */
  samples(): readonly MetricsSample[] {
    return this.#samples;
  }

  /** Stops sampling; resolves once a sample in progress has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    await this.#sampling;
  }

  /** Whether a sampling timer is armed (tests prove stop() leaves none). */
  get running(): boolean {
    return this.#timer !== null;
  }

  /** Reads the totals now and (with `record`) appends the sample since the previous read. */
  async sample(record = true): Promise<void> {
    const totals = await this.#readTotals();
    if (record) {
      const seconds = this.intervalMs / 1000;
      const pipelines: PipelineWindowPoint[] = [];
      for (const [key, now] of totals) {
        const before = this.#previous.get(key);
        const count = now.count - (before?.count ?? 0);
        const rows = now.rows - (before?.rows ?? 0);
        const errors = now.errors - (before?.errors ?? 0);
        const deltas = now.buckets.map((b, i) => b - (before?.buckets[i] ?? 0));
        const [workspace, pipeline] = key.split('\u0000') as [string, string];
        if (pipeline === '') continue;
        pipelines.push({
          workspaceId: Number(workspace),
          pipeline,
          requestsPerSecond: count / seconds,
          rowsPerSecond: rows / seconds,
          p50Ms: quantileMs(this.metrics.latencyBuckets, deltas, 0.5),
          p99Ms: quantileMs(this.metrics.latencyBuckets, deltas, 0.99),
          errors,
        });
      }
      this.#samples.push({
        time: new Date(this.#clock.now()).toISOString(),
        pipelines,
        runningRuns: this.metrics.runningRuns,
      });
      if (this.#samples.length > this.#size) this.#samples.shift();
    }
    this.#previous = totals;
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.#sampling = this.sample().then(
        () => this.#arm(),
        () => this.#arm(),
      );
    }, this.intervalMs);
  }

  async #readTotals(): Promise<Map<string, Totals>> {
    const totals = new Map<string, Totals>();
    for (const t of this.metrics.pipelineTotals())
      totals.set(`${t.workspaceId}\u0000${t.pipeline}`, {
        count: t.count,
        rows: t.rows,
        errors: t.errors,
        buckets: t.buckets,
      });
    return Promise.resolve(totals);
  }
}

/**
 * The `q` quantile in ms from one interval's cumulative bucket counts (upper bounds in seconds,
 * `+Inf` last), interpolated linearly inside the bucket; null when the interval has no request.
 */
export function quantileMs(
  bounds: readonly number[],
  cumulative: readonly number[],
  q: number,
): number | null {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < cumulative.length; i++) {
    const upto = cumulative[i]!;
    if (upto >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      // Past the last finite bound, the last finite bound is the best estimate.
      const upper = bounds[i] ?? bounds[bounds.length - 1]!;
      const below = i === 0 ? 0 : cumulative[i - 1]!;
      const inBucket = upto - below;
      const fraction = inBucket === 0 ? 1 : (rank - below) / inBucket;
      return (lower + (upper - lower) * fraction) * 1000;
    }
  }
  return bounds[bounds.length - 1]! * 1000;
}
