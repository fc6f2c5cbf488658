import { ApiError } from '../errors/index.js';
import { Deployment } from './deployment.js';
import type { DeploymentOptions, InlineAdmission } from './deployment.js';
import { InlineProber } from './inline-prober.js';
import type { InlineProbeOptions } from './inline-prober.js';
import { INLINE_SLOW_RUN_US } from './inline-runner.js';
import { InlineSessions } from './inline-sessions.js';
import { InlineTurns } from './inline-turns.js';
import type { StepModel } from './step-model.js';
import { ModelWorkerPool } from './model-worker-pool.js';
import { WorkerFailure, WorkerHandle } from './worker-handle.js';

/** Options of {@link InferenceEngine}. */
export interface InferenceEngineOptions {
  /** Workers of the pool each deployment runs on unless it asks otherwise. @default 2 */
  workersPerDeployment?: number;
  /** Worker threads in the server's shared pool. @default `workersPerDeployment` */
  poolWorkers?: number;
  /**
   * Model bytes (ONNX file sizes) the pool's workers may hold together; over it, each worker
   * unloads its least recently used models, which load again on their next request.
   * @default 4 GiB
   */
  modelMemoryBytes?: number;
  /** onnxruntime intra-op threads per session; one per worker keeps the cores from being oversubscribed. @default 1 */
  threadsPerWorker?: number;
  /** A request with at least this many rows is split across idle workers and rejoined. @default 512 */
  splitRows?: number;
  /**
   * Dynamic batching: the most rows one run of merged queued requests may hold. Requests queue
   * only while every worker is busy; `1` turns merging off.
   * @default 8192
   */
  maxBatchRows?: number;
  /** Dynamic batching: requests with more rows than this always run on their own. @default 1024 */
  maxMergeRows?: number;
  /** Told the rows of every model run sent to a worker (for the batch-size metric). @default none */
  onBatch?: (rows: number) => void;
  /**
   * The synchronous hand-off: an idle worker parks in `Atomics.wait` and takes small runs of
   * fast models (at most 32 rows, runs of at most 200 µs) through shared memory, and the
   * calling thread waits for the answer synchronously for at most 400 µs before it waits
   * asynchronously (a model whose runs are longer goes by message). `false` sends every run
   * by message (server: `QUOLL_SYNC_HANDOFF=0`).
   * @default true
   */
  syncHandoff?: boolean;
  /**
   * Inline runs: small runs of small, fast pipelines run on the calling thread, with no hand-off
   * to a worker (`InlineRunner`). Three guards stand between a pipeline and that thread:
   * 1. a static bound (at deploy, from the graph): its models are small (≤ 1 MiB of ONNX
   *    together) and the work of one run is at most 2^20 element operations for every feed of
   *    at most 64 rows and 16 Ki values within the declared shapes, whatever the values (no
   *    loops, branches or value-dependent shapes);
   * 2. an admission probe (`InlineProber`, after the bound passed): the pipeline run in a thread
   *    of its own on the largest feeds the inline path takes, with zeros, random, large, small,
   *    negative and NaN values, a few times each; it runs inline only when every one of those
   *    runs took at most `inlineProbe.limitUs` (2 ms) at best. Until the probe answers, the
   *    deployment's runs go to the workers; a probe that fails or does not answer within
   *    `inlineProbe.timeoutMs` leaves them there for good;
   * 3. a trip wire: after 3 runs over 10 ms within 256, the deployment runs nothing inline any more.
   * Admitted, its runs of at most 8 rows and 4096 values run there while requests do not overlap,
   * within `inlineTurnBudgetUs` of inline runs per turn of the event loop for all deployments.
   * Each model is held once on the calling thread, within the memory budget of one pool worker
   * (`modelMemoryBytes` / `poolWorkers`, at most 64 MiB).
   *
   * Off unless `true` here (an embedded engine runs every model in its workers unless asked);
   * the server turns it on by default (`--no-inline-runs`, `QUOLL_INLINE_RUNS=off` turn it off).
   * onnxruntime cannot interrupt a run: a run the guards let through that is slow after all
   * holds the calling thread until it ends.
   * @default false
   */
  inlineRuns?: boolean;
  /** The admission probe of inline runs (see `inlineRuns`). @default { limitUs: 2000, timeoutMs: 20000 } */
  inlineProbe?: InlineProbeOptions;
  /**
   * The most time (µs) inline runs may take the calling thread in one turn of its event loop,
   * every deployment together (`InlineTurns`): past it, that turn's other small runs go to the
   * workers. A turn's inline runs hold the thread for at most this plus one run (≤ 2 ms, the probe's limit).
   * @default 2000
   */
  inlineTurnBudgetUs?: number;
  /**
   * The trip wire's cut-off (µs of wall time): an inline run past it counts as slow, and 3 slow
   * runs within 256 send the deployment's runs to the workers for good (`InlineRunner`). A test
   * sets it low to see the wire fire without a model that is slow in fact.
   * @default 10000
   */
  inlineSlowRunUs?: number;
  /**
   * Told once per deployment, with inline runs on, whether its pipeline runs inline and why
   * (after its probe when it has one), and once more should its trip wire fire later (state
   * `tripped`); the server logs both. @default none
   */
  onInlineDecided?: (deployment: string, admission: InlineAdmission) => void;
  /**
   * With `inlineRuns`: small runs that qualify run on the calling thread while requests overlap
   * too, the requests of one turn of the event loop merged into runs of at most 64 rows, instead
   * of going to the workers for dynamic batching. On one core a worker's merged run costs a
   * wake-up of the worker and a message each way on the core the calling thread needs; with more
   * cores the workers run beside the calling thread. The server turns it on when the process may
   * run on one CPU only (`os.availableParallelism()`, which follows the affinity mask).
   * @default false
   */
  inlineWhenContended?: boolean;
}

/** Per-deployment overrides of {@link InferenceEngineOptions}. */
export interface DeployOptions {
  /** Workers of the pool this deployment runs on (at most the pool's size). @default the engine's `workersPerDeployment` */
  workers?: number;
}

/**
 * Runs ONNX pipelines in worker threads of one shared pool ({@link ModelWorkerPool}), so the
 * server's event loop never runs a model and a model used by many pipelines is loaded once
 * per worker.
 *
 * @example
 * const engine = new InferenceEngine();
 * const deployment = await engine.deploy('houseprice-1', [step]);
 * const result = await deployment.infer(decodeInferenceBody(contentType, body), Date.now());
 * await engine.close();
 */
export class InferenceEngine {
  readonly #options: DeploymentOptions;
  readonly #pool: ModelWorkerPool;
  readonly #deployments = new Set<Deployment>();
  readonly #validators = new Set<WorkerHandle>();
  readonly #prober: InlineProber | null;
  #closed = false;

  constructor(options: InferenceEngineOptions = {}) {
    const workersPerDeployment = Math.max(1, options.workersPerDeployment ?? 2);
    const poolWorkers = Math.max(1, options.poolWorkers ?? workersPerDeployment);
    const memoryBudgetBytes = options.modelMemoryBytes ?? 4 * 1024 ** 3;
    this.#prober = options.inlineRuns === true ? new InlineProber(options.inlineProbe) : null;
    this.#pool = new ModelWorkerPool({
      size: poolWorkers,
      threadsPerWorker: Math.max(1, options.threadsPerWorker ?? 1),
      memoryBudgetBytes,
      syncHandoff: options.syncHandoff ?? true,
    });
    this.#options = Object.freeze({
      workersPerDeployment,
      splitRows: Math.max(1, options.splitRows ?? 512),
      maxBatchRows: Math.max(1, options.maxBatchRows ?? 8192),
      maxMergeRows: Math.max(1, options.maxMergeRows ?? 1024),
      onBatch: options.onBatch,
      // The calling thread holds models as one more worker would, within 64 MiB.
      inlineSessions:
        options.inlineRuns !== true
          ? null
          : new InlineSessions(Math.min(64 * 1024 ** 2, Math.floor(memoryBudgetBytes / poolWorkers))),
      inlineProber: this.#prober,
      inlineTurns: options.inlineRuns === true ? new InlineTurns(options.inlineTurnBudgetUs) : null,
      inlineSlowRunUs: options.inlineSlowRunUs ?? INLINE_SLOW_RUN_US,
      onInlineDecided: options.onInlineDecided,
      inlineWhenContended: options.inlineWhenContended === true,
    });
  }

  /** Worker threads currently alive: the pool's running threads, model validations and the inline probe's. */
  get workerCount(): number {
    return this.#pool.threadCount + this.#validators.size + (this.#prober?.threadCount ?? 0);
  }

  /** Model bytes (ONNX file sizes) held on the calling thread for inline runs, each model once. */
  get inlineModelBytes(): number {
    return this.#options.inlineSessions?.bytes ?? 0;
  }

  /** The shared pool (its size, threads and model loads). */
  get pool(): ModelWorkerPool {
    return this.#pool;
  }

  /**
   * Starts workers and loads every step in each. Rejects with `ApiError('invalid_model')`
   * naming the model and onnxruntime's reason when a model fails to load, and with
   * `ApiError('invalid_step')` when a step's inputs cannot be fed from the previous step's outputs.
   */
  async deploy(id: string, steps: StepModel[], options: DeployOptions = {}): Promise<Deployment> {
    if (this.#closed)
      throw new ApiError('shutting_down', 'The inference engine is closed; it deploys nothing more.');
    const resolved: DeploymentOptions = {
      ...this.#options,
      workersPerDeployment: Math.max(1, options.workers ?? this.#options.workersPerDeployment),
    };
    const deployment = new Deployment(id, steps, resolved, this.#pool, () =>
      this.#deployments.delete(deployment),
    );
    this.#deployments.add(deployment);
    try {
      await deployment.start();
    } catch (error) {
      this.#deployments.delete(deployment);
      throw error;
    }
    return deployment;
  }

  /**
   * Confirms onnxruntime can create a session from a model file path or its bytes, in a
   * short-lived worker. Rejects with `ApiError('invalid_model')` and onnxruntime's reason.
   */
  async validateModel(model: string | Uint8Array): Promise<void> {
    if (this.#closed) throw new ApiError('shutting_down', 'The inference engine is closed.');
    const worker = new WorkerHandle();
    this.#validators.add(worker);
    try {
      // Bytes are copied into the message (not transferred): the caller keeps its buffer.
      await worker.validate(model);
    } catch (error) {
      const reason = error instanceof WorkerFailure ? error.message : String(error);
      throw new ApiError(
        'invalid_model',
        `onnxruntime cannot load the model: ${reason}. Upload an ONNX model file that onnxruntime can run.`,
      );
    } finally {
      await worker.close();
      this.#validators.delete(worker);
    }
  }

  /** Closes every deployment (after their in-flight requests finish) and refuses new work. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#deployments].map((deployment) => deployment.close()));
    await Promise.all([...this.#validators].map((worker) => worker.close()));
    await this.#prober?.close();
    await this.#pool.close();
  }
}
