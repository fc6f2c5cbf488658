import type { TensorInfoDto } from '@quoll/client/wire';
import type { ErrorOutcome } from '../errors/index.js';
import type { TensorBound } from '../onnx/index.js';
import type { TransferredTable } from './decode/transferred-table.js';
import type { WireTensor } from './tensor-data.js';

/**
 * The one definition of what the engine and its inference workers say to each other.
 * Both sides import this file; a message with another `v` is refused, so a stale worker
 * script cannot silently misread a newer parent.
 */
export const WORKER_PROTOCOL_VERSION = 7;

/** What the inline path takes at most: the limits the probe's bound and layouts are made for (see `inline-runner.ts`). */
export interface ProbeLimits {
  /** Rows of one merged run (`INLINE_MAX_BATCH_ROWS`). */
  readonly rows: number;
  /** Values of one merged run, all feeds together (`INLINE_MAX_BATCH_ELEMENTS`). */
  readonly values: number;
  /** Values of one request, all feeds together (`INLINE_MAX_ELEMENTS`): a row holds at most this many. */
  readonly requestValues: number;
}

/** The shapes of one probed run: the dims of each of the first step's inputs, in their order. */
export interface ProbeLayout {
  /** The run's row count (what `runPipeline` is told; a `single` step runs this many one-row runs). */
  readonly rows: number;
  readonly dims: readonly (readonly number[])[];
}

/**
 * The words of a probe's control array (an `Int32Array` on a `SharedArrayBuffer` of
 * {@link PROBE_CONTROL.length} words, shared by the parent and the probe's thread):
 * - `state`, one of {@link PROBE_STATE}: the probe's thread sets `native` (compare-and-swap from
 *   `free`) before each call into onnxruntime (a session load, a run, a release) and `free`
 *   after it; the parent withdraws the probe by swapping in `stopped`, after which the thread
 *   makes no more calls into onnxruntime (it answers `failed`). What the swap returns says
 *   whether the thread may be terminated at once (`free`: it is in JavaScript) or must be let
 *   finish the call it is in (`native`): `Worker.terminate()` while onnxruntime-node loads or
 *   runs a model aborts the whole process (its binding throws a C++ exception it cannot hand
 *   to JavaScript);
 * - `calls`: the calls into onnxruntime the probe has started so far.
 */
export const PROBE_CONTROL = { state: 0, calls: 1, length: 2 } as const;

/** The values of `PROBE_CONTROL.state`. */
export const PROBE_STATE = { free: 0, native: 1, stopped: 2 } as const;

/**
 * The word a worker's life is told in (an `Int32Array` of one word on a `SharedArrayBuffer`,
 * given in its `workerData`): {@link WORKER_LIFE}`.starting` until the worker's modules have
 * loaded — onnxruntime-node's binding among them, native code that `Worker.terminate()` must not
 * interrupt (the binding throws a C++ exception it cannot hand to JavaScript, and the whole
 * process aborts) — then `started`: from then on the thread runs JavaScript unless it is in a
 * call it makes itself, which its parent knows of (a request in flight, `PROBE_CONTROL`).
 */
export const WORKER_LIFE = { starting: 0, started: 1 } as const;

/** How the admission probe of inline runs judges a pipeline (the parent's `InlineProber` sends them). */
export interface ProbeSettings {
  readonly limits: ProbeLimits;
  /** The most a run's work bound may be (element operations, `INLINE_MAX_WORK`). */
  readonly maxWork: number;
  /** The longest creating the pipeline's sessions may take (µs): the HTTP thread will take about as long. */
  readonly maxLoadUs: number;
  /** A run pattern whose fastest repeat is slower than this (µs) refuses the pipeline. */
  readonly limitUs: number;
  /** The most the timed runs may take in all (µs); past it the pipeline is refused. */
  readonly budgetUs: number;
  /** Repeats of each (layout, pattern) before its fastest may be taken as its time. */
  readonly minRepeats: number;
  /** Repeats at most of a (layout, pattern) whose runs are all over the limit, before it refuses. */
  readonly maxRepeats: number;
  /** Runs first, not counted (onnxruntime allocates on the first runs of a session). */
  readonly warmupRuns: number;
  /** Time (µs) after which a (layout, pattern) whose runs were all over the limit refuses, whatever `maxRepeats` says. */
  readonly giveUpUs: number;
}

/** What the probe found. */
export interface ProbeReport {
  /** Whether the pipeline may run inline: bounded, quick to load, every probed run within the limit. */
  readonly admitted: boolean;
  /** Why not, in words ('' when admitted). */
  readonly reason: string;
  /** The work bound (element operations; 0 when there is none). */
  readonly work: number;
  /** The first step's inputs as the bound assumed them (empty when there is no bound). */
  readonly inputs: ReadonlyMap<string, TensorBound>;
  /** The slowest (layout, pattern)'s fastest run (µs); the one that refused when it was the time. */
  readonly slowestUs: number;
  /** Which (layout, pattern) that was, in words. */
  readonly slowest: string;
  /** Timed runs made. */
  readonly runs: number;
  /** How long creating the sessions took the probe's thread (µs): the fastest of {@link loadsUs}. */
  readonly loadUs: number;
  /** Each time the probe created the sessions, how long it took (µs), in order (empty when it made none). */
  readonly loadsUs: readonly number[];
}

/** One model step of a pipeline plan, as a worker runs it. */
export interface WorkerStepSpec {
  /** Model name and version, for error messages. */
  label: string;
  /** SHA-256 of the model: the session the step runs (loaded once per worker, shared by pipelines). */
  sha: string;
  /** Path of the ONNX file on disk. */
  path: string;
  /** Declared inputs, in model order (element types decide casts between steps). */
  inputs: TensorInfoDto[];
  /**
   * For steps after the first: for each input, the name of the previous step's output that
   * feeds it. `null` for the first step (its feeds come from the request).
   */
  feedsFrom: string[] | null;
  /** Run rows one at a time (`batchConfig: 'single'`) and concatenate the outputs. */
  single: boolean;
  /** The first step's `tensorFields` (which request column feeds input i), for JSON bodies the worker decodes. */
  tensorFields: string[] | null;
}

/**
 * What became of one JSON records body of an `infer-records` message: run (its decoded input
 * columns, float64, for the answer and the log, and its outputs), refused with a catalogue
 * error (not records, a strict-number or shape check failed), or failed in the runtime (run on
 * its own after a merged run failed, so a failure is only ever its own).
 */
export type RecordsPart =
  | { status: 'done'; table: TransferredTable; outputs: WireTensor[] }
  | { status: 'refused'; error: ErrorOutcome }
  | { status: 'failed'; message: string; step?: number };

/**
 * Parent → worker. Messages are handled strictly in order, so a `load-model` sent before an
 * `infer` is done before it, and an `unload-model` sent after one waits for it.
 */
export type ParentMessage =
  /** Creates the session of a model (by SHA) unless it is already loaded. */
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'load-model';
      id: number;
      sha: string;
      path: string;
      label: string;
      threads: number;
    }
  /** Releases the session of a model (a no-op when it is not loaded). */
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'unload-model'; id: number; sha: string }
  /** Remembers a pipeline's steps under `plan`; its models must be loaded before it runs. */
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'plan'; id: number; plan: string; steps: WorkerStepSpec[] }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'forget-plan'; id: number; plan: string }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'validate'; id: number; model: string | Uint8Array }
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'infer';
      id: number;
      plan: string;
      rows: number;
      feeds: WireTensor[];
    }
  /**
   * Decodes JSON records bodies (each at most the decode pool's `modelWorkerJsonBytes`), checks
   * and casts them to the plan's first step, runs those that share a feed layout together (within the row caps,
   * as the parent's dynamic batching would) and answers each body on its own.
   */
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'infer-records';
      id: number;
      plan: string;
      bodies: Uint8Array[];
      /**
       * Buffers of earlier answers' echoed columns the parent no longer reads (transferred), for
       * the worker's scans to fill again (see `echo-buffers.ts`).
       */
      recycled?: ArrayBuffer[];
      /** Bodies with more rows than this run alone. */
      maxMergeRows: number;
      /** Most rows one merged run may hold. */
      maxBatchRows: number;
    }
  /**
   * The thread's last message: it releases every session it holds and ends on its own (exit
   * code 0), after every message sent before. Not answered: the thread's exit is the answer.
   * A thread is stopped this way, never by `Worker.terminate()`, unless it is known to run
   * JavaScript (see {@link WORKER_LIFE}).
   */
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'leave'; id: number }
  /**
   * The admission probe of inline runs (`InlineProber`, `probePipeline`): bounds the work of
   * the pipeline `steps` from `models` (the bytes the parent read), loads them into sessions of
   * this message's own with one thread as on the calling thread, runs the pipeline timed on its
   * largest inline feeds, and releases the sessions. Sent only to a worker of the prober's own,
   * never to the pool's.
   */
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'probe';
      id: number;
      steps: WorkerStepSpec[];
      models: { sha: string; bytes: Uint8Array }[];
      settings: ProbeSettings;
      /** The probe's control array ({@link PROBE_CONTROL}). */
      control: Int32Array;
    };

/** Worker → parent. Every message answers the request with the same `id`. */
export type WorkerMessage =
  /** Answers `load-model`, `unload-model`, `plan` and `forget-plan`. */
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'done'; id: number }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'validated'; id: number }
  /** Answers `infer`; `runUs` is how long the worker ran the pipeline. */
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'result'; id: number; outputs: WireTensor[]; runUs?: number }
  /** Answers `probe`. */
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'probed'; id: number; report: ProbeReport }
  /** Answers `infer-records`: one part per body, in order, and the rows of each model run made. */
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'records-result';
      id: number;
      parts: RecordsPart[];
      runs: number[];
    }
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'failed';
      id: number;
      /** What was being done; `step` is the 0-based pipeline step when known. */
      stage: 'load' | 'validate' | 'infer' | 'protocol';
      step?: number;
      message: string;
    };
