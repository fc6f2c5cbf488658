import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { readModelOperators } from '../onnx/index.js';
import type { InlineSessions } from './inline-sessions.js';
import type { NativeSession } from './native-session.js';
import { runPipeline, StepError } from './run-pipeline.js';
import type { LoadedStep } from './run-pipeline.js';
import type { WireTensor } from './tensor-data.js';
import { WorkerFailure } from './worker-handle.js';
import type { WorkerStepSpec } from './worker-protocol.js';

/** Model files (all steps together) larger than this are never loaded on the calling thread. */
export const INLINE_MAX_MODEL_BYTES = 1024 * 1024;
/** Runs with more rows than this go to the worker pool. */
export const INLINE_MAX_ROWS = 8;
/** Runs whose feeds hold more elements than this (all feeds together) go to the worker pool. */
export const INLINE_MAX_ELEMENTS = 4096;
/**
 * Runs go to the workers for this long (ms) after requests were last seen overlapping (see
 * `Deployment`): dynamic batching in a worker then shares one run between many requests.
 */
export const INLINE_CONTENDED_HOLD_MS = 200;
/** Small runs of one turn of the event loop are merged into runs of at most this many rows… */
export const INLINE_MAX_BATCH_ROWS = 64;
/** …and at most this many feed elements. */
export const INLINE_MAX_BATCH_ELEMENTS = 16 * 1024;
/**
 * A run that takes longer than this (µs) counts as slow. Wall time, which a busy machine's
 * preemption lengthens (the process's CPU time costs a `getrusage` of several µs per run), so
 * the bound is far above what a run that qualifies takes (tens of µs) and slow runs must come
 * close together ({@link INLINE_MAX_SLOW_RUNS} in {@link INLINE_SLOW_WINDOW} runs).
 */
export const INLINE_SLOW_RUN_US = 10_000;
/** After this many slow runs within {@link INLINE_SLOW_WINDOW} runs, the deployment runs nothing inline any more. */
export const INLINE_MAX_SLOW_RUNS = 3;
/** Runs over which slow runs are counted. */
export const INLINE_SLOW_WINDOW = 256;
/** The first runs of a session allocate what later ones reuse: they are not judged. */
const WARMUP_RUNS = 4;

/**
 * Operators whose run time is bounded by the size of their inputs and of the model: no loop,
 * no branch, and no output whose size is read from the values of a tensor (`ConstantOfShape`,
 * `Expand`, `Tile`, `Range`, `Pad`, `Resize`, `OneHot` and the like are absent). A model made
 * only of these runs, on a bounded input, in a bounded time whatever the values.
 */
const BOUNDED_OPERATORS = new Set([
  ...[
    'TreeEnsembleRegressor',
    'TreeEnsembleClassifier',
    'TreeEnsemble',
    'LinearRegressor',
    'LinearClassifier',
    'SVMRegressor',
    'SVMClassifier',
    'Normalizer',
    'Scaler',
    'Binarizer',
    'Imputer',
    'ArrayFeatureExtractor',
    'FeatureVectorizer',
  ].map((op) => `ai.onnx.ml:${op}`),
  ...[
    'Identity',
    'Cast',
    'Add',
    'Sub',
    'Mul',
    'Div',
    'Neg',
    'Abs',
    'Exp',
    'Log',
    'Sqrt',
    'Reciprocal',
    'Floor',
    'Ceil',
    'Round',
    'Sign',
    'Erf',
    'Relu',
    'LeakyRelu',
    'Sigmoid',
    'HardSigmoid',
    'Tanh',
    'Softplus',
    'Softmax',
    'LogSoftmax',
    'Clip',
    'Gemm',
    'MatMul',
    'BatchNormalization',
    'Flatten',
    'Reshape',
    'Squeeze',
    'Unsqueeze',
    'Transpose',
    'Concat',
    'Slice',
    'Gather',
    'Shape',
    'ArgMax',
    'ArgMin',
    'ReduceSum',
    'ReduceMean',
    'ReduceMax',
    'ReduceMin',
    'Sum',
    'Max',
    'Min',
    'Where',
    'Equal',
    'Less',
    'Greater',
    'LessOrEqual',
    'GreaterOrEqual',
    'Not',
    'And',
    'Or',
  ].map((op) => `ai.onnx:${op}`),
]);

/**
 * A pipeline's sessions on the calling (HTTP) thread, for runs too small to be worth a hand-off
 * to another thread: on one core, every hand-off is a context switch to the worker and back,
 * which costs more than a batch-1 run of a small tree ensemble. Only pipelines whose models are
 * small (≤ {@link INLINE_MAX_MODEL_BYTES} together, and within the engine's budget for this thread, {@link InlineSessions}) and made only of operators whose run time
 * is bounded by the input's size get one, and only small runs (≤ {@link INLINE_MAX_ROWS} rows,
 * ≤ {@link INLINE_MAX_ELEMENTS} feed elements) take it, so no input can hold the thread long;
 * should runs still be slow ({@link INLINE_MAX_SLOW_RUNS} runs over {@link INLINE_SLOW_RUN_US}
 * close together), the pipeline runs everything in the worker pool from then on.
 */
export class InlineRunner {
  /** Bytes of the model files held (what the sessions cost at least). */
  readonly bytes: number;
  readonly #steps: LoadedStep[];
  /** Slow runs in the current window; at {@link INLINE_MAX_SLOW_RUNS} it stays there for good. */
  #slowRuns = 0;
  #released = false;
  readonly #giveBack: () => void;
  /** Runs made inline so far. */
  runs = 0;

  private constructor(steps: LoadedStep[], bytes: number, giveBack: () => void) {
    this.#steps = steps;
    this.bytes = bytes;
    this.#giveBack = giveBack;
  }

  /**
   * Loads the pipeline's models on this thread when they qualify (see the class); null when
   * they do not, or when a model cannot be read or loaded here (the workers run everything).
   */
  static create(specs: readonly WorkerStepSpec[], sessions: InlineSessions): InlineRunner | null {
    const files = new Map<string, Uint8Array>();
    let bytes = 0;
    try {
      for (const spec of specs) {
        if (files.has(spec.sha)) continue;
        const file = readFileSync(spec.path);
        bytes += file.byteLength;
        if (bytes > INLINE_MAX_MODEL_BYTES) return null;
        if (!readModelOperators(file).every((op) => BOUNDED_OPERATORS.has(op))) return null;
        files.set(spec.sha, file);
      }
    } catch {
      return null;
    }
    const acquired = new Map<string, NativeSession>();
    const giveBack = (): null => {
      for (const sha of acquired.keys()) sessions.release(sha);
      return null;
    };
    try {
      for (const [sha, file] of files) {
        const session = sessions.acquire(sha, file);
        if (session === null) return giveBack();
        acquired.set(sha, session);
      }
    } catch {
      return giveBack();
    }
    return new InlineRunner(
      specs.map((spec) => ({ spec, session: acquired.get(spec.sha)! })),
      bytes,
      () => {
        for (const sha of acquired.keys()) sessions.release(sha);
      },
    );
  }

  /** Whether a run of this size may run here now. */
  accepts(feeds: readonly WireTensor[], rows: number): boolean {
    if (this.#released || rows > INLINE_MAX_ROWS || this.#slowRuns >= INLINE_MAX_SLOW_RUNS) return false;
    let elements = 0;
    for (const feed of feeds) elements += feed.data.length;
    return elements <= INLINE_MAX_ELEMENTS;
  }

  /**
   * Runs the pipeline on this thread (call {@link accepts} first). Throws a
   * {@link WorkerFailure} (stage `infer`, with the failing step) as a worker's run would reject.
   */
  run(feeds: WireTensor[], rows: number): WireTensor[] {
    const started = performance.now();
    try {
      this.runs++;
      return runPipeline(this.#steps, feeds, rows);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new WorkerFailure('infer', message, error instanceof StepError ? error.step : undefined);
    } finally {
      if (this.runs > WARMUP_RUNS && (performance.now() - started) * 1000 > INLINE_SLOW_RUN_US)
        this.#slowRuns++;
      if (this.runs % INLINE_SLOW_WINDOW === 0 && this.#slowRuns < INLINE_MAX_SLOW_RUNS) this.#slowRuns = 0;
    }
  }

  /** Gives the sessions back (the last user frees each); nothing runs here afterwards. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#giveBack();
  }
}
