import type { TensorInfoDto } from '@quoll/client/wire';
import { ApiError } from '../server/api-error.js';
import type { InferenceInput } from './inference-input.js';
import type { StepModel } from './step-model.js';
import { bindColumns, buildFeeds, inputColumns, inputRowCount } from './input-binding.js';
import type { ColumnBinding } from './input-binding.js';
import { InferenceResult } from './inference-result.js';
import { concatTensorData, rowWidth } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import { WorkerFailure, WorkerHandle } from './worker-handle.js';
import type { WorkerStepSpec } from './worker-protocol.js';

/** How a deployment runs its workers (the engine's options, resolved). */
export interface DeploymentOptions {
  /** Worker threads in the pool. */
  workersPerDeployment: number;
  /** onnxruntime intra-op threads per session. */
  threadsPerWorker: number;
  /** Rows from which a request is split across idle workers. */
  splitRows: number;
}

/** Column bindings kept per distinct request schema; more than this many schemas is unusual. */
const MAX_CACHED_SCHEMAS = 64;

/**
 * A loaded pipeline: a pool of workers that each hold every step's session. Requests go to
 * the least busy worker; large batches are split across idle workers.
 */
export class Deployment {
  /** The id the deployment was created with. */
  readonly id: string;
  readonly #steps: readonly StepModel[];
  readonly #options: DeploymentOptions;
  readonly #onClosed: () => void;
  readonly #specs: WorkerStepSpec[];
  readonly #bindings = new Map<string, ColumnBinding[]>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #workers: WorkerHandle[] = [];
  #closing: Promise<void> | null = null;

  /** Use {@link InferenceEngine.deploy}; this constructor does not start workers. */
  constructor(id: string, steps: readonly StepModel[], options: DeploymentOptions, onClosed: () => void) {
    if (steps.length === 0)
      throw new ApiError('invalid_step', `Deployment ${id} has no steps; add a model step before deploying.`);
    this.id = id;
    this.#steps = steps;
    this.#options = options;
    this.#onClosed = onClosed;
    this.#specs = planSteps(steps);
  }

  /** Worker threads alive in this deployment. */
  get workerCount(): number {
    return this.#workers.length;
  }

  /** Spawns the workers and loads every step in each; on any failure stops them all and rejects. */
  async start(): Promise<void> {
    const workers = Array.from({ length: this.#options.workersPerDeployment }, () => new WorkerHandle());
    this.#workers = workers;
    const loads = await Promise.allSettled(
      workers.map((worker) => worker.load(this.#specs, this.#options.threadsPerWorker)),
    );
    const failed = loads.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed) {
      this.#workers = [];
      await Promise.all(workers.map((worker) => worker.close()));
      throw loadError(failed.reason, this.#steps);
    }
    for (const worker of workers) this.#watch(worker);
  }

  /**
   * Runs one request through every step. `now` (epoch ms) is stamped on every result row.
   * Rejects with a catalogue `ApiError` for bad input (see `bindColumns`/`buildFeeds`) and
   * `inference_failed` when the runtime fails.
   */
  async infer(input: InferenceInput, now: number): Promise<InferenceResult> {
    if (this.#closing)
      throw new ApiError(
        'pipeline_not_deployed',
        `Deployment ${this.id} is closed; deploy the pipeline again.`,
      );
    const columns = inputColumns(input);
    const bindings = this.#bindingsFor(columns);
    const rows = inputRowCount(input);
    const feeds = buildFeeds(input, bindings);
    const run = this.#run(feeds, rows);
    this.#inFlight.add(run);
    try {
      const outputs = await run;
      return new InferenceResult(input, columns, outputs, rows, now);
    } finally {
      this.#inFlight.delete(run);
    }
  }

  /** Lets in-flight requests finish, then stops every worker. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inFlight]);
      const workers = this.#workers;
      this.#workers = [];
      await Promise.all(workers.map((worker) => worker.close()));
      this.#onClosed();
    })();
    return this.#closing;
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

  async #run(feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    if (this.#workers.length === 0)
      throw new ApiError(
        'pipeline_not_ready',
        `Deployment ${this.id} has no running worker; check the pipeline status.`,
      );
    const idle = this.#workers.filter((worker) => worker.inFlight === 0);
    try {
      // A big batch with several idle workers: split it so every core works on this request.
      if (rows >= this.#options.splitRows && idle.length > 1) return await splitAcross(idle, feeds, rows);
      let best = this.#workers[0]!;
      for (const worker of this.#workers) if (worker.inFlight < best.inFlight) best = worker;
      return await best.infer(feeds, rows);
    } catch (error) {
      throw inferError(error, this.#steps);
    }
  }

  /** Replaces a worker that died on its own (the runtime crashed), so the pool keeps its size. */
  #watch(worker: WorkerHandle): void {
    worker.onUnexpectedExit = () => {
      this.#workers = this.#workers.filter((other) => other !== worker);
      if (this.#closing) return;
      const replacement = new WorkerHandle();
      replacement.load(this.#specs, this.#options.threadsPerWorker).then(
        () => {
          if (this.#closing) return void replacement.close();
          this.#workers.push(replacement);
          this.#watch(replacement);
        },
        () => void replacement.close(),
      );
    };
  }
}

/** Worker step specs, with which output of step i-1 feeds each input of step i. */
function planSteps(steps: readonly StepModel[]): WorkerStepSpec[] {
  return steps.map((step, index) => {
    const label = `model "${step.name}" version ${step.version}`;
    const base = {
      label,
      path: step.path,
      inputs: step.inputs,
      single: step.config.batchConfig === 'single',
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

async function splitAcross(
  workers: WorkerHandle[],
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
    chunks.push(workers[part]!.infer(chunkFeeds, end - start));
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
