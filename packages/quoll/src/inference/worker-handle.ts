import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ApiError } from '../errors/index.js';
import { ownedForMessage, transferList } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import { DecodeProgress } from './decode-progress.js';
import { ECHO_BUFFERS_PER_MESSAGE, echoBuffers } from './echo-buffers.js';
import { LANE, Lane, SLOT } from './handoff-lane.js';
import { WORKER_LIFE, WORKER_PROTOCOL_VERSION } from './worker-protocol.js';
import type {
  ParentMessage,
  ProbeReport,
  ProbeSettings,
  RecordsPart,
  WorkerMessage,
  WorkerStepSpec,
} from './worker-protocol.js';

/** What a request the thread died with is told: its pool starts a fresh thread (`PoolWorker`). */
const RETRY = '; a fresh worker takes the next requests, so retry this one.';

/** A worker's answer to a request that failed: the stage, the step (when known) and the runtime's message. */
export class WorkerFailure extends Error {
  constructor(
    readonly stage: 'load' | 'validate' | 'infer' | 'protocol' | 'exit',
    message: string,
    readonly step?: number,
  ) {
    super(message);
    this.name = 'WorkerFailure';
  }
}

/**
 * Body `body` of an `inferRecords` call overran its decode deadline: `error` is its answer. The
 * other bodies of the call were not at fault; they were copied when sent, so they can go again.
 */
export class DecodeTimeout extends Error {
  constructor(
    readonly body: number,
    readonly error: ApiError,
  ) {
    super(error.message);
    this.name = 'DecodeTimeout';
  }
}

interface Pending {
  resolve(message: WorkerMessage): void;
  reject(error: Error): void;
}

/** What the worker made of the JSON bodies of one `inferRecords` call. */
export interface RecordsAnswer {
  /** One per body, in order. */
  parts: RecordsPart[];
  /** The rows of each model run made (merged bodies count once, together). */
  runs: number[];
}

/** How `inferRecords` may merge the bodies it sends (the deployment's dynamic-batching caps). */
export interface MergeCaps {
  maxMergeRows: number;
  maxBatchRows: number;
}

/** `Atomics.waitAsync` (Node 16+; in TypeScript's ES2024 lib, newer than this project's). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync.bind(Atomics);

/** Options of {@link WorkerHandle}. */
export interface WorkerHandleOptions {
  /**
   * Give the worker the synchronous hand-off (`handoff-lane.ts`): small runs of fast models go
   * through shared memory while the worker is idle, and the caller waits for them in
   * `Atomics.wait` for at most {@link LANE_MAX_WAIT_US}. @default false
   */
  syncHandoff?: boolean;
}

/** A plan takes the lane only while its runs take the worker at most this long (µs, smoothed). */
export const LANE_MAX_RUN_US = 200;
/** The longest the caller's thread waits synchronously for a lane answer (µs); later, it waits asynchronously. */
export const LANE_MAX_WAIT_US = 400;
/** Runs with more rows than this always go by message. */
export const LANE_MAX_ROWS = 32;
/**
 * Runs the lane leaves to the message path after the last time a run found the worker busy
 * (ms): another request arriving while one runs means requests overlap, and then dynamic
 * batching (requests queued behind a run share the next one) is worth more than a quick
 * hand-off, while a caller waiting synchronously would keep the next requests from queueing.
 */
export const LANE_CONTENDED_HOLD_MS = 200;
/** One eligible run in this many goes by message anyway, to see whether requests overlap. */
export const LANE_PROBE_EVERY = 16;
/**
 * After this many runs in a row that the lane could not take (the plan's runs too long, too many
 * rows, outputs too large), an idle worker stops parking until a run the lane can take comes.
 */
export const LANE_IDLE_AFTER = 16;

/**
 * One inference worker thread and its in-flight requests. Requests are matched to answers
 * by id; `inFlight` lets the pool pick the least busy worker. Control messages (load, plan)
 * count as in flight too.
 */
export class WorkerHandle {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #exited: Promise<void>;
  /** Which JSON body the worker is decoding, since when (shared with it). */
  readonly #progress = new DecodeProgress();
  /** Whether the thread has started (`WORKER_LIFE`, shared with it). */
  readonly #life = new Int32Array(new SharedArrayBuffer(4));
  /** The thread's exit code, once it has exited. */
  #exitCode: number | null = null;
  #abandoned = false;
  /** Set once the thread has exited: nothing sent to it would ever be answered. */
  #dead = false;
  /** Resolves the promise `close()` waits on once no request is pending. */
  #onDrained: (() => void) | null = null;
  #nextId = 1;
  #closing = false;
  #closed: Promise<void> | null = null;
  /** Called once when the worker dies without being asked to (not called after `close()`). */
  onUnexpectedExit: ((error: Error) => void) | undefined;
  /** The synchronous hand-off, when enabled. */
  readonly #lane: Lane | null;
  /** Whether a run occupies the lane's slot. */
  #laneBusy = false;
  /**
   * How long each plan's runs take the worker (µs, smoothed; NaN after the first run, which
   * warms the session up and says little). Plans not measured yet go by message, which measures them.
   */
  readonly #runUs = new Map<string, number>();
  /** Plans whose outputs did not fit the slot: by message from then on. */
  readonly #laneRefused = new Set<string>();
  /** When a run last found the worker busy (`performance.now()`). */
  #contendedAt = Number.NEGATIVE_INFINITY;
  /** Runs that could have taken the lane (every {@link LANE_PROBE_EVERY}th goes by message). */
  #laneEligible = 0;
  /** Runs in a row the lane could not take (too long, too many rows, outputs too large). */
  #laneMisses = 0;
  /** Lane runs so far: answered while the caller waited synchronously, and answered later. */
  readonly laneRuns = { sync: 0, late: 0 };

  constructor(options: WorkerHandleOptions = {}) {
    this.#lane = options.syncHandoff === true ? new Lane() : null;
    if (this.#lane) Atomics.store(this.#lane.control, LANE.parkable, 1);
    this.#worker = spawnInferenceWorker({
      progress: this.#progress.buffer,
      life: this.#life.buffer,
      ...(this.#lane ? { lane: this.#lane.buffer } : {}),
    });
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        this.#dead = true;
        this.#exitCode = code;
        const error = new WorkerFailure('exit', `The inference worker stopped (exit code ${code})${RETRY}`);
        this.#failAll(error);
        // A lane run answered late waits on the slot's state: wake it (it finds its request failed).
        if (this.#lane) Atomics.notify(this.#lane.control, LANE.state);
        if (!this.#closing && !this.#abandoned) this.onUnexpectedExit?.(error);
        resolve();
      });
    });
    this.#worker.on('error', (error) =>
      this.#failAll(new WorkerFailure('exit', `The inference worker crashed: ${error.message}${RETRY}`)),
    );
    this.#worker.on('message', (message: WorkerMessage) => {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.type === 'failed')
        pending.reject(new WorkerFailure(message.stage, message.message, message.step));
      else pending.resolve(message);
      if (this.#pending.size === 0) this.#onDrained?.();
    });
  }

  /** Times the worker has parked on its lane (0 without one). */
  get parks(): number {
    return this.#lane ? Atomics.load(this.#lane.control, LANE.parks) : 0;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Whether the thread has started: its modules (onnxruntime-node's binding among them) are
   * loaded, so it runs JavaScript unless it is in a call it was asked to make.
   */
  get started(): boolean {
    return Atomics.load(this.#life, 0) === WORKER_LIFE.started;
  }

  /**
   * The thread's exit code once it has exited (null before): 0 when it left on its own
   * ({@link close}), 1 when it was terminated.
   */
  get exitCode(): number | null {
    return this.#exitCode;
  }

  /** Creates a model's session (once per SHA); rejects with a {@link WorkerFailure} (stage `load`). */
  async loadModel(sha: string, path: string, label: string, threads: number): Promise<void> {
    await this.#request(
      { v: WORKER_PROTOCOL_VERSION, type: 'load-model', id: 0, sha, path, label, threads },
      [],
    );
  }

  /** Releases a model's session (after every run sent before). */
  async unloadModel(sha: string): Promise<void> {
    await this.#request({ v: WORKER_PROTOCOL_VERSION, type: 'unload-model', id: 0, sha }, []);
  }

  /** Remembers a pipeline's steps under `plan`, for `infer`. */
  async plan(plan: string, steps: WorkerStepSpec[]): Promise<void> {
    await this.#request({ v: WORKER_PROTOCOL_VERSION, type: 'plan', id: 0, plan, steps }, []);
  }

  /** Forgets a pipeline plan (after every run sent before). */
  async forgetPlan(plan: string): Promise<void> {
    await this.#request({ v: WORKER_PROTOCOL_VERSION, type: 'forget-plan', id: 0, plan }, []);
  }

  /** Checks that onnxruntime can create a session from a file path or bytes. */
  async validate(model: string | Uint8Array): Promise<void> {
    await this.#request({ v: WORKER_PROTOCOL_VERSION, type: 'validate', id: 0, model }, []);
  }

  /**
   * Runs the admission probe of inline runs on sessions of the probe's own, made from `models`
   * (see `InlineProber`); rejects with a {@link WorkerFailure} (stage `infer`) when a model fails
   * to load or a run fails, or once `control`'s stop word is set (`PROBE_CONTROL`: the probe
   * stops before its next load or run). The bytes are copied into the message.
   */
  async probe(
    steps: WorkerStepSpec[],
    models: { sha: string; bytes: Uint8Array }[],
    settings: ProbeSettings,
    control: Int32Array,
  ): Promise<ProbeReport> {
    const answer = await this.#request(
      { v: WORKER_PROTOCOL_VERSION, type: 'probe', id: 0, steps, models, settings, control },
      [],
    );
    if (answer.type !== 'probed')
      throw new WorkerFailure('protocol', `Unexpected answer "${answer.type}" to probe.`);
    return answer.report;
  }

  /** Runs a pipeline plan whose models are loaded; the feeds' buffers are transferred (unusable afterwards). */
  infer(plan: string, feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    if (this.#lane !== null && (this.#pending.size > 0 || this.#laneBusy)) {
      this.#contendedAt = performance.now();
      // An idle worker need not park while requests overlap (it would only be woken for each).
      Atomics.store(this.#lane.control, LANE.parkable, 0);
    }
    const viaLane = this.#inferOnLane(plan, feeds, rows);
    if (viaLane !== null) return viaLane;
    // The hot path: one promise per run, no async wrapper. Feeds carved out of a slab are
    // copied (a slab must never be cloned whole into a message, nor moved: others view it).
    const owned = ownedForMessage(feeds);
    return this.#request(
      { v: WORKER_PROTOCOL_VERSION, type: 'infer', id: 0, plan, rows, feeds: owned },
      transferList(owned),
    ).then((answer) => {
      if (answer.type !== 'result')
        throw new WorkerFailure('protocol', `Unexpected answer "${answer.type}" to infer.`);
      if (answer.runUs !== undefined) this.#observe(plan, answer.runUs);
      return answer.outputs;
    });
  }

  /**
   * The synchronous hand-off: when the worker is parked with nothing else to do, no run has
   * found it busy for {@link LANE_CONTENDED_HOLD_MS}, the plan's runs are short and the run
   * fits the slot (and it is not one of the probes, {@link LANE_PROBE_EVERY}), writes it there and waits for the answer in
   * `Atomics.wait`, at most a few hundred µs (three times the plan's run time plus 100 µs,
   * within {@link LANE_MAX_WAIT_US}); a later answer is awaited asynchronously (`waitAsync`)
   * and counts as a long run, which turns the lane off for the plan until its runs are short
   * again. Null when the run goes by message instead.
   */
  #inferOnLane(plan: string, feeds: WireTensor[], rows: number): Promise<WireTensor[]> | null {
    const lane = this.#lane;
    if (
      lane === null ||
      this.#laneBusy ||
      this.#pending.size > 0 ||
      this.#closing ||
      this.#abandoned ||
      this.#dead
    )
      return null;
    const runUs = this.#runUs.get(plan);
    if (runUs === undefined || Number.isNaN(runUs)) return null; // not measured yet: says nothing
    if (!(runUs <= LANE_MAX_RUN_US) || rows > LANE_MAX_ROWS || this.#laneRefused.has(plan)) {
      this.#laneMiss(lane);
      return null;
    }
    this.#laneMisses = 0;
    if (performance.now() - this.#contendedAt < LANE_CONTENDED_HOLD_MS) return null;
    // Quiet again: the worker parks once it is next idle (this run goes by message if it is not yet parked).
    Atomics.store(lane.control, LANE.parkable, 1);
    if (Atomics.load(lane.control, LANE.parked) !== 1) return null;
    if (++this.#laneEligible % LANE_PROBE_EVERY === 0) return null;
    if (!lane.writeRequest(plan, rows, feeds)) return null;
    const control = lane.control;
    Atomics.store(control, LANE.state, SLOT.request);
    lane.ring();
    const waitUs = Math.min(LANE_MAX_WAIT_US, 3 * runUs + 100);
    Atomics.wait(control, LANE.state, SLOT.request, waitUs / 1000);
    if (Atomics.load(control, LANE.state) !== SLOT.request) {
      this.laneRuns.sync++;
      return this.#laneAnswer(lane, plan, feeds, rows);
    }
    // Late: the run counts (inFlight, close() waits for it) and is answered when the worker is done.
    this.laneRuns.late++;
    this.#laneBusy = true;
    const id = this.#nextId++;
    return new Promise<WorkerMessage>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const waiting = waitAsync(control, LANE.state, SLOT.request);
      const settled = (): void => {
        if (!this.#pending.has(id)) return; // failed meanwhile (the worker died)
        this.#pending.delete(id);
        resolve({ v: WORKER_PROTOCOL_VERSION, type: 'done', id });
        if (this.#pending.size === 0) this.#onDrained?.();
      };
      if (waiting.async) void waiting.value.then(settled);
      else settled();
    })
      .finally(() => (this.#laneBusy = false))
      .then(() => {
        const answer = this.#laneAnswer(lane, plan, feeds, rows);
        // A late answer turns the lane off for the plan at once, whatever the worker measured.
        this.#runUs.set(plan, Math.max(LANE_MAX_RUN_US + 1, this.#runUs.get(plan) ?? 0));
        return answer;
      });
  }

  /**
   * Counts a run the lane cannot take (too long, too many rows, outputs too large, or JSON bodies
   * decoded in the worker, see {@link inferRecords}): after {@link LANE_IDLE_AFTER} such runs in a
   * row the worker stops parking (a parked worker would only be rung awake, with a contended
   * futex, for each message). The store is made once, when the count reaches the threshold: only
   * a run the lane can take stores `parkable` 1 again, and that run resets the count.
   */
  #laneMiss(lane: Lane): void {
    if (++this.#laneMisses === LANE_IDLE_AFTER) Atomics.store(lane.control, LANE.parkable, 0);
  }

  /** Reads the lane's answer; a declined run (outputs too large for the slot) goes again by message. */
  #laneAnswer(lane: Lane, plan: string, feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    const state = Atomics.load(lane.control, LANE.state);
    Atomics.store(lane.control, LANE.state, SLOT.empty);
    this.#observe(plan, Atomics.load(lane.control, LANE.runUs));
    if (state === SLOT.done) return Promise.resolve(lane.readTensors());
    if (state === SLOT.failed) {
      const failure = lane.readFailure();
      return Promise.reject(new WorkerFailure('infer', failure.message, failure.step));
    }
    // Model runs have no side effects: running it again by message is sound.
    this.#laneRefused.add(plan);
    return this.infer(plan, feeds, rows);
  }

  /**
   * Records a run time of `plan` (µs), smoothed over the last ten runs or so, a run counting at
   * most four times the lane's limit (one preempted run does not close the lane); the first run
   * is left out. A late lane answer closes the lane at once (see {@link #inferOnLane}).
   */
  #observe(plan: string, runUs: number): void {
    const previous = this.#runUs.get(plan);
    const sample = Math.min(runUs, 4 * LANE_MAX_RUN_US);
    if (previous === undefined) this.#runUs.set(plan, Number.NaN);
    else if (Number.isNaN(previous)) this.#runUs.set(plan, runUs);
    else this.#runUs.set(plan, 0.9 * previous + 0.1 * sample);
  }

  /**
   * Decodes JSON records bodies in the worker, checks them against the plan's first step and
   * runs them (merging those that share a layout, within `caps`), each answered on its own.
   * Body i's decode runs under `deadlinesMs[i]` from when the worker starts it: past it the
   * call rejects with a {@link DecodeTimeout} naming that body and the thread is terminated
   * (the pool starts a fresh one; the other requests it held fail). A lone body's buffer is
   * moved when it owns it whole; several are copied, so the caller can send the others again.
   */
  inferRecords(
    plan: string,
    bodies: Uint8Array[],
    deadlinesMs: number[],
    caps: MergeCaps,
  ): Promise<RecordsAnswer> {
    // The lane never takes these (only decoded feeds fit its slot): a worker serving only JSON
    // bodies must stop parking as one serving only long runs does.
    if (this.#lane !== null) this.#laneMiss(this.#lane);
    const transfer: ArrayBuffer[] = [];
    const sent = bodies.map((body) => {
      const whole =
        body.buffer instanceof ArrayBuffer &&
        body.byteOffset === 0 &&
        body.byteLength === body.buffer.byteLength;
      if (whole && bodies.length > 1) return body; // cloned by postMessage
      const own = whole ? body : body.slice();
      transfer.push(own.buffer as ArrayBuffer);
      return own;
    });
    // Echoed columns of earlier answers that nothing reads any more go back for reuse.
    const recycled = echoBuffers.drain(ECHO_BUFFERS_PER_MESSAGE);
    for (const buffer of recycled) transfer.push(buffer);
    const message: ParentMessage = {
      v: WORKER_PROTOCOL_VERSION,
      type: 'infer-records',
      id: 0,
      plan,
      bodies: sent,
      recycled,
      ...caps,
    };
    const answer = this.#request(message, transfer);
    this.#watchDecode(message.id, deadlinesMs);
    return answer.then((reply) => {
      if (reply.type !== 'records-result')
        throw new WorkerFailure('protocol', `Unexpected answer "${reply.type}" to infer-records.`);
      return { parts: reply.parts, runs: reply.runs };
    });
  }

  /**
   * Abandons the worker when the decode of a body of message `id` runs past that body's
   * deadline from its own start (seen at most one deadline of the bodies after it late). Nothing
   * is sent per decode: the worker writes where it is into shared memory, read here only when a
   * deadline falls due.
   */
  #watchDecode(id: number, deadlinesMs: number[]): void {
    const check = (): void => {
      if (!this.#pending.has(id) || this.#abandoned) return;
      const now = this.#progress.read(id);
      // Decoded: what runs now is the model, which these deadlines do not bound.
      if (now.state === 'decoded') return;
      // Look again before the body decoding now, or any body after it, could overrun.
      let wait = Math.min(...deadlinesMs);
      if (now.state === 'decoding') {
        const deadlineMs = deadlinesMs[now.body]!;
        const later = deadlinesMs.slice(now.body + 1);
        if (now.elapsedMs >= deadlineMs) {
          // The worker left the decode meanwhile: it runs the model, which may not be interrupted.
          if (!this.#progress.abandon(id)) {
            setTimeout(check, 1).unref();
            return;
          }
          const error = new ApiError(
            'input_decode_timeout',
            `The body was not decoded within ${deadlineMs} ms, so it was abandoned; it is most likely corrupt. Send JSON records as a JSON library writes them.`,
            { deadlineMs },
          );
          this.#abandon(id, new DecodeTimeout(now.body, error));
          return;
        }
        wait = Math.min(deadlineMs - now.elapsedMs, ...later);
      }
      // Not started yet (behind another run), or started less than a deadline ago.
      setTimeout(check, Math.max(1, wait)).unref();
    };
    setTimeout(check, Math.min(...deadlinesMs)).unref();
  }

  /**
   * Answers request `id` with `error` and terminates the thread; its other requests fail as on
   * a crash. The owner hears of it at once (`onUnexpectedExit`), so the next request goes to a
   * fresh thread instead of this dying one.
   */
  #abandon(id: number, error: Error): void {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    this.#abandoned = true;
    pending?.reject(error);
    // In JavaScript: the decode is claimed (`DecodeProgress.abandon`), so the thread waits in it.
    void this.#worker.terminate();
    this.onUnexpectedExit?.(new WorkerFailure('exit', 'The inference worker was abandoned.'));
  }

  /**
   * Waits for in-flight requests to be answered, then has the thread leave on its own: it
   * releases its sessions and ends (exit code 0); resolves once it has exited. The thread is
   * never terminated here: `Worker.terminate()` while onnxruntime-node is in a call on it (its
   * binding loading as the thread starts, a load, a run) aborts the whole process (the binding
   * throws a C++ exception it cannot hand to JavaScript). Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      if (this.#pending.size > 0) await new Promise<void>((resolve) => (this.#onDrained = resolve));
      this.#leave();
      await this.#exited;
    })();
    return this.#closed;
  }

  /**
   * Stops the thread without waiting for its requests, which fail (stage `exit`); resolves once
   * it has exited. Only for a thread known not to be in a call into onnxruntime (`InlineProber`
   * knows through its probe's control array, `PROBE_CONTROL`): a thread that has {@link started}
   * is terminated at once; one still starting (loading the runtime's binding, native code) is
   * told to leave instead, which it does once started, after the messages sent before (a
   * withdrawn probe answers at once). Idempotent, and `close()` afterwards resolves with it.
   */
  terminate(): Promise<void> {
    this.#closing = true;
    // A close() waiting for these goes on to stop the thread too.
    this.#failAll(new WorkerFailure('exit', 'The inference worker was stopped.'));
    this.#closed ??= (async () => {
      if (this.started) {
        if (this.#lane) {
          // A parked worker leaves its park (terminate would interrupt it too; this says so plainly).
          Atomics.store(this.#lane.control, LANE.stop, 1);
          this.#lane.ring();
        }
        await this.#worker.terminate();
      } else this.#leave();
      await this.#exited;
    })();
    return this.#closed;
  }

  /** Tells the thread to leave on its own (`leave`: after every message sent before), unless it has exited. */
  #leave(): void {
    if (this.#dead) return;
    if (this.#lane) {
      // A parked worker leaves its park to read the message.
      Atomics.store(this.#lane.control, LANE.stop, 1);
      this.#lane.ring();
    }
    this.#worker.postMessage({ v: WORKER_PROTOCOL_VERSION, type: 'leave', id: 0 } satisfies ParentMessage);
    this.#lane?.posted();
  }

  /** Sends `message` under a fresh id (its `id` is overwritten) and resolves with the answer. */
  #request(message: ParentMessage, transfer: ArrayBuffer[]): Promise<WorkerMessage> {
    if (this.#dead) return Promise.reject(new WorkerFailure('exit', `The inference worker stopped${RETRY}`));
    if (this.#closing || this.#abandoned)
      return Promise.reject(new WorkerFailure('exit', 'The inference worker is closing.'));
    const id = this.#nextId++;
    message.id = id;
    return new Promise<WorkerMessage>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage(message, transfer);
      // A parked worker reads its messages only once woken.
      this.#lane?.posted();
    });
  }

  #failAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) entry.reject(error);
    this.#onDrained?.();
  }
}

/**
 * Starts `inference-worker.js` beside this file. When running from TypeScript sources
 * (vitest, tsx) only the `.ts` exists; the worker then registers tsx itself before importing
 * it, because a worker's `--import` in execArgv does not apply to its entry module on Node 20.
 */
function spawnInferenceWorker(workerData: {
  progress: SharedArrayBuffer;
  life: SharedArrayBuffer;
  lane?: SharedArrayBuffer;
}): Worker {
  const compiled = new URL('./inference-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, { workerData });
  const source = new URL('./inference-worker.ts', import.meta.url);
  if (!import.meta.url.endsWith('.ts') || !existsSync(fileURLToPath(source))) {
    throw new Error(
      `The inference worker script is missing: ${fileURLToPath(compiled)}. Build the quoll package.`,
    );
  }
  const tsxApi = tsxEsmApiUrl();
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** The ESM entry of tsx's register API (its CommonJS twin cannot be imported from a worker). */
function tsxEsmApiUrl(): string {
  const manifestPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } }>;
  };
  const entry = manifest.exports?.['./esm/api']?.import?.default ?? './dist/esm/api/index.mjs';
  return pathToFileURL(join(dirname(manifestPath), entry)).href;
}
