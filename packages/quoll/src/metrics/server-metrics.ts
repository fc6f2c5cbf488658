import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TaskObserver } from '../scheduler/index.js';
import { collectEventLoopLag } from './event-loop-lag.js';

/** One of prom-client's default collectors: registers its metrics in `registry`. */
type DefaultCollector = (registry: Registry, config: object) => void;

/**
 * prom-client's default collectors (`collectDefaultMetrics`) but its event-loop lag, which
 * {@link collectEventLoopLag} replaces (same metrics, a fraction of the cost per scrape): CPU,
 * start time, memory, file descriptors, active resources, handles and requests, heap and heap
 * spaces, Node's version, GC durations. Loaded one by one from prom-client's own files (the
 * package pins its version; `collectDefaultMetrics` cannot leave one out).
 */
const PROCESS_COLLECTORS: readonly string[] = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];
const requireCjs = createRequire(import.meta.url);

/** Where {@link ServerMetrics} reads the gauges it reports at each scrape. */
export interface MetricsSources {
  /** Requests waiting for a worker, per serving pipeline. */
  queueDepths(): ReadonlyArray<{ workspaceId: number; name: string; queued: number }>;
  /** Rows queued for the inference-log writer. */
  logQueuedRows(): number;
  /** Bytes of inference-log segments kept. */
  logBytes(): Promise<number>;
  /** The inference-log writer's state (`open`, `retrying`, `stopped`, …). */
  logState(): string;
}

/** Latency buckets in seconds: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Rows per model run: 1 to 16 384. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/**
 * How often (ms) the event-loop delay monitor behind `nodejs_eventloop_lag_*` wakes the loop.
 * prom-client's default, 10 ms, is 100 timer wake-ups a second: measured here at 5–8 ms of CPU
 * per second in an idle process (≈ 1 % of a core; 0.8–1.6 ms/s at 100 ms), and at batch-1
 * inference about the size of the whole on/off gap (docs/benchmarks.md, "Metrics on vs off").
 * At 100 ms every stall of 100 ms or more is still seen in full, a shorter one in proportion,
 * with 150 samples per 15 s scrape interval.
 */
const EVENT_LOOP_RESOLUTION_MS = 100;

/** Scheduler lateness buckets in seconds. */
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Pipeline label of requests that reached no serving pipeline (keeps label values bounded). */
export const NO_PIPELINE = '';

/** One pipeline's inference numbers, kept as plain numbers (turned into text at a scrape). */
interface PipelineSeries {
  workspace: string;
  pipeline: string;
  /** Requests answered, by HTTP status. */
  byStatus: Map<number, number>;
  /** Requests per latency bucket (not cumulative; `+Inf` last). */
  buckets: Float64Array;
  seconds: number;
  count: number;
  rows: number;
}

/** Totals of one pipeline since the server started (what {@link MetricsWindow} differentiates). */
export interface PipelineTotals {
  workspaceId: number;
  pipeline: string;
  count: number;
  rows: number;
  /** Requests answered with a status ≥ 400. */
  errors: number;
  /** Cumulative requests per latency bucket, in {@link LATENCY_BUCKETS} order, `+Inf` last. */
  buckets: number[];
}

/** Index of the first bucket whose upper bound holds `value` (`bounds.length` = `+Inf`). */
function bucketOf(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}

/** A label value or help text escaped for the Prometheus text format. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** A histogram family's lines (buckets cumulative, then _sum and _count). */
function histogramLines(
  out: string[],
  name: string,
  bounds: readonly number[],
  buckets: Float64Array,
  sum: number,
  count: number,
  labels: string,
): void {
  const rest = labels === '' ? '' : `,${labels}`;
  let cumulative = 0;
  for (let i = 0; i <= bounds.length; i++) {
    cumulative += buckets[i]!;
    const le = i < bounds.length ? formatValue(bounds[i]!) : '+Inf';
    out.push(`${name}_bucket{le="${le}"${rest}} ${formatValue(cumulative)}`);
  }
  const braces = labels === '' ? '' : `{${labels}}`;
  out.push(`${name}_sum${braces} ${formatValue(sum)}`);
  out.push(`${name}_count${braces} ${formatValue(count)}`);
}

function header(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
  out.push(`# TYPE ${name} ${type}`);
}

const REQUESTS = 'quoll_inference_requests_total';
const DURATION = 'quoll_inference_request_duration_seconds';
const ROWS = 'quoll_inference_rows_total';
const BATCH = 'quoll_inference_batch_rows';

/**
 * The server's Prometheus metrics: inference requests, latency and rows per pipeline, queue
 * depth and batch sizes, the inference-log store, task runs by status, scheduler lateness and
 * the process metrics. Implements {@link TaskObserver}.
 *
 * The per-request numbers (requests, latency, rows, batch sizes) are plain numbers in nested
 * maps (no label objects, hashing or allocation per request: prom-client's labelled children
 * cost ~10 µs per request here); they become Prometheus text only when scraped. The rest
 * (gauges read at a scrape, task runs, scheduler lag, process metrics) is prom-client's, but
 * the event-loop lag ({@link collectEventLoopLag}: the same metrics for half the cost of a scrape).
 *
 * @example
 * const metrics = new ServerMetrics(sources);
 * metrics.inferenceServed(1, 'houseprice', 200, 0.004);
 * const text = await metrics.render(); // Prometheus text format
 */
export class ServerMetrics implements TaskObserver {
  /** Content type of {@link render}'s text. */
  readonly contentType: string;
  readonly registry = new Registry();
  readonly taskRuns: Counter<'status'>;
  readonly schedulerLag: Histogram;
  /** Upper bounds (seconds) of the latency histogram's buckets. */
  readonly latencyBuckets: readonly number[] = LATENCY_BUCKETS;
  #running = 0;
  /** By workspace id, then pipeline name: no key string is built per request. */
  readonly #series = new Map<number, Map<string, PipelineSeries>>();
  readonly #batchBuckets = new Float64Array(BATCH_BUCKETS.length + 1);
  #batchRows = 0;
  #batches = 0;
  #processMetrics = false;
  /** Stops the event-loop lag timer (null until the first scrape starts it). */
  #stopLag: (() => void) | null = null;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    this.contentType = this.registry.contentType;
    new Gauge({
      name: 'quoll_inference_queue_depth',
      help: 'Inference requests waiting for a worker, by workspace id and pipeline name.',
      labelNames: ['workspace', 'pipeline'],
      registers,
      collect() {
        this.reset();
        for (const d of sources.queueDepths())
          this.set({ workspace: String(d.workspaceId), pipeline: d.name }, d.queued);
      },
    });
    new Gauge({
      name: 'quoll_inference_log_queue_rows',
      help: 'Inference-log rows queued for the writer.',
      registers,
      collect() {
        this.set(sources.logQueuedRows());
      },
    });
    new Gauge({
      name: 'quoll_inference_log_bytes',
      help: 'Bytes of inference-log segments kept.',
      registers,
      async collect() {
        this.set(await sources.logBytes());
      },
    });
    new Gauge({
      name: 'quoll_inference_log_writer_up',
      help: '1 while the inference-log writer is open and writing, 0 while it retries or is stopped.',
      registers,
      collect() {
        this.set(sources.logState() === 'open' ? 1 : 0);
      },
    });
    this.taskRuns = new Counter({
      name: 'quoll_task_runs_total',
      help: 'Task runs ended, by status (success, failure, killed, timed_out).',
      labelNames: ['status'],
      registers,
    });
    const running = (): number => this.#running;
    new Gauge({
      name: 'quoll_task_runs_running',
      help: 'Task runs handed to the runner and not yet ended (queued for a slot or executing).',
      registers,
      collect() {
        this.set(running());
      },
    });
    this.schedulerLag = new Histogram({
      name: 'quoll_scheduler_lag_seconds',
      help: 'How late each cron boundary fired after its tick time.',
      buckets: LAG_BUCKETS,
      registers,
    });
  }

  /** Records one answered inference request (`pipeline` = {@link NO_PIPELINE} when none served it). */
  inferenceServed(workspaceId: number, pipeline: string, status: number, seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    const series = this.#seriesOf(workspaceId, pipeline);
    series.byStatus.set(status, (series.byStatus.get(status) ?? 0) + 1);
    series.buckets[bucketOf(LATENCY_BUCKETS, seconds)]! += 1;
    series.seconds += seconds;
    series.count += 1;
  }

  /** Records rows a pipeline inferred. */
  rowsInferred(workspaceId: number, pipeline: string, rows: number): void {
    this.#seriesOf(workspaceId, pipeline).rows += rows;
  }

  /** Records one model run's rows. */
  batch(rows: number): void {
    this.#batchBuckets[bucketOf(BATCH_BUCKETS, rows)]! += 1;
    this.#batchRows += rows;
    this.#batches += 1;
  }

  runStarted(): void {
    this.#running++;
  }

  runFinished(status: string, started: boolean): void {
    if (started) this.#running = Math.max(0, this.#running - 1);
    this.taskRuns.inc({ status });
  }

  tickFired(lateMs: number): void {
    this.schedulerLag.observe(Math.max(0, lateMs) / 1000);
  }

  /**
   * Stops the event-loop lag timer that the first scrape started; no process collector starts
   * after this (a later render still answers, with the lag gauges as they were).
   */
  close(): void {
    this.#processMetrics = true;
    this.#stopLag?.();
    this.#stopLag = null;
  }

  /** Runs currently handed to the runner. */
  get runningRuns(): number {
    return this.#running;
  }

  /** Every pipeline's totals since the start (the console's window differentiates them). */
  pipelineTotals(): PipelineTotals[] {
    const totals: PipelineTotals[] = [];
    for (const [workspaceId, byName] of this.#series) {
      for (const s of byName.values()) {
        let errors = 0;
        for (const [status, n] of s.byStatus) if (status >= 400) errors += n;
        const buckets: number[] = [];
        let cumulative = 0;
        for (const n of s.buckets) buckets.push((cumulative += n));
        totals.push({ workspaceId, pipeline: s.pipeline, count: s.count, rows: s.rows, errors, buckets });
      }
    }
    return totals;
  }

  /**
   * Every metric in the Prometheus text format. The process metrics (prom-client's default
   * collectors: CPU, memory, heap, handles, file descriptors, GC; the event-loop lag of
   * {@link collectEventLoopLag}) start at the
   * first scrape: a server nobody scrapes (or one with `--no-metrics`, which answers no scrape)
   * keeps no event-loop monitor or GC observer running. CPU, memory and the like are read at
   * each scrape anyway; event-loop lag and GC durations count from the first scrape on (the lag
   * sampled every {@link EVENT_LOOP_RESOLUTION_MS} ms).
   */
  async render(): Promise<string> {
    if (!this.#processMetrics) {
      this.#processMetrics = true;
      for (const name of PROCESS_COLLECTORS)
        (requireCjs(`prom-client/lib/metrics/${name}.js`) as DefaultCollector)(this.registry, {});
      this.#stopLag = collectEventLoopLag(this.registry, EVENT_LOOP_RESOLUTION_MS);
    }
    const out: string[] = [];
    const all = [...this.#series.values()].flatMap((m) => [...m.values()]);
    const labels = (s: PipelineSeries): string =>
      `workspace="${s.workspace}",pipeline="${escapeLabel(s.pipeline)}"`;
    header(
      out,
      REQUESTS,
      'counter',
      'Inference requests answered, by workspace id, pipeline name and HTTP status (pipeline "" = no serving pipeline).',
    );
    for (const s of all)
      for (const [status, n] of s.byStatus) out.push(`${REQUESTS}{${labels(s)},status="${status}"} ${n}`);
    header(
      out,
      DURATION,
      'histogram',
      'Inference request latency (received to answered), by workspace id and pipeline name.',
    );
    for (const s of all)
      histogramLines(out, DURATION, LATENCY_BUCKETS, s.buckets, s.seconds, s.count, labels(s));
    header(out, ROWS, 'counter', 'Rows inferred, by workspace id and pipeline name.');
    for (const s of all)
      if (s.rows > 0 || s.count > 0) out.push(`${ROWS}{${labels(s)}} ${formatValue(s.rows)}`);
    header(
      out,
      BATCH,
      'histogram',
      'Rows per model run sent to a worker (requests merged by dynamic batching count together).',
    );
    histogramLines(out, BATCH, BATCH_BUCKETS, this.#batchBuckets, this.#batchRows, this.#batches, '');
    return `${await this.registry.metrics()}\n${out.join('\n')}\n`;
  }

  #seriesOf(workspaceId: number, pipeline: string): PipelineSeries {
    let byName = this.#series.get(workspaceId);
    if (byName === undefined) {
      byName = new Map();
      this.#series.set(workspaceId, byName);
    }
    let series = byName.get(pipeline);
    if (series === undefined) {
      series = {
        workspace: String(workspaceId),
        pipeline,
        byStatus: new Map(),
        buckets: new Float64Array(LATENCY_BUCKETS.length + 1),
        seconds: 0,
        count: 0,
        rows: 0,
      };
      byName.set(pipeline, series);
    }
    return series;
  }
}
