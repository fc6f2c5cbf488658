import { PoolWorker } from './pool-worker.js';

/** Options of {@link ModelWorkerPool}. */
export interface ModelWorkerPoolOptions {
  /** Worker threads in the pool, shared by every deployment. */
  size: number;
  /** onnxruntime intra-op threads per session. */
  threadsPerWorker: number;
  /**
   * Model bytes (file sizes) all workers together may hold; split evenly between workers.
   * Over it, a worker unloads its least recently used models not needed by the run at hand.
   */
  memoryBudgetBytes: number;
  /** Whether workers take small runs through the synchronous hand-off (`handoff-lane.ts`). @default false */
  syncHandoff?: boolean;
}

/**
 * One pool of model workers per server, shared by all deployments (as KServe's ModelMesh):
 * a model (by SHA) is loaded once per worker that serves it, whichever pipelines use it; idle
 * models are unloaded under the memory budget and load again on demand. A deployment is
 * assigned `workers` of the pool's workers (the least assigned ones); threads start with their
 * first deployment and stop with their last.
 */
export class ModelWorkerPool {
  readonly #workers: PoolWorker[];

  constructor(options: ModelWorkerPoolOptions) {
    const size = Math.max(1, options.size);
    const perWorker = Math.max(1, Math.floor(options.memoryBudgetBytes / size));
    this.#workers = Array.from(
      { length: size },
      (_, index) => new PoolWorker(index, options.threadsPerWorker, perWorker, options.syncHandoff === true),
    );
  }

  /** Worker slots of the pool. */
  get size(): number {
    return this.#workers.length;
  }

  /** Threads running now. */
  get threadCount(): number {
    return this.#workers.filter((worker) => worker.alive).length;
  }

  /** Model loads since start, over all workers (a model reloaded after eviction counts again). */
  get loadCount(): number {
    return this.#workers.reduce((sum, worker) => sum + worker.loads, 0);
  }

  /** The pool's workers, by index. */
  get workers(): readonly PoolWorker[] {
    return this.#workers;
  }

  /** Picks `count` workers (at most the pool's size) for a deployment: those with the fewest deployments. */
  assign(count: number): PoolWorker[] {
    const picked = [...this.#workers]
      .sort((a, b) => a.assigned - b.assigned || a.index - b.index)
      .slice(0, Math.max(1, Math.min(count, this.#workers.length)));
    for (const worker of picked) worker.assign();
    return picked.sort((a, b) => a.index - b.index);
  }

  /** Indexes of the workers holding a model (by SHA). */
  where(sha: string): number[] {
    return this.#workers.filter((worker) => worker.holds(sha)).map((worker) => worker.index);
  }

  /** Stops every thread (after its in-flight runs). */
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.close()));
  }
}
