import { ApiError } from '../server/api-error.js';
import { Deployment } from './deployment.js';
import type { DeploymentOptions } from './deployment.js';
import type { StepModel } from './step-model.js';
import { WorkerFailure, WorkerHandle } from './worker-handle.js';

/** Options of {@link InferenceEngine}. */
export interface InferenceEngineOptions {
  /** Worker threads per deployment, each holding every step's session. @default 2 */
  workersPerDeployment?: number;
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
}

/** Per-deployment overrides of {@link InferenceEngineOptions}. */
export interface DeployOptions {
  /** Worker threads for this deployment. @default the engine's `workersPerDeployment` */
  workers?: number;
}

/**
 * Runs ONNX pipelines in worker threads: one pool of workers per deployment, so the
 * server's event loop never runs a model.
 *
 * @example
 * const engine = new InferenceEngine();
 * const deployment = await engine.deploy('houseprice-1', [step]);
 * const result = await deployment.infer(decodeInferenceBody(contentType, body), Date.now());
 * await engine.close();
 */
export class InferenceEngine {
  readonly #options: DeploymentOptions;
  readonly #deployments = new Set<Deployment>();
  readonly #validators = new Set<WorkerHandle>();
  #closed = false;

  constructor(options: InferenceEngineOptions = {}) {
    this.#options = Object.freeze({
      workersPerDeployment: Math.max(1, options.workersPerDeployment ?? 2),
      threadsPerWorker: Math.max(1, options.threadsPerWorker ?? 1),
      splitRows: Math.max(1, options.splitRows ?? 512),
      maxBatchRows: Math.max(1, options.maxBatchRows ?? 8192),
      maxMergeRows: Math.max(1, options.maxMergeRows ?? 1024),
    });
  }

  /** Worker threads currently alive across all deployments and validations. */
  get workerCount(): number {
    let count = this.#validators.size;
    for (const deployment of this.#deployments) count += deployment.workerCount;
    return count;
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
    const deployment = new Deployment(id, steps, resolved, () => this.#deployments.delete(deployment));
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
  }
}
