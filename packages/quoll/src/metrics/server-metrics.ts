import type { TaskObserver } from '../scheduler/index.js';
import { ProcessMetrics } from './process-metrics.js';
import { StatusCounts } from './status-counts.js';
import {
  PROMETHEUS_CONTENT_TYPE,
  bucketOf,
  bucketPrefixes,
  escapeLabel,
  formatValue,
  header,
  histogramText,
} from './prometheus-text.js';

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
  /** Batches the inference-log writer set aside (rows dropped) since the server started; none when absent. */
  logQuarantinedBatches?(): number;
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
  pipeline: string;
  /** `workspace="…",pipeline="…"`, escaped (built once). */
  labels: string;
  /** Requests answered, by HTTP status: see {@link StatusCounts}. */
  byStatus: StatusCounts;
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

const REQUESTS = 'quoll_inference_requests_total';
const DURATION = 'quoll_inference_request_duration_seconds';
const ROWS = 'quoll_inference_rows_total';
const BATCH = 'quoll_inference_batch_rows';
const QUEUE_DEPTH = 'quoll_inference_queue_depth';
const LOG_QUEUE_ROWS = 'quoll_inference_log_queue_rows';
const LOG_BYTES = 'quoll_inference_log_bytes';
const LOG_WRITER_UP = 'quoll_inference_log_writer_up';
const LOG_QUARANTINED = 'quoll_inference_log_quarantined_batches_total';
const TASK_RUNS = 'quoll_task_runs_total';
const TASK_RUNS_RUNNING = 'quoll_task_runs_running';
const SCHEDULER_LAG = 'quoll_scheduler_lag_seconds';

/** Every Quoll family's `# HELP` and `# TYPE` lines, built once. */
const H = {
  queueDepth: header(
    QUEUE_DEPTH,
    'gauge',
    'Inference requests waiting for a worker, by workspace id and pipeline name.',
  ),
  logQueueRows: header(LOG_QUEUE_ROWS, 'gauge', 'Inference-log rows queued for the writer.'),
  logBytes: header(LOG_BYTES, 'gauge', 'Bytes of inference-log segments kept.'),
  logWriterUp: header(
    LOG_WRITER_UP,
    'gauge',
    '1 while the inference-log writer is open and writing, 0 while it retries or is stopped.',
  ),
  logQuarantined: header(
    LOG_QUARANTINED,
    'counter',
    'Inference-log batches the writer set aside because their rows cannot be written (those rows are dropped).',
  ),
  taskRuns: header(TASK_RUNS, 'counter', 'Task runs ended, by status (success, failure, killed, timed_out).'),
  taskRunsRunning: header(
    TASK_RUNS_RUNNING,
    'gauge',
    'Task runs handed to the runner and not yet ended (queued for a slot or executing).',
  ),
  schedulerLag: header(SCHEDULER_LAG, 'histogram', 'How late each cron boundary fired after its tick time.'),
  requests: header(
    REQUESTS,
    'counter',
    'Inference requests answered, by workspace id, pipeline name and HTTP status (pipeline "" = no serving pipeline).',
  ),
  duration: header(
    DURATION,
    'histogram',
    'Inference request latency (received to answered), by workspace id and pipeline name.',
  ),
  rows: header(ROWS, 'counter', 'Rows inferred, by workspace id and pipeline name.'),
  batch: header(
    BATCH,
    'histogram',
    'Rows per model run sent to a worker (requests merged by dynamic batching count together).',
  ),
};
const DURATION_PREFIXES = bucketPrefixes(DURATION, LATENCY_BUCKETS);
const BATCH_PREFIXES = bucketPrefixes(BATCH, BATCH_BUCKETS);
const LAG_PREFIXES = bucketPrefixes(SCHEDULER_LAG, LAG_BUCKETS);

/**
 * The server's Prometheus metrics: inference requests, latency and rows per pipeline, queue
 * depth and batch sizes, the inference-log store, task runs by status, scheduler lateness and
 * the process metrics. Implements {@link TaskObserver}.
 *
 * Everything is kept as plain numbers (no label objects, hashing or allocation per request:
 * prom-client's labelled children cost ~10 µs per request here) and becomes Prometheus text
 * only when scraped, written by this code: the help and type lines are built once, each sample
 * line at each scrape. The process metrics are prom-client's default families, written by
 * {@link ProcessMetrics} (same names, help, types and meaning for a fraction of the cost of a
 * scrape; docs/benchmarks.md, "Metrics on vs off").
 *
 * @example
 * const metrics = new ServerMetrics(sources);
 * metrics.inferenceServed(1, 'houseprice', 200, 0.004);
 * const text = await metrics.render(); // Prometheus text format
 */
export class ServerMetrics implements TaskObserver {
  /** Content type of {@link render}'s text. */
  readonly contentType: string = PROMETHEUS_CONTENT_TYPE;
  /** Upper bounds (seconds) of the latency histogram's buckets. */
  readonly latencyBuckets: readonly number[] = LATENCY_BUCKETS;
  readonly #sources: MetricsSources;
  #running = 0;
  /** By workspace id, then pipeline name: no key string is built per request. */
  readonly #series = new Map<number, Map<string, PipelineSeries>>();
  /**
   * The series last looked up, with its key: a server mostly answers one pipeline after
   * another, and each request records twice (`rowsInferred`, then `inferenceServed`), so most
   * recordings compare a number and a short string instead of two `Map` lookups.
   */
  #lastWorkspaceId = -1;
  #lastPipeline: string | null = null;
  #last: PipelineSeries | null = null;
  readonly #batchBuckets = new Float64Array(BATCH_BUCKETS.length + 1);
  #batchRows = 0;
  #batches = 0;
  /** Task runs ended, by status. */
  readonly #taskRuns = new Map<string, number>();
  /** Scheduler lateness per bucket (not cumulative; `+Inf` last), sum (s) and count. */
  readonly #lagBuckets = new Float64Array(LAG_BUCKETS.length + 1);
  #lagSum = 0;
  #lagCount = 0;
  readonly #process = new ProcessMetrics(EVENT_LOOP_RESOLUTION_MS);

  constructor(sources: MetricsSources) {
    this.#sources = sources;
  }

  /** Records one answered inference request (`pipeline` = {@link NO_PIPELINE} when none served it). */
  inferenceServed(workspaceId: number, pipeline: string, status: number, seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    const series = this.#seriesOf(workspaceId, pipeline);
    series.byStatus.add(status);
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
    this.#taskRuns.set(status, (this.#taskRuns.get(status) ?? 0) + 1);
  }

  tickFired(lateMs: number): void {
    const seconds = Math.max(0, lateMs) / 1000;
    if (!Number.isFinite(seconds)) return;
    this.#lagBuckets[bucketOf(LAG_BUCKETS, seconds)]! += 1;
    this.#lagSum += seconds;
    this.#lagCount += 1;
  }

  /**
   * Stops the event-loop lag timer and the GC observer that the first scrape started; none
   * starts after this (a later render still answers, with the lag and GC figures as they were).
   */
  close(): void {
    this.#process.close();
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
        const errors = s.byStatus.errors();
        const buckets: number[] = [];
        let cumulative = 0;
        for (const n of s.buckets) buckets.push((cumulative += n));
        totals.push({ workspaceId, pipeline: s.pipeline, count: s.count, rows: s.rows, errors, buckets });
      }
    }
    return totals;
  }

  /**
   * Every metric in the Prometheus text format. The event-loop lag timer and the GC observer
   * ({@link ProcessMetrics}) start at the first scrape: a server nobody scrapes (or one with
   * `--no-metrics`, which answers no scrape) keeps neither running. CPU, memory and the like
   * are read at each scrape anyway; event-loop lag and GC durations count from the first
   * scrape on (the lag sampled every {@link EVENT_LOOP_RESOLUTION_MS} ms).
   */
  async render(): Promise<string> {
    this.#process.start();
    const sources = this.#sources;
    // The one asynchronous source first, so that the rest is read in one go after it.
    const logBytes = await sources.logBytes();
    let text = H.queueDepth;
    for (const d of sources.queueDepths())
      text += `${QUEUE_DEPTH}{workspace="${d.workspaceId}",pipeline="${escapeLabel(d.name)}"} ${formatValue(d.queued)}\n`;
    text +=
      `${H.logQueueRows}${LOG_QUEUE_ROWS} ${formatValue(sources.logQueuedRows())}\n` +
      `${H.logBytes}${LOG_BYTES} ${formatValue(logBytes)}\n` +
      `${H.logWriterUp}${LOG_WRITER_UP} ${sources.logState() === 'open' ? 1 : 0}\n` +
      `${H.logQuarantined}${LOG_QUARANTINED} ${formatValue(sources.logQuarantinedBatches?.() ?? 0)}\n` +
      H.taskRuns;
    for (const [status, n] of this.#taskRuns) text += `${TASK_RUNS}{status="${escapeLabel(status)}"} ${n}\n`;
    text +=
      `${H.taskRunsRunning}${TASK_RUNS_RUNNING} ${this.#running}\n` +
      H.schedulerLag +
      histogramText(SCHEDULER_LAG, LAG_PREFIXES, this.#lagBuckets, this.#lagSum, this.#lagCount, '') +
      this.#process.text();

    text += H.requests;
    for (const byName of this.#series.values())
      for (const s of byName.values())
        for (const [status, n] of s.byStatus.entries())
          text += `${REQUESTS}{${s.labels},status="${status}"} ${n}\n`;
    text += H.duration;
    for (const byName of this.#series.values())
      for (const s of byName.values())
        text += histogramText(DURATION, DURATION_PREFIXES, s.buckets, s.seconds, s.count, s.labels);
    text += H.rows;
    for (const byName of this.#series.values())
      for (const s of byName.values())
        if (s.rows > 0 || s.count > 0) text += `${ROWS}{${s.labels}} ${formatValue(s.rows)}\n`;
    return (
      text +
      H.batch +
      histogramText(BATCH, BATCH_PREFIXES, this.#batchBuckets, this.#batchRows, this.#batches, '')
    );
  }

  #seriesOf(workspaceId: number, pipeline: string): PipelineSeries {
    if (this.#last !== null && workspaceId === this.#lastWorkspaceId && pipeline === this.#lastPipeline)
      return this.#last;
    const series = this.#lookUp(workspaceId, pipeline);
    this.#lastWorkspaceId = workspaceId;
    this.#lastPipeline = pipeline;
    this.#last = series;
    return series;
  }

  #lookUp(workspaceId: number, pipeline: string): PipelineSeries {
    let byName = this.#series.get(workspaceId);
    if (byName === undefined) {
      byName = new Map();
      this.#series.set(workspaceId, byName);
    }
    let series = byName.get(pipeline);
    if (series === undefined) {
      series = {
        pipeline,
        labels: `workspace="${workspaceId}",pipeline="${escapeLabel(pipeline)}"`,
        byStatus: new StatusCounts(),
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
