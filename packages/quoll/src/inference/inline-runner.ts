import { readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { TensorBound } from '../onnx/index.js';
import { callingThreadClock } from '../threads/index.js';
import type { ThreadClock } from '../threads/index.js';
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
 * A run that takes longer than this (µs) counts as slow: far above what a run that qualifies
 * takes (tens of µs), and slow runs must come close together ({@link INLINE_MAX_SLOW_RUNS} in
 * {@link INLINE_SLOW_WINDOW} runs). Wall time first, which costs nothing more, but which a busy
 * machine's preemption lengthens (a run of 0.2 ms waiting 10 ms for the CPU; on two servers
 * sharing a core a healthy pipeline tripped so); so a run slow in wall time is confirmed in the
 * thread's own time (`threadClock`, several µs a reading: paid only after a slow run, see
 * {@link InlineRunner.run}).
 */
export const INLINE_SLOW_RUN_US = 10_000;
/** After this many slow runs within {@link INLINE_SLOW_WINDOW} runs, the deployment runs nothing inline any more. */
export const INLINE_MAX_SLOW_RUNS = 3;
/** Runs over which slow runs are counted. */
export const INLINE_SLOW_WINDOW = 256;
/** The first runs of a session allocate what later ones reuse: they are not judged. */
const WARMUP_RUNS = 4;

/**
 * The most work one inline run may do, in element operations of `boundModelWork` (an element
 * read or written, a multiply-add, a tree node visited; {@link NODE_WORK} per node): 2^20,
 * about a millisecond of one core at a nanosecond an operation, and a tenth of the slow-run
 * cut-off ({@link INLINE_SLOW_RUN_US}). A pipeline is run inline only when its bound, for every
 * feed the inline path takes whatever its values, is within it: the tutorial's forest (64 rows)
 * is about 5 % of it, a crafted model that broadcasts or multiplies a reshaped input by
 * itself is thousands of times over.
 */
export const INLINE_MAX_WORK = 2 ** 20;

/**
 * A pipeline's sessions on the calling (HTTP) thread, for runs too small to be worth a hand-off
 * to another thread: on one core, every hand-off is a context switch to the worker and back,
 * which costs more than a batch-1 run of a small tree ensemble. onnxruntime cannot interrupt a
 * run, so a slow run here stalls every request of the server; three guards keep slow runs out:
 *
 * 1. **The static bound** (at deploy, on the graph alone, computed in the probe's thread):
 *    only pipelines whose models are small (≤ {@link INLINE_MAX_MODEL_BYTES} together,
 *    {@link readModels}) and whose work per run has a bound within {@link INLINE_MAX_WORK}
 *    (`boundPipelineWork`: for every feed of at most {@link INLINE_MAX_BATCH_ROWS} rows and
 *    {@link INLINE_MAX_BATCH_ELEMENTS} values within the declared shapes, whatever the values)
 *    qualify. Its cost model (element operations, so many ns each) is an estimate: an operator
 *    slower per element than it assumes is not caught here.
 * 2. **The admission probe** (`InlineProber`, `runInlineProbe`): a qualified pipeline's
 *    sessions are created in a thread of the prober's own (taking longer than
 *    `INLINE_PROBE_MAX_LOAD_US` refuses: the HTTP thread would take that long to create them),
 *    and it is run there on the largest feeds the inline path takes (`probeLayouts`:
 *    a merged run's most rows and values, each free dimension at its widest in turn) with six
 *    value patterns (zeros, random, large, small/subnormal, negative, NaN), each at least three
 *    times; only when every (layout, pattern)'s fastest run is within `INLINE_PROBE_LIMIT_US`
 *    (2 ms, a fifth of {@link INLINE_SLOW_RUN_US}) does it get sessions here ({@link create}).
 *    This measures what the bound estimates, on this machine's onnxruntime, for the shapes
 *    that cost most; it cannot try every value, so a model whose time depends on values other
 *    than those patterns in a way the bound does not see could still pass.
 * 3. **The trip wire** ({@link run}): {@link INLINE_MAX_SLOW_RUNS} runs over
 *    {@link INLINE_SLOW_RUN_US} within {@link INLINE_SLOW_WINDOW} runs (in wall time, confirmed
 *    in the thread's own time) send the pipeline to the workers for good. It acts only after
 *    slow runs have stalled the thread.
 *
 * Only small runs take the inline path ({@link accepts}: ≤ {@link INLINE_MAX_ROWS} rows,
 * ≤ {@link INLINE_MAX_ELEMENTS} feed elements, each dimension within the bound's; merged per
 * turn into runs within the bound's limits by `Deployment`). Sessions are held once per model
 * SHA for every deployment, within the engine's budget for this thread ({@link InlineSessions}).
 */
export class InlineRunner {
  /** Bytes of the model files held (what the sessions cost at least). */
  readonly bytes: number;
  /** The bound of a run's work this runner was admitted with (element operations). */
  readonly work: number;
  readonly #steps: LoadedStep[];
  /** The first step's inputs as the bound assumed them: a feed outside them goes to the workers. */
  readonly #inputs: ReadonlyMap<string, TensorBound>;
  /** The first dimension a feed's check starts at: 1 when the first step runs row by row. */
  readonly #checkFrom: number;
  /** Slow runs in the current window; at {@link INLINE_MAX_SLOW_RUNS} it stays there for good. */
  #slowRuns = 0;
  /** Runs of the current window slow in wall time and not timed in the thread's own time (0 or 1). */
  #unconfirmed = 0;
  /** Runs up to this one ({@link runs}) are timed in the thread's own time too. */
  #confirmUntil = 0;
  /** The thread's own time (given, or made on first need). */
  readonly #clock: ThreadClock | undefined;
  #fired = false;
  #released = false;
  readonly #giveBack: () => void;
  /** A run longer than this (µs, in wall time and the thread's own) counts as slow. */
  readonly #slowRunUs: number;
  /** Called once, when the trip wire fires. */
  readonly #onTripped: () => void;
  /** Runs made inline so far. */
  runs = 0;

  private constructor(
    steps: LoadedStep[],
    bytes: number,
    bound: { readonly work: number; readonly inputs: ReadonlyMap<string, TensorBound> },
    giveBack: () => void,
    trip: InlineTripWire,
  ) {
    this.#steps = steps;
    this.bytes = bytes;
    this.work = bound.work;
    this.#inputs = bound.inputs;
    this.#checkFrom = steps[0]?.spec.single ? 1 : 0;
    this.#giveBack = giveBack;
    this.#slowRunUs = trip.slowRunUs ?? INLINE_SLOW_RUN_US;
    this.#onTripped = trip.onTripped ?? (() => undefined);
    this.#clock = trip.clock;
  }

  /**
   * The model files of a pipeline, when they are small enough to run inline (see the class),
   * else why not: read on the calling thread (at most {@link INLINE_MAX_MODEL_BYTES}); the work
   * bound and the probe run on them in the probe's thread (`InlineProber`).
   */
  static readModels(
    specs: readonly WorkerStepSpec[],
  ):
    | { readonly files: ReadonlyMap<string, Uint8Array>; readonly bytes: number }
    | { readonly reason: string } {
    const files = new Map<string, Uint8Array>();
    let bytes = 0;
    try {
      // Sizes first (a stat each): a model of gigabytes is refused without being read (review F1).
      const seen = new Set<string>();
      for (const spec of specs) {
        if (seen.has(spec.sha)) continue;
        seen.add(spec.sha);
        bytes += statSync(spec.path).size;
        if (bytes > INLINE_MAX_MODEL_BYTES)
          return { reason: `its models hold more than ${INLINE_MAX_MODEL_BYTES} bytes of ONNX` };
      }
      bytes = 0;
      for (const spec of specs) {
        if (files.has(spec.sha)) continue;
        const file = readFileSync(spec.path);
        bytes += file.byteLength;
        // Grown since the stat (model files are immutable; this only keeps the limit exact).
        if (bytes > INLINE_MAX_MODEL_BYTES)
          return { reason: `its models hold more than ${INLINE_MAX_MODEL_BYTES} bytes of ONNX` };
        files.set(spec.sha, file);
      }
    } catch (error) {
      return {
        reason: `a model file cannot be read (${error instanceof Error ? error.message : String(error)})`,
      };
    }
    return { files, bytes };
  }

  /**
   * Creates the sessions of a qualified pipeline on this thread (once its probe admitted it);
   * null when they do not fit the engine's budget for this thread or cannot be created here.
   */
  static create(
    candidate: InlineCandidate,
    sessions: InlineSessions,
    trip: InlineTripWire = {},
  ): InlineRunner | null {
    const acquired = new Map<string, NativeSession>();
    const giveBack = (): null => {
      for (const sha of acquired.keys()) sessions.release(sha);
      return null;
    };
    try {
      for (const [sha, file] of candidate.files) {
        const session = sessions.acquire(sha, file);
        if (session === null) return giveBack();
        acquired.set(sha, session);
      }
    } catch {
      return giveBack();
    }
    return new InlineRunner(
      candidate.specs.map((spec) => ({ spec, session: acquired.get(spec.sha)! })),
      candidate.bytes,
      candidate,
      () => {
        for (const sha of acquired.keys()) sessions.release(sha);
      },
      trip,
    );
  }

  /** Whether the slow-run trip wire has sent this pipeline to the workers for good. */
  get tripped(): boolean {
    return this.#slowRuns >= INLINE_MAX_SLOW_RUNS;
  }

  /** Whether a run of this size and shape may run here now. */
  accepts(feeds: readonly WireTensor[], rows: number): boolean {
    if (this.#released || rows > INLINE_MAX_ROWS || this.#slowRuns >= INLINE_MAX_SLOW_RUNS) return false;
    let elements = 0;
    for (const feed of feeds) {
      elements += feed.data.length;
      // The bound holds for feeds within the dims it assumed, and only for those.
      const assumed = this.#inputs.get(feed.name);
      if (assumed === undefined || feed.dims.length !== assumed.dims.length) return false;
      for (let j = this.#checkFrom; j < feed.dims.length; j++)
        if (feed.dims[j]! > assumed.dims[j]!) return false;
    }
    return elements <= INLINE_MAX_ELEMENTS;
  }

  /**
   * Runs the pipeline on this thread (call {@link accepts} first). Throws a
   * {@link WorkerFailure} (stage `infer`, with the failing step) as a worker's run would reject.
   *
   * The trip wire: a run over the cut-off in wall time is slow only if the thread's own time
   * (less the time it waited for a CPU) says so too. Runs are timed in the thread's time only
   * after one was slow in wall time, for the rest of that window and the next: that first one,
   * not timed so, counts once a later one in the window is confirmed slow. So a pipeline slow in
   * fact trips at the same third slow run as in wall time alone, while one whose runs were only
   * kept from the CPU (a busy machine) does not, and quiet runs pay nothing for the thread clock.
   */
  run(feeds: WireTensor[], rows: number): WireTensor[] {
    const started = performance.now();
    this.runs++;
    const clock = this.runs > WARMUP_RUNS && this.runs <= this.#confirmUntil ? this.#threadClock() : null;
    const threadStarted = clock === null ? 0 : clock.now();
    try {
      return runPipeline(this.#steps, feeds, rows);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new WorkerFailure('infer', message, error instanceof StepError ? error.step : undefined);
    } finally {
      if (this.runs > WARMUP_RUNS && (performance.now() - started) * 1000 > this.#slowRunUs)
        this.#slowInWallTime(clock === null ? null : clock.now() - threadStarted);
      if (this.runs % INLINE_SLOW_WINDOW === 0 && this.#slowRuns < INLINE_MAX_SLOW_RUNS) {
        this.#slowRuns = 0;
        this.#unconfirmed = 0;
      }
    }
  }

  /** Judges a run slow in wall time by `threadUs`, its time in the thread's own (null: not timed so). */
  #slowInWallTime(threadUs: number | null): void {
    if (threadUs === null) {
      this.#unconfirmed = 1;
      this.#confirmUntil = (Math.floor(this.runs / INLINE_SLOW_WINDOW) + 2) * INLINE_SLOW_WINDOW;
      return;
    }
    if (threadUs <= this.#slowRunUs) return;
    this.#slowRuns += 1 + this.#unconfirmed;
    this.#unconfirmed = 0;
    if (this.#slowRuns >= INLINE_MAX_SLOW_RUNS && !this.#fired) {
      this.#fired = true;
      this.#onTripped();
    }
  }

  #threadClock(): ThreadClock {
    return this.#clock ?? callingThreadClock();
  }

  /** Gives the sessions back (the last user frees each); nothing runs here afterwards. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#giveBack();
  }
}

/** The slow-run trip wire of an {@link InlineRunner}. */
export interface InlineTripWire {
  /** A run longer than this (µs, in wall time and the thread's own) counts as slow. @default {@link INLINE_SLOW_RUN_US} */
  readonly slowRunUs?: number;
  /** Called once, when {@link INLINE_MAX_SLOW_RUNS} slow runs within a window send the pipeline to the workers for good. */
  readonly onTripped?: () => void;
  /**
   * The calling thread's own time, which confirms a run slow in wall time (see
   * {@link InlineRunner.run}). @default the calling thread's `threadClock()`, made on first need
   */
  readonly clock?: ThreadClock;
}

/** A pipeline its probe admitted: its model files and the work bound the probe computed. */
export interface InlineCandidate {
  readonly specs: readonly WorkerStepSpec[];
  /** Each model's bytes, by SHA: what was bounded, what the probe loaded, what the sessions load. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly bytes: number;
  /** The work bound (`boundPipelineWork`, in element operations), as the probe computed it. */
  readonly work: number;
  /** The first step's inputs as the bound assumed them (what {@link InlineRunner.accepts} checks). */
  readonly inputs: ReadonlyMap<string, TensorBound>;
}
