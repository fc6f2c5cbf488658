import type { WireTensor } from './tensor-data.js';
import { WorkerFailure, WorkerHandle } from './worker-handle.js';
import type { MergeCaps, RecordsAnswer } from './worker-handle.js';
import type { WorkerStepSpec } from './worker-protocol.js';

/** A model as the pool loads it: by SHA, with its file and an estimate of what it costs to hold. */
export interface PooledModel {
  sha: string;
  path: string;
  /** Model name and version, for error messages. */
  label: string;
  /** What holding the session costs, in bytes (the model file's size: a lower bound). */
  bytes: number;
}

/** A pipeline plan as deployments hand it to the pool. */
export interface PoolPlan {
  /** Unique per deployment. */
  key: string;
  steps: WorkerStepSpec[];
  /** The distinct models of the steps. */
  models: PooledModel[];
}

interface ResidentModel {
  model: PooledModel;
  /** Settles when the load message is answered; rejects when the model failed to load. */
  loaded: Promise<void>;
  /** True once the load succeeded: runs then need not wait for it. */
  ready: boolean;
  lastUsed: number;
}

/**
 * One slot of the shared worker pool: a worker thread (started when the first deployment is
 * assigned, stopped when the last one leaves, replaced when it dies) and what it holds —
 * sessions by model SHA, least recently used first out when over the slot's memory budget,
 * and the plans of the pipelines it serves. Messages to the thread are handled in order, so a
 * run is sent right behind the loads it needs, without waiting for them.
 */
export class PoolWorker {
  /** Position in the pool (what `status()` reports as "where"). */
  readonly index: number;
  readonly #threads: number;
  readonly #budget: number;
  readonly #syncHandoff: boolean;
  #handle: WorkerHandle | null = null;
  /** Loaded (or loading) models, in least-recently-used order (Map keeps insertion order). */
  #models = new Map<string, ResidentModel>();
  #plans = new Set<string>();
  #bytes = 0;
  #clock = 0;
  #assigned = 0;
  /** Deployments waiting for a free place on this worker; called (once) when a run settles. */
  readonly #waiting = new Set<() => void>();
  #closing: Promise<void> | null = null;
  /** Loads since start (for tests and status: how often models came back after eviction). */
  loads = 0;

  constructor(index: number, threads: number, budgetBytes: number, syncHandoff = false) {
    this.index = index;
    this.#threads = threads;
    this.#budget = budgetBytes;
    this.#syncHandoff = syncHandoff;
  }

  /** Runs of this slot's current thread through the synchronous hand-off (see `handoff-lane.ts`). */
  get laneRuns(): { sync: number; late: number } {
    return this.#handle?.laneRuns ?? { sync: 0, late: 0 };
  }

  /** Times the thread has parked on its lane (0 without one). */
  get parks(): number {
    return this.#handle?.parks ?? 0;
  }

  /** Whether a thread is running. */
  get alive(): boolean {
    return this.#handle !== null;
  }

  /** Requests sent to the thread and not yet answered. */
  get inFlight(): number {
    return this.#handle?.inFlight ?? 0;
  }

  /** Deployments assigned to this slot. */
  get assigned(): number {
    return this.#assigned;
  }

  /** Whether a model (by SHA) is loaded (or loading) here. */
  holds(sha: string): boolean {
    return this.#models.has(sha);
  }

  /** Bytes of the models held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** A deployment starts using this slot (the thread starts if it was stopped). */
  assign(): void {
    this.#assigned++;
    this.#closing = null;
    if (!this.#handle) this.#start();
  }

  /** A deployment stops using this slot; the last one out stops the thread (after its runs). */
  async unassign(plan: string | null): Promise<void> {
    this.#assigned = Math.max(0, this.#assigned - 1);
    const handle = this.#handle;
    if (plan !== null && handle && this.#plans.delete(plan))
      void handle.forgetPlan(plan).catch(() => undefined);
    if (this.#assigned === 0 && handle) {
      this.#handle = null;
      this.#models.clear();
      this.#plans.clear();
      this.#bytes = 0;
      this.#closing = handle.close();
      await this.#closing;
    }
  }

  /**
   * Registers a plan and loads its models, waiting for the loads: rejects with the model's
   * load error (a {@link WorkerFailure} with its `step`).
   */
  async prepare(plan: PoolPlan): Promise<void> {
    await this.#ensure(plan);
  }

  /**
   * Runs a plan: registers it and loads missing models first when needed (evicting the least
   * recently used others over the budget), all pipelined in the thread's queue.
   */
  run(plan: PoolPlan, feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    const handle = this.#handle;
    if (!handle) return Promise.reject(new WorkerFailure('exit', 'The inference worker is stopped.'));
    const ready = this.#ensure(plan);
    const run = handle.infer(plan.key, feeds, rows);
    const settled = (): void => this.#wake();
    run.then(settled, settled);
    // A failed load explains a failed run better than "not loaded" does.
    return ready === null ? run : Promise.all([ready, run]).then(([, outputs]) => outputs);
  }

  /**
   * Decodes JSON records bodies in the thread and runs them ({@link WorkerHandle.inferRecords}),
   * after the plan and its models are in place, as {@link run} does.
   */
  runRecords(
    plan: PoolPlan,
    bodies: Uint8Array[],
    deadlinesMs: number[],
    caps: MergeCaps,
  ): Promise<RecordsAnswer> {
    const handle = this.#handle;
    if (!handle) return Promise.reject(new WorkerFailure('exit', 'The inference worker is stopped.'));
    const ready = this.#ensure(plan);
    const run = handle.inferRecords(plan.key, bodies, deadlinesMs, caps);
    const settled = (): void => this.#wake();
    run.then(settled, settled);
    return ready === null ? run : Promise.all([ready, run]).then(([, answer]) => answer);
  }

  /** Calls `listener` once, the next time a run on this worker settles. */
  whenFree(listener: () => void): void {
    this.#waiting.add(listener);
  }

  /** Stops the thread now (after its in-flight runs). */
  async close(): Promise<void> {
    this.#assigned = 0;
    await this.unassign(null);
    await this.#closing;
  }

  /** Null when the plan and every model are already in place (the hot path: nothing to wait for). */
  #ensure(plan: PoolPlan): Promise<void> | null {
    const handle = this.#handle;
    if (!handle) return Promise.reject(new WorkerFailure('exit', 'The inference worker is stopped.'));
    const waits: Promise<void>[] = [];
    const tick = ++this.#clock;
    if (!this.#plans.has(plan.key)) {
      this.#plans.add(plan.key);
      waits.push(handle.plan(plan.key, plan.steps));
    }
    for (const model of plan.models) {
      const resident = this.#models.get(model.sha);
      if (resident) {
        // Move to the most recently used end.
        this.#models.delete(model.sha);
        this.#models.set(model.sha, resident);
        resident.lastUsed = tick;
        if (!resident.ready) waits.push(resident.loaded);
        continue;
      }
      this.#evictFor(model.bytes, plan);
      const loaded = handle
        .loadModel(model.sha, model.path, model.label, this.#threads)
        .catch((error: unknown) => {
          // A failed load holds nothing: the next run tries again.
          if (this.#models.get(model.sha)?.loaded === loaded) {
            this.#models.delete(model.sha);
            this.#bytes -= model.bytes;
          }
          const index = plan.steps.findIndex((step) => step.sha === model.sha);
          throw error instanceof WorkerFailure
            ? new WorkerFailure(error.stage, error.message, index >= 0 ? index : undefined)
            : error;
        });
      this.loads++;
      const entry: ResidentModel = { model, loaded, ready: false, lastUsed: tick };
      loaded.then(
        () => (entry.ready = true),
        () => undefined,
      );
      this.#models.set(model.sha, entry);
      this.#bytes += model.bytes;
      waits.push(loaded);
    }
    // Loads and plans hold places in the thread's queue too: their end must wake waiters, or a
    // deployment that found the worker full of another's loads waits for a run that never comes.
    const wake = (): void => this.#wake();
    for (const wait of waits) wait.then(wake, wake);
    return waits.length === 0 ? null : Promise.all(waits).then(() => undefined);
  }

  /** Unloads least recently used models (not of `plan`) until `bytes` more fit the budget. */
  #evictFor(bytes: number, plan: PoolPlan): void {
    const handle = this.#handle!;
    for (const [sha, resident] of this.#models) {
      if (this.#bytes + bytes <= this.#budget) return;
      if (plan.models.some((model) => model.sha === sha)) continue;
      this.#models.delete(sha);
      this.#bytes -= resident.model.bytes;
      // Ordered after every run already sent, so none of them loses its session.
      void handle.unloadModel(sha).catch(() => undefined);
    }
  }

  #wake(): void {
    if (this.#waiting.size === 0) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const listener of waiting) listener();
  }

  #start(): void {
    const handle = new WorkerHandle({ syncHandoff: this.#syncHandoff });
    this.#handle = handle;
    handle.onUnexpectedExit = () => {
      if (this.#handle !== handle) return;
      // The thread died (the runtime crashed): a fresh one holds nothing; runs reload on demand.
      this.#models.clear();
      this.#plans.clear();
      this.#bytes = 0;
      this.#handle = null;
      if (this.#assigned > 0) this.#start();
      this.#wake();
    };
  }
}
