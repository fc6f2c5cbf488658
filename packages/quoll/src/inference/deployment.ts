import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { TensorInfoDto } from '@quoll/client/wire';
import { ApiError, fromErrorOutcome } from '../errors/index.js';
import { BufferLease, callingThreadClock } from '../threads/index.js';
import { collectBuffers, fromTransferredTable } from './decode/transferred-table.js';
import { echoBuffers } from './echo-buffers.js';
import { FeedSlab } from './feed-slab.js';
import { LogValuesPool } from './log-values-pool.js';
import type { EngineInput, InferenceInput, UndecodedRecords } from './inference-input.js';
import type { StepModel } from './step-model.js';
import { bindColumns, buildFeeds, inputColumns, inputRowCount } from './input-binding.js';
import type { ColumnBinding } from './input-binding.js';
import { InferenceResult } from './inference-result.js';
import { logFloat32Flags } from './log-float32-flags.js';
import type { InlineSessions } from './inline-sessions.js';
import type { InlineTurns } from './inline-turns.js';
import {
  INLINE_CONTENDED_HOLD_MS,
  INLINE_MAX_BATCH_ELEMENTS,
  INLINE_MAX_BATCH_ROWS,
  INLINE_MAX_SLOW_RUNS,
  InlineRunner,
} from './inline-runner.js';
import type { InlineProber, InlineProbeTicket, InlineVerdict } from './inline-prober.js';
import { formatLoads, formatUs } from './run-inline-probe.js';
import { concatTensorData, feedLayoutKey, mergeFeeds, rowWidth } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import type { PoolPlan, PooledModel, PoolWorker } from './pool-worker.js';
import type { ModelWorkerPool } from './model-worker-pool.js';
import { DecodeTimeout, WorkerFailure } from './worker-handle.js';
import type { RecordsPart, WorkerStepSpec } from './worker-protocol.js';

/** How a deployment runs its workers (the engine's options, resolved). */
export interface DeploymentOptions {
  /** Workers of the shared pool this deployment runs on (at most the pool's size). */
  workersPerDeployment: number;
  /** Rows from which a request is split across idle workers. */
  splitRows: number;
  /** Most rows one merged run of queued requests may hold (dynamic batching). */
  maxBatchRows: number;
  /** Requests with more rows than this are never merged with others. */
  maxMergeRows: number;
  /** Told the rows of every run sent to a worker (merged requests count once, together). */
  onBatch?: ((rows: number) => void) | undefined;
  /** Sessions on the calling thread for small runs of small, bounded models ({@link InlineRunner}); null: none. */
  inlineSessions: InlineSessions | null;
  /** Runs the admission probe of a pipeline before it runs inline (with `inlineSessions`). */
  inlineProber: InlineProber | null;
  /** The calling thread's time for inline runs per turn of its event loop, shared by every deployment (with `inlineSessions`). */
  inlineTurns: InlineTurns | null;
  /** The trip wire's cut-off: an inline run longer than this (µs) counts as slow. */
  inlineSlowRunUs: number;
  /**
   * Told once per deployment whether its pipeline runs inline, and why, and once more if its trip
   * wire fires later (`tripped`); not called when inline runs are off.
   */
  onInlineDecided?: ((deployment: string, admission: InlineAdmission) => void) | undefined;
  /**
   * Whether small runs that qualify run inline while requests overlap too (merged per turn of
   * the event loop), instead of going to the workers for dynamic batching: see
   * `InferenceEngineOptions.inlineWhenContended`.
   */
  inlineWhenContended: boolean;
}

/**
 * Whether a deployment runs small runs on the calling thread (`Deployment.inline`):
 * - `off`: the engine has inline runs off;
 * - `probing`: its admission probe has not answered yet (runs go to the workers meanwhile);
 * - `on`: admitted: the work bound and the probe passed;
 * - `refused`: not admitted (the bound, the probe, the memory budget, or closed meanwhile);
 * - `tripped`: admitted, then sent to the workers for good by the slow-run trip wire.
 * `reason` says why, in words (for logs and status).
 */
export interface InlineAdmission {
  readonly state: 'off' | 'probing' | 'on' | 'refused' | 'tripped';
  readonly reason: string;
}

/** Plans made so far (part of each plan's key). */
let planCount = 0;

/** Column bindings kept per distinct request schema; more than this many schemas is unusual. */
const MAX_CACHED_SCHEMAS = 64;

/**
 * Runs sent to one worker at once: one running and one waiting in the worker's own queue, so
 * the worker starts the next run without waiting for the parent. Everything else waits in the
 * deployment's queue, where it can be merged.
 */
const MAX_IN_FLIGHT_PER_WORKER = 2;

/** One request waiting for (or running in) a worker: its feeds and whom to answer. */
interface FeedsJob {
  feeds: WireTensor[];
  rows: number;
  /** Requests with equal keys have the same feeds apart from the row count, so they can be concatenated. */
  key: string;
  resolve: (outputs: WireTensor[]) => void;
  reject: (error: unknown) => void;
}

/** JSON records the worker decodes; their rows are known only there, so it merges them itself. */
interface RecordsJob {
  records: UndecodedRecords;
  key: typeof RECORDS_KEY;
  resolve: (part: AnsweredPart) => void;
  reject: (error: unknown) => void;
}

type Job = FeedsJob | RecordsJob;

/** A records body the worker ran or refused (a runtime failure rejects its job instead). */
type AnsweredPart = Exclude<RecordsPart, { status: 'failed' }>;

/** The merge key of every {@link RecordsJob} (no feeds key starts with this character). */
const RECORDS_KEY = '\u0002records';

/**
 * A loaded pipeline: runs on some workers of the server's shared pool, each holding every
 * step's session (shared with other pipelines of the same model). Requests go to the least
 * busy of its workers; large batches are split across idle ones.
 *
 * Dynamic batching (as in Triton's dynamic batcher): when every worker already has work, a
 * request waits in the deployment's queue; when a worker frees, all queued requests that share
 * the same input binding (same feeds, element types and per-row shapes) go to it as ONE run
 * with their rows concatenated (up to `maxBatchRows` rows, each request at most
 * `maxMergeRows`), and the outputs are split back per request by row range. A request never
 * waits for a timer: batches form only from requests that are already queued. Each request
 * keeps its own `time`; tree ensembles and other row-independent models give every request the
 * same values as a run of its own. A failed merged run fails every request in it.
 */
export class Deployment {
  /** The id the deployment was created with. */
  readonly id: string;
  readonly #steps: readonly StepModel[];
  readonly #options: DeploymentOptions;
  readonly #onClosed: () => void;
  readonly #pool: ModelWorkerPool;
  readonly #specs: WorkerStepSpec[];
  #plan: PoolPlan | null = null;
  /** The pipeline's sessions on the calling thread, once its models qualified and its probe admitted it. */
  #inline: InlineRunner | null = null;
  /** Whether it runs inline (or will not, or is being probed), and why. */
  #admission: InlineAdmission = { state: 'off', reason: 'inline runs are off' };
  /** Settles with {@link #admission} once it is decided. */
  #decided: Promise<InlineAdmission> = Promise.resolve(this.#admission);
  /** The admission probe while it runs. */
  #probe: InlineProbeTicket | null = null;
  /** Small runs waiting for the end of this turn of the event loop, to run inline together. */
  #inlineQueue: FeedsJob[] = [];
  #inlineScheduled = false;
  /** When requests were last seen overlapping (`performance.now()`): see {@link INLINE_CONTENDED_HOLD_MS}. */
  #contendedAt = Number.NEGATIVE_INFINITY;
  readonly #bindings = new Map<string, ColumnBinding[]>();
  /** {@link #logFloat32For}'s answer per bindings array. */
  readonly #logFloat32 = new WeakMap<ColumnBinding[], readonly boolean[] | null>();
  /**
   * Where the small feeds of JSON records are carved (one ArrayBuffer per ~100 batch-1 requests
   * instead of one each, which the HTTP thread's scavenges sweep and the V8 platform threads free).
   */
  readonly #feedSlab = new FeedSlab();
  /**
   * Where the log's copies of JSON records columns come from (`RecordValues`: Float64 written in
   * the feeds' walk, or a Float32 copy of a float32 feed of a buffer of its own): small
   * ones carved from a slab sized like the feeds' (a logged result pins at most one 8 KiB
   * slab), larger ones (batch 100 × 18) arrays that results give back once the log copied
   * them, for the next request to write into (see {@link LogValuesPool}).
   */
  readonly #logValues = new LogValuesPool();
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Merge keys of requests whose outputs turned out not to be split by row; they run alone. */
  readonly #unmergeable = new Set<string>();
  /** Requests waiting for a worker, oldest first. */
  #queue: Job[] = [];
  #workers: PoolWorker[] = [];
  /** Whether this deployment waits for a place on its workers (registered with each). */
  #waiting = false;
  #runs = 0;
  #closing: Promise<void> | null = null;

  /** Use {@link InferenceEngine.deploy}; this constructor does not start workers. */
  constructor(
    id: string,
    steps: readonly StepModel[],
    options: DeploymentOptions,
    pool: ModelWorkerPool,
    onClosed: () => void,
  ) {
    if (steps.length === 0)
      throw new ApiError('invalid_step', `Deployment ${id} has no steps; add a model step before deploying.`);
    this.id = id;
    this.#steps = steps;
    this.#options = options;
    this.#pool = pool;
    this.#onClosed = onClosed;
    this.#specs = planSteps(steps);
  }

  /** The pipeline's steps, in order (the first takes the request, the last gives the answer). */
  get steps(): readonly StepModel[] {
    return this.#steps;
  }

  /** Workers of the pool this deployment runs on. */
  get workerCount(): number {
    return this.#workers.length;
  }

  /** Requests waiting for a worker (not yet sent to one). */
  get queueDepth(): number {
    return this.#queue.length;
  }

  /** Indexes of this deployment's workers that hold a model (by SHA) now. */
  loadedOn(sha: string): number[] {
    return this.#workers.filter((worker) => worker.holds(sha)).map((worker) => worker.index);
  }

  /** Model runs sent to workers so far; requests merged by dynamic batching count once together. */
  get runCount(): number {
    return this.#runs;
  }

  /** Takes workers of the pool and loads every step in each; on any failure leaves them and rejects. */
  async start(): Promise<void> {
    const models = new Map<string, PooledModel>();
    for (const step of this.#steps) {
      if (models.has(step.sha)) continue;
      const bytes = await stat(step.path).then(
        (info) => info.size,
        () => 0,
      );
      models.set(step.sha, {
        sha: step.sha,
        path: step.path,
        label: `model "${step.name}" version ${step.version}`,
        bytes,
      });
    }
    // Unique even when the same pipeline version is deployed again beside the old deployment.
    const plan: PoolPlan = {
      key: `${this.id}#${++planCount}`,
      steps: this.#specs,
      models: [...models.values()],
    };
    this.#plan = plan;
    const workers = this.#pool.assign(this.#options.workersPerDeployment);
    this.#workers = workers;
    const loads = await Promise.allSettled(workers.map((worker) => worker.prepare(plan)));
    const failed = loads.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed) {
      this.#workers = [];
      await Promise.all(workers.map((worker) => worker.unassign(plan.key)));
      throw loadError(failed.reason, this.#steps);
    }
    // Loaded by a worker first: a model that fails to load fails there, with its reason.
    this.#startInline();
  }

  /**
   * Inline runs: the models' files are read here (at most `INLINE_MAX_MODEL_BYTES`); the work
   * bound, the sessions' load time and the timed runs are the admission probe's, in the
   * prober's thread, and nothing waits for it: runs go to the workers until it answers; a
   * pipeline it admits gets its sessions on this thread then (`InlineRunner.create`). A probe
   * that refuses, fails or overruns leaves the pipeline to the workers.
   */
  #startInline(): void {
    const sessions = this.#options.inlineSessions;
    const prober = this.#options.inlineProber;
    if (sessions === null || prober === null || this.#options.inlineTurns === null) return;
    const models = InlineRunner.readModels(this.#specs);
    if ('reason' in models) {
      this.#decide({ state: 'refused', reason: models.reason });
      return;
    }
    this.#admission = {
      state: 'probing',
      reason: 'its admission probe has not answered yet; its runs go to the workers meanwhile',
    };
    const probe = prober.probe(this.#specs, models.files);
    this.#probe = probe;
    this.#decided = probe.verdict.then((verdict) => {
      this.#probe = null;
      return this.#admit(models, verdict, sessions, prober.limitUs);
    });
  }

  /** What the probe's verdict makes of the pipeline: its sessions on this thread, or why not. */
  #admit(
    models: { readonly files: ReadonlyMap<string, Uint8Array>; readonly bytes: number },
    verdict: InlineVerdict,
    sessions: InlineSessions,
    limitUs: number,
  ): InlineAdmission {
    if (this.#closing !== null)
      return this.#decide({ state: 'refused', reason: 'the deployment closed before its probe answered' });
    if (!verdict.admitted) return this.#decide({ state: 'refused', reason: verdict.reason });
    const { report } = verdict;
    // What creating the sessions held this thread (the HTTP thread) for: in wall time,
    // preemptions included, and in its own time (as the probe times its loads); the probe's
    // limit stands for it, so the verdict shows them.
    const clock = callingThreadClock();
    const started = performance.now();
    const ownStarted = clock.now();
    const runner = InlineRunner.create(
      { specs: this.#specs, ...models, work: report.work, inputs: report.inputs },
      sessions,
      {
        slowRunUs: this.#options.inlineSlowRunUs,
        // Told once, as the wire fires: the runs that stalled the thread are the operator's to see.
        onTripped: () => this.#options.onInlineDecided?.(this.id, this.inline),
      },
    );
    if (runner === null)
      return this.#decide({
        state: 'refused',
        reason: "its models do not fit the calling thread's memory budget, or cannot be loaded there",
      });
    const heldUs = (performance.now() - started) * 1000;
    const ownUs = clock.now() - ownStarted;
    this.#inline = runner;
    return this.#decide({
      state: 'on',
      reason: `its work bound is ${report.work} element operations; its sessions loaded in ${formatUs(report.loadUs)} in the probe (its loads: ${formatLoads(report.loadsUs)}), in ${formatUs(ownUs)} of this thread's own time (${formatUs(heldUs)} of wall time) on this thread; its slowest probed run (${report.slowest}) took ${formatUs(report.slowestUs)} at best, within ${formatUs(limitUs)} (${report.runs} runs)`,
    });
  }

  #decide(admission: InlineAdmission): InlineAdmission {
    this.#admission = admission;
    this.#decided = Promise.resolve(admission);
    this.#options.onInlineDecided?.(this.id, admission);
    return admission;
  }

  /** Whether the pipeline runs small runs on the calling thread now, and why (see {@link InlineAdmission}). */
  get inline(): InlineAdmission {
    if (this.#admission.state === 'on' && this.#inline?.tripped === true)
      return {
        state: 'tripped',
        reason: `${INLINE_MAX_SLOW_RUNS} of its inline runs took over ${formatUs(this.#options.inlineSlowRunUs)}; its runs go to the workers for good`,
      };
    return this.#admission;
  }

  /** Settles with {@link inline} once the admission is decided (at once when there is nothing to probe). */
  get inlineDecided(): Promise<InlineAdmission> {
    return this.#decided.then(() => this.inline);
  }

  /** Bytes of the model files this deployment holds on the calling thread (0 when none). */
  get inlineBytes(): number {
    return this.#inline?.bytes ?? 0;
  }

  /** Runs made on the calling thread so far (see {@link InlineRunner}). */
  get inlineRunCount(): number {
    return this.#inline?.runs ?? 0;
  }

  /**
   * Runs one request through every step. `now` (epoch ms) is stamped on every result row.
   * Rejects with a catalogue `ApiError` for bad input (see `bindColumns`/`buildFeeds`) and
   * `inference_failed` when the runtime fails. `logged`: the result's rows go to the inference
   * log (a JSON records input then has its log values written in the same walk as its feeds).
   * `answerTable`: the answer is the result's Arrow table (`DecodedInference.answerTable`): every
   * column's log values are then the Float64 the table views, none taken from a float32 feed.
   */
  async infer(
    input: EngineInput,
    now: number,
    logged = false,
    answerTable = false,
  ): Promise<InferenceResult> {
    if (this.#closing)
      throw new ApiError(
        'pipeline_not_deployed',
        `Deployment ${this.id} is closed; deploy the pipeline again.`,
      );
    if (input.kind === 'undecoded-records') return this.#inferRecords(input, now);
    const columns = inputColumns(input);
    const bindings = this.#bindingsFor(columns);
    const rows = inputRowCount(input);
    // JSON records: the log's `in.*` values from the same walk as the feeds — Float64 written
    // beside them, or the float32 feed's own values for a column logged as Float32.
    const logFloat32 = this.#logFloat32For(columns, bindings);
    const recordValues =
      logged && input.kind === 'records'
        ? {
            columns,
            values: [] as (Float64Array | Float32Array | null)[],
            storage: this.#logValues,
            float32: answerTable ? null : logFloat32,
          }
        : undefined;
    const feeds = buildFeeds(input, bindings, this.#feedSlab, recordValues);
    const run = this.#run(feeds, rows);
    this.#inFlight.add(run);
    let outputs: WireTensor[];
    try {
      outputs = await run;
    } catch (error) {
      // No result reads them: the next request may write into them.
      if (recordValues !== undefined)
        for (const values of recordValues.values) if (values) this.#logValues.give(values);
      throw error;
    } finally {
      this.#inFlight.delete(run);
    }
    return new InferenceResult(
      input,
      columns,
      outputs,
      rows,
      now,
      null,
      recordValues?.values ?? null,
      recordValues === undefined ? null : this.#logValues,
      logFloat32,
    );
  }

  /** JSON records decoded, checked and run by the worker; the answer gets their decoded columns. */
  async #inferRecords(records: UndecodedRecords, now: number): Promise<InferenceResult> {
    const run = this.#runRecords(records);
    this.#inFlight.add(run);
    let part: AnsweredPart;
    try {
      part = await run;
    } finally {
      this.#inFlight.delete(run);
    }
    if (part.status === 'refused') throw fromErrorOutcome(part.error);
    // The worker's columns are lent: they go back to a worker once the result is released and
    // no reader (the inference log) holds them any more.
    const buffers: ArrayBuffer[] = [];
    collectBuffers(part.table.batches.flat(), buffers);
    const lease = new BufferLease(buffers, giveBack);
    const input: InferenceInput = { kind: 'arrow', table: fromTransferredTable(part.table) };
    const columns = inputColumns(input);
    return new InferenceResult(
      input,
      columns,
      part.outputs,
      input.table.numRows,
      now,
      lease,
      null,
      null,
      this.#logFloat32For(columns, this.#bindingsFor(columns)),
    );
  }

  async #runRecords(records: UndecodedRecords): Promise<AnsweredPart> {
    if (this.#workers.length === 0)
      throw new ApiError(
        'pipeline_not_ready',
        `Deployment ${this.id} has no running worker; check the pipeline status.`,
      );
    try {
      return await new Promise<AnsweredPart>((resolve, reject) => {
        this.#queue.push({ records, key: RECORDS_KEY, resolve, reject });
        this.#dispatch();
      });
    } catch (error) {
      throw inferError(error, this.#steps);
    }
  }

  /** Lets in-flight and queued requests finish, then leaves its workers. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // A probe still running is withdrawn (its thread stopped): nothing of it outlives the deployment.
      await this.#probe?.cancel();
      await this.#decided;
      await Promise.allSettled([...this.#inFlight]);
      const workers = this.#workers;
      this.#workers = [];
      await Promise.all(workers.map((worker) => worker.unassign(this.#plan?.key ?? null)));
      this.#inline?.release();
      this.#inline = null;
      this.#onClosed();
    })();
    return this.#closing;
  }

  /**
   * {@link logFloat32Flags} of `columns`, one array per bindings (so the result's log layout is
   * found by identity).
   */
  #logFloat32For(columns: readonly string[], bindings: ColumnBinding[]): readonly boolean[] | null {
    let flags = this.#logFloat32.get(bindings);
    if (flags === undefined) {
      flags = logFloat32Flags(columns, bindings);
      this.#logFloat32.set(bindings, flags);
    }
    return flags;
  }

  #bindingsFor(columns: string[]): ColumnBinding[] {
    const key = columns.join('\u0000');
    let bindings = this.#bindings.get(key);
    if (!bindings) {
      const first = this.#steps[0]!;
      bindings = bindColumns(columns, first.inputs, first.config.tensorFields);
      if (this.#bindings.size >= MAX_CACHED_SCHEMAS) this.#bindings.clear();
      this.#bindings.set(key, bindings);
    }
    return bindings;
  }

  #run(feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    if (this.#workers.length === 0)
      return Promise.reject(
        new ApiError(
          'pipeline_not_ready',
          `Deployment ${this.id} has no running worker; check the pipeline status.`,
        ),
      );
    try {
      // A small run of a small bounded model while requests do not overlap: run it on this
      // thread, no hand-off, once this turn of the event loop has read every request it can.
      // Its promise is returned as it is, its errors worded where it rejects (an async layer
      // here was one more promise and microtask per JSON batch-1 request).
      const inline = this.#inline;
      if (inline !== null && this.#inlineOpen() && inline.accepts(feeds, rows)) {
        return new Promise<WireTensor[]>((resolve, reject) => {
          const fail = (error: unknown): void => reject(inferError(error, this.#steps));
          this.#inlineQueue.push({ feeds, rows, key: feedLayoutKey(feeds), resolve, reject: fail });
          if (this.#inlineScheduled) return;
          this.#inlineScheduled = true;
          this.#options.inlineTurns!.schedule(() => this.#runInline());
        });
      }
    } catch (error) {
      return Promise.reject(inferError(error, this.#steps));
    }
    return this.#runOnWorkers(feeds, rows);
  }

  /** {@link #run} of a run the workers make (not inline). */
  async #runOnWorkers(feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    try {
      // A big batch with several idle workers: split it so every core works on this request.
      if (rows >= this.#options.splitRows && this.#queue.length === 0) {
        const idle = this.#workers.filter((worker) => worker.inFlight === 0);
        if (idle.length > 1) {
          this.#runs += Math.min(idle.length, rows);
          return await splitAcross(idle, this.#plan!, feeds, rows);
        }
      }
      return await new Promise<WireTensor[]>((resolve, reject) => {
        let key = rows > this.#options.maxMergeRows ? '' : feedLayoutKey(feeds);
        if (this.#unmergeable.has(key)) key = '';
        this.#queue.push({ feeds, rows, key, resolve, reject });
        this.#dispatch();
      });
    } catch (error) {
      throw inferError(error, this.#steps);
    }
  }

  /**
   * Whether a small run may go inline now: not while requests overlap (one queued or running in
   * a worker, or another inline one in this turn), nor for {@link INLINE_CONTENDED_HOLD_MS}
   * after, as then dynamic batching shares one run between many requests in the worker, which
   * on one core measured cheaper than a run per request here. With `inlineWhenContended` (a
   * process on one core), always: the requests of one turn are merged into one run here, which
   * saves the worker's wake-up and message round trip that a worker's merged run costs.
   */
  #inlineOpen(): boolean {
    if (this.#options.inlineWhenContended) return true;
    const now = performance.now();
    if (this.#queue.length > 0 || this.#inlineQueue.length > 0 || this.#workers.some((w) => w.inFlight > 0))
      this.#contendedAt = now;
    return now - this.#contendedAt >= INLINE_CONTENDED_HOLD_MS;
  }

  /**
   * Runs the small runs of the last turn inline: neighbours with the same feed layout merged
   * (at most {@link INLINE_MAX_BATCH_ROWS} rows and {@link INLINE_MAX_BATCH_ELEMENTS} values a
   * run); a merged run that fails, or whose outputs are not one row per input row, runs each
   * request alone, so no request's answer depends on its neighbours. Each run first claims
   * time of the turn's budget, shared by every deployment (`InlineTurns`); once it is spent the
   * turn's other runs go to the workers.
   */
  #runInline(): void {
    this.#inlineScheduled = false;
    const jobs = this.#inlineQueue;
    this.#inlineQueue = [];
    const inline = this.#inline;
    let at = 0;
    while (at < jobs.length) {
      const group = [jobs[at]!];
      let rows = group[0]!.rows;
      let elements = feedElements(group[0]!.feeds);
      for (at++; at < jobs.length; at++) {
        const next = jobs[at]!;
        const more = feedElements(next.feeds);
        if (next.key !== group[0]!.key || this.#unmergeable.has(next.key)) break;
        if (rows + next.rows > INLINE_MAX_BATCH_ROWS || elements + more > INLINE_MAX_BATCH_ELEMENTS) break;
        group.push(next);
        rows += next.rows;
        elements += more;
      }
      // Closed meanwhile (close() waits for these, so this does not happen), tripped by a slow
      // run of this turn (review F8), or the turn's time for inline runs is spent: the workers run them.
      if (inline === null || inline.tripped || !this.#options.inlineTurns!.claim()) {
        this.#toWorkers(group);
        continue;
      }
      this.#runInlineGroup(inline, group, rows);
    }
  }

  /** Small runs that were to run inline, sent to the workers instead (where they may merge). */
  #toWorkers(jobs: FeedsJob[]): void {
    for (const job of jobs) {
      if (this.#unmergeable.has(job.key)) job.key = '';
      this.#queue.push(job);
    }
    this.#dispatch();
  }

  #runInlineGroup(inline: InlineRunner, group: FeedsJob[], rows: number): void {
    if (group.length > 1) {
      let outputs: WireTensor[] | null = null;
      this.#runs++;
      this.#options.onBatch?.(rows);
      try {
        // The merged feed lives only for this synchronous run (onnxruntime reads it in place and
        // copies its outputs out): carved out of the slab like the requests' own.
        outputs = inline.run(
          mergeFeeds(
            group.map((job) => job.feeds),
            rows,
            this.#feedSlab,
          ),
          rows,
        );
      } catch {
        // One of them (at least) fails: find which by running each alone, below.
      }
      if (outputs && outputs.every((output) => output.dims[0] === rows)) {
        let start = 0;
        for (const job of group) {
          job.resolve(sliceRows(outputs, start, job.rows));
          start += job.rows;
        }
        return;
      }
      if (outputs) this.#unmergeable.add(group[0]!.key);
    }
    for (const [i, job] of group.entries()) {
      // The group claimed one run; each run alone after its merged one claims its own, and once
      // the turn's time is spent the rest go to the workers, alone (as here, so that no request's
      // answer depends on its neighbours).
      if (group.length > 1 && (inline.tripped || !this.#options.inlineTurns!.claim())) {
        const rest = group.slice(i);
        for (const left of rest) left.key = '';
        this.#toWorkers(rest);
        return;
      }
      this.#runs++;
      this.#options.onBatch?.(job.rows);
      try {
        job.resolve(inline.run(job.feeds, job.rows));
      } catch (error) {
        job.reject(error);
      }
    }
  }

  /** Sends queued requests to workers with room, merging those that can share a run. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      let worker: PoolWorker | undefined;
      for (const candidate of this.#workers)
        if (
          candidate.inFlight < MAX_IN_FLIGHT_PER_WORKER &&
          (!worker || candidate.inFlight < worker.inFlight)
        )
          worker = candidate;
      if (!worker) {
        // Every worker is busy (with this or other pipelines): go on when one of them frees.
        if (!this.#waiting) {
          this.#waiting = true;
          const wake = (): void => {
            if (!this.#waiting) return;
            this.#waiting = false;
            this.#dispatch();
          };
          for (const candidate of this.#workers) candidate.whenFree(wake);
        }
        return;
      }
      this.#send(worker, this.#takeGroup());
    }
  }

  /** The oldest queued request plus every later one it can be merged with, within the row caps. */
  #takeGroup(): Job[] {
    const queue = this.#queue;
    const head = queue[0]!;
    if (head.key === '' || queue.length === 1) {
      queue.shift();
      return [head];
    }
    const group: Job[] = [head];
    const rest: Job[] = [];
    // Records bodies: their rows are known only once decoded, so a group holds as many bodies
    // as full-size merged requests would fit in a run; the worker applies the row caps.
    const records = head.key === RECORDS_KEY;
    const maxBodies = Math.max(1, Math.floor(this.#options.maxBatchRows / this.#options.maxMergeRows));
    let total = 'rows' in head ? head.rows : 1;
    for (let i = 1; i < queue.length; i++) {
      const job = queue[i]!;
      const rows = 'rows' in job ? job.rows : 1;
      if (job.key === head.key && total + rows <= (records ? maxBodies : this.#options.maxBatchRows)) {
        group.push(job);
        total += rows;
      } else {
        rest.push(job);
      }
    }
    this.#queue = rest;
    return group;
  }

  #send(worker: PoolWorker, jobs: Job[]): void {
    const plan = this.#plan!;
    if (jobs[0]!.key === RECORDS_KEY) {
      this.#sendRecords(worker, jobs as RecordsJob[]);
      return;
    }
    this.#runs++;
    const group = jobs as FeedsJob[];
    if (group.length === 1) {
      const job = group[0]!;
      this.#options.onBatch?.(job.rows);
      worker
        .run(plan, job.feeds, job.rows)
        .then(job.resolve, job.reject)
        .finally(() => this.#dispatch());
      return;
    }
    let total = 0;
    for (const job of group) total += job.rows;
    this.#options.onBatch?.(total);
    const feeds = mergeFeeds(
      group.map((job) => job.feeds),
      total,
    );
    worker
      .run(plan, feeds, total)
      .then(
        (outputs) => {
          // An output without a row per input row (a model that aggregates over the batch) cannot be
          // split back: run those requests one by one instead, and never merge their kind again.
          if (outputs.some((output) => output.dims[0] !== total)) {
            this.#unmergeable.add(group[0]!.key);
            for (const job of group) job.key = '';
            this.#queue.unshift(...group);
            return;
          }
          let start = 0;
          for (const job of group) {
            job.resolve(sliceRows(outputs, start, job.rows));
            start += job.rows;
          }
        },
        (error: unknown) => {
          for (const job of group) job.reject(error);
        },
      )
      .finally(() => this.#dispatch());
  }

  /** Records bodies to one worker in one message: it decodes them, merges what it can, runs. */
  #sendRecords(worker: PoolWorker, group: RecordsJob[]): void {
    worker
      .runRecords(
        this.#plan!,
        group.map((job) => job.records.body),
        group.map((job) => job.records.deadlineMs),
        { maxMergeRows: this.#options.maxMergeRows, maxBatchRows: this.#options.maxBatchRows },
      )
      .then(
        ({ parts, runs }) => {
          this.#runs += runs.length;
          for (const rows of runs) this.#options.onBatch?.(rows);
          for (const [i, job] of group.entries()) {
            const part = parts[i];
            if (!part)
              job.reject(new WorkerFailure('protocol', 'The worker answered fewer bodies than it was sent.'));
            else if (part.status === 'failed')
              job.reject(new WorkerFailure('infer', part.message, part.step));
            else job.resolve(part);
          }
        },
        (error: unknown) => {
          if (error instanceof DecodeTimeout) {
            // Only the body that overran is answered so; the others go again, to a fresh worker.
            group[error.body]?.reject(error.error);
            this.#queue.unshift(...group.filter((_, i) => i !== error.body));
            return;
          }
          for (const job of group) job.reject(error);
        },
      )
      .finally(() => this.#dispatch());
  }
}

/** Values in a run's feeds, all feeds together. */
function feedElements(feeds: readonly WireTensor[]): number {
  let elements = 0;
  for (const feed of feeds) elements += feed.data.length;
  return elements;
}

/** Worker step specs, with which output of step i-1 feeds each input of step i. */
function planSteps(steps: readonly StepModel[]): WorkerStepSpec[] {
  return steps.map((step, index) => {
    const label = `model "${step.name}" version ${step.version}`;
    const base = {
      label,
      sha: step.sha,
      path: step.path,
      inputs: step.inputs,
      single: step.config.batchConfig === 'single',
      tensorFields: step.config.tensorFields ?? null,
    };
    if (index === 0) return { ...base, feedsFrom: null };
    const previous = steps[index - 1]!;
    const fields = step.config.tensorFields ?? [];
    const feedsFrom = step.inputs.map((input: TensorInfoDto, i: number) => {
      const wanted = fields[i] ?? input.name;
      if (previous.outputs.some((output) => output.name === wanted)) return wanted;
      if (step.inputs.length === 1 && previous.outputs.length === 1) return previous.outputs[0]!.name;
      throw new ApiError(
        'invalid_step',
        `Step ${index + 1} (${label}) input "${input.name}" has no matching output in step ${index} (outputs ${previous.outputs.map((output) => `"${output.name}"`).join(', ')}). Rename the model's input or configure tensorFields.`,
        { step: index, input: input.name },
      );
    });
    return { ...base, feedsFrom };
  });
}

/** Rows [start, start+rows) of every output, as views of the merged run's buffers (no copy). */
function sliceRows(outputs: readonly WireTensor[], start: number, rows: number): WireTensor[] {
  return outputs.map((output) => {
    const width = rowWidth(output.dims);
    const from = start * width;
    const to = from + rows * width;
    return {
      ...output,
      dims: [rows, ...output.dims.slice(1)],
      data: Array.isArray(output.data) ? output.data.slice(from, to) : output.data.subarray(from, to),
    };
  });
}

async function splitAcross(
  workers: PoolWorker[],
  plan: PoolPlan,
  feeds: WireTensor[],
  rows: number,
): Promise<WireTensor[]> {
  const parts = Math.min(workers.length, rows);
  const size = Math.ceil(rows / parts);
  const chunks: Promise<WireTensor[]>[] = [];
  for (let part = 0; part < parts; part++) {
    const start = part * size;
    const end = Math.min(rows, start + size);
    if (start >= end) break;
    const chunkFeeds = feeds.map((feed) => {
      const width = rowWidth(feed.dims);
      // slice() copies into a buffer of its own, which is what transferring needs.
      return {
        ...feed,
        dims: [end - start, ...feed.dims.slice(1)],
        data: feed.data.slice(start * width, end * width),
      };
    });
    chunks.push(workers[part]!.run(plan, chunkFeeds, end - start));
  }
  const results = await Promise.all(chunks);
  const first = results[0]!;
  return first.map((output, o) => ({
    ...output,
    dims: [rows, ...output.dims.slice(1)],
    data: concatTensorData(results.map((result) => result[o]!.data)),
  }));
}

function loadError(reason: unknown, steps: readonly StepModel[]): ApiError {
  if (reason instanceof ApiError) return reason;
  const step = reason instanceof WorkerFailure && reason.step !== undefined ? steps[reason.step] : undefined;
  const message = reason instanceof Error ? reason.message : String(reason);
  return new ApiError(
    'invalid_model',
    `The pipeline could not be loaded: ${message}`,
    step ? { model: step.name, version: step.version } : undefined,
  );
}

function inferError(error: unknown, steps: readonly StepModel[]): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const step = error instanceof WorkerFailure && error.step !== undefined ? steps[error.step] : undefined;
  return new ApiError(
    'inference_failed',
    `Inference failed: ${message}`,
    step ? { model: step.name, version: step.version } : undefined,
  );
}

/** Buffers of a released result, for the next `infer-records` message to take back to a worker. */
function giveBack(buffers: readonly ArrayBuffer[]): void {
  for (const buffer of buffers) echoBuffers.give(buffer);
}
