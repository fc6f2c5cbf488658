import {
  INLINE_MAX_BATCH_ELEMENTS,
  INLINE_MAX_BATCH_ROWS,
  INLINE_MAX_ELEMENTS,
  INLINE_MAX_WORK,
} from './inline-runner.js';
import { PROBE_CONTROL, PROBE_STATE } from './worker-protocol.js';
import type { ProbeReport, ProbeSettings, WorkerStepSpec } from './worker-protocol.js';
import { WorkerHandle } from './worker-handle.js';

/**
 * The slowest a probed run may be (µs, the fastest of its repeats) for a pipeline to run
 * inline: a fifth of the slow-run cut-off (`INLINE_SLOW_RUN_US`, 10 ms) and twice the work
 * bound's estimate of its budget (`INLINE_MAX_WORK`, ~1 ms), while the tutorial's forest's
 * largest merged run (64 rows) takes 0.1–0.2 ms (see docs/benchmarks.md, inline lane,
 * 4 December 21:30): a margin of ten over what the models inline runs are for take, and of
 * five under the time that counts as a stall.
 */
export const INLINE_PROBE_LIMIT_US = 2000;

/**
 * The longest creating a pipeline's sessions may take the probe's thread (µs): the HTTP thread
 * creates its own once the probe admits it (onnxruntime-node loads synchronously), in about as
 * long, and answers nothing meanwhile, once per deploy: the slow-run cut-off
 * (`INLINE_SLOW_RUN_US`), the most the review accepts of a hold of the thread (F6: at 25 ms an
 * admitted 800 KB model held it 24 ms). The tutorial's forest (226 KB) took 3–9 ms in the
 * probe's thread (load 5–7; the fastest of up to five loads counts, the first never alone: a fresh thread's first load pays for its new memory, 20–90 ms), so on a busy host it can be refused
 * and run in the workers: a loss of speed, not a stall. The HTTP thread's own creation is a first
 * load in that thread, not a fastest one: 20–49 ms of its own time for the forest (5 December, one
 * core, load 2.5–7; each admission's verdict logs it), so this limit does not bound that hold.
 */
export const INLINE_PROBE_MAX_LOAD_US = 10_000;

/**
 * The most a probe's timed runs may take in all (µs): a model of many layouts each near the
 * limit would otherwise hold the one probe thread, and the verdicts of the deployments queued
 * behind it, for seconds (the review: 374 runs, 3.7 s). The tutorial's forest takes ~2 ms.
 */
export const INLINE_PROBE_BUDGET_US = 1_000_000;

/**
 * How long a probe may take in all (ms), from when it is sent to its thread: the thread's start
 * and the models' load included, so it is generous; past it the pipeline never runs inline and
 * the thread is stopped (once out of the load or run it may be in: see {@link InlineProber}).
 */
export const INLINE_PROBE_TIMEOUT_MS = 20_000;

/**
 * When a probe refuses a pipeline for its load time alone (creating its sessions took over
 * {@link INLINE_PROBE_MAX_LOAD_US} in all of its loads), it is probed again after each of these
 * delays (ms) in turn, until one admits it or gives another answer: a load slowed by what the
 * host did at that moment (the same model's load in the pool's worker, another server's deploy
 * on the same core: seen at 44 ms where the same server took 5 ms a minute before) does not
 * refuse for good, while its runs go to the workers meanwhile. Nothing else is probed again: a
 * pipeline refused by its bound, its runs, its probe's budget or a failure is refused for what
 * it is.
 */
export const INLINE_PROBE_LOAD_RETRY_DELAYS_MS: readonly number[] = [2000, 10_000, 30_000];

/**
 * The probe's runs: 2 first, not counted; then at least 3 of each (layout, pattern); one whose
 * runs are all too slow is tried up to 20 times (a run preempted by the OS is slow through no
 * fault of the model; 20 on a busy machine rarely all are), or, past its first 3, for 50 times
 * the limit in all (100 ms at 2 ms), whichever comes first.
 */
const PROBE_REPEATS = { minRepeats: 3, maxRepeats: 20, warmupRuns: 2 } as const;
/** See {@link PROBE_REPEATS}. */
const GIVE_UP_LIMITS = 50;

/** Options of {@link InlineProber} (the engine's `inlineProbe`). */
export interface InlineProbeOptions {
  /** See {@link INLINE_PROBE_LIMIT_US}. @default 2000 */
  limitUs?: number;
  /** See {@link INLINE_PROBE_TIMEOUT_MS}. @default 20000 */
  timeoutMs?: number;
  /** See {@link INLINE_PROBE_MAX_LOAD_US}. @default 10000 */
  maxLoadUs?: number;
  /** See {@link INLINE_PROBE_BUDGET_US}. @default 1000000 */
  budgetUs?: number;
  /** See {@link INLINE_PROBE_LOAD_RETRY_DELAYS_MS}. @default [2000, 10000, 30000] */
  loadRetryDelaysMs?: readonly number[];
}

/** A probe's answer: whether the pipeline may run inline, and what the probe saw or why not. */
export type InlineVerdict =
  | { readonly admitted: true; readonly report: ProbeReport }
  | { readonly admitted: false; readonly reason: string };

/** A probe asked for: its answer (never rejects) and a way to withdraw it. */
export interface InlineProbeTicket {
  readonly verdict: Promise<InlineVerdict>;
  /**
   * Withdraws the probe (its verdict: not admitted, `cancelled`): a waiting one leaves the
   * queue; a running one's thread is stopped (see {@link InlineProber}), and the promise
   * resolves once it has exited.
   */
  cancel(): Promise<void>;
}

interface ProbeJob {
  readonly steps: WorkerStepSpec[];
  readonly models: { sha: string; bytes: Uint8Array }[];
  /** Shared with the probe's thread (`PROBE_CONTROL`): how to stop it, how far it got (a fresh one per probe made). */
  control: Int32Array;
  resolve: (verdict: InlineVerdict) => void;
  /** Probes of it made so far. */
  made: number;
  /** The timer of its next probe, while it waits for it (see {@link INLINE_PROBE_LOAD_RETRY_DELAYS_MS}). */
  retry: NodeJS.Timeout | null;
}

/**
 * Runs the admission probes of inline runs (`runInlineProbe`) one at a time, in a worker thread
 * of its own: started for the first probe, kept while probes wait, stopped once none does. Not
 * the pool's workers: a probe there would hold up the requests queued behind it, and a probe
 * that does not answer could not be stopped without losing them; this thread runs nothing
 * else, so it is stopped when a probe overruns {@link INLINE_PROBE_TIMEOUT_MS}, is cancelled,
 * or fails (the next probe gets a fresh thread): told to make no more calls into onnxruntime,
 * and terminated, though never inside one (a load or run it is in is let finish first).
 * One probe at a time: a server restoring a hundred deployments probes them in turn, with one
 * thread's memory, while their runs go to the pool's workers.
 *
 * @example
 * const prober = new InlineProber();
 * const ticket = prober.probe(specs, files);
 * const verdict = await ticket.verdict; // { admitted: true, report } or { admitted: false, reason }
 * await prober.close();
 */
export class InlineProber {
  readonly #settings: ProbeSettings;
  readonly #timeoutMs: number;
  readonly #retryDelaysMs: readonly number[];
  /** Probes waiting to be made again, each on its timer. */
  readonly #retrying = new Set<ProbeJob>();
  #probesMade = 0;
  #handle: WorkerHandle | null = null;
  #queue: ProbeJob[] = [];
  #current: ProbeJob | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** Threads being stopped. */
  readonly #stopping = new Set<Promise<void>>();
  #closed = false;

  constructor(options: InlineProbeOptions = {}) {
    const limitUs = Math.max(0, options.limitUs ?? INLINE_PROBE_LIMIT_US);
    this.#settings = {
      limits: {
        rows: INLINE_MAX_BATCH_ROWS,
        values: INLINE_MAX_BATCH_ELEMENTS,
        requestValues: INLINE_MAX_ELEMENTS,
      },
      maxWork: INLINE_MAX_WORK,
      maxLoadUs: Math.max(0, options.maxLoadUs ?? INLINE_PROBE_MAX_LOAD_US),
      limitUs,
      budgetUs: Math.max(0, options.budgetUs ?? INLINE_PROBE_BUDGET_US),
      giveUpUs: GIVE_UP_LIMITS * limitUs,
      ...PROBE_REPEATS,
    };
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? INLINE_PROBE_TIMEOUT_MS);
    this.#retryDelaysMs = options.loadRetryDelaysMs ?? INLINE_PROBE_LOAD_RETRY_DELAYS_MS;
  }

  /** Probes sent to the probe's thread so far (a pipeline probed again counts each time). */
  get probesMade(): number {
    return this.#probesMade;
  }

  /** The most a probed run may take (µs). */
  get limitUs(): number {
    return this.#settings.limitUs;
  }

  /** Threads alive: the probe thread, and any being stopped. */
  get threadCount(): number {
    return (this.#handle === null ? 0 : 1) + this.#stopping.size;
  }

  /** Calls into onnxruntime (loads, runs, releases) the running probe has started (0 when none runs). */
  get probeCalls(): number {
    return this.#current === null ? 0 : Atomics.load(this.#current.control, PROBE_CONTROL.calls);
  }

  /** Probes waiting or running (not those waiting to be made again). */
  get pending(): number {
    return this.#queue.length + (this.#current === null ? 0 : 1);
  }

  /**
   * Queues a probe of the pipeline `steps`, its models from `files` (by SHA: the bytes its
   * sessions on the calling thread will be made of).
   */
  probe(steps: readonly WorkerStepSpec[], files: ReadonlyMap<string, Uint8Array>): InlineProbeTicket {
    let resolve!: (verdict: InlineVerdict) => void;
    const verdict = new Promise<InlineVerdict>((done) => (resolve = done));
    const job: ProbeJob = {
      steps: [...steps],
      models: [...files].map(([sha, bytes]) => ({ sha, bytes })),
      control: new Int32Array(new SharedArrayBuffer(PROBE_CONTROL.length * 4)),
      resolve,
      made: 0,
      retry: null,
    };
    if (this.#closed) resolve({ admitted: false, reason: 'the engine is closed' });
    else {
      this.#queue.push(job);
      this.#pump();
    }
    return { verdict, cancel: () => this.#cancel(job) };
  }

  /**
   * Withdraws every probe and waits for the thread to stop (a running probe's once the call
   * into onnxruntime it is in returns: see {@link #finish}). Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.resolve({ admitted: false, reason: 'cancelled' });
    for (const job of this.#retrying) this.#withdrawRetry(job);
    if (this.#current !== null) this.#finish(this.#current, { admitted: false, reason: 'cancelled' }, true);
    this.#stopThread(false);
    await Promise.all([...this.#stopping]);
  }

  async #cancel(job: ProbeJob): Promise<void> {
    if (this.#retrying.has(job)) {
      this.#withdrawRetry(job);
      return;
    }
    const at = this.#queue.indexOf(job);
    if (at >= 0) {
      this.#queue.splice(at, 1);
      job.resolve({ admitted: false, reason: 'cancelled' });
      return;
    }
    if (this.#current !== job) return;
    this.#finish(job, { admitted: false, reason: 'cancelled' }, true);
    await Promise.all([...this.#stopping]);
  }

  /** Starts the next probe when none runs; stops the idle thread when none waits. */
  #pump(): void {
    if (this.#current !== null) return;
    const job = this.#queue.shift();
    if (job === undefined || this.#closed) {
      this.#stopThread(false);
      return;
    }
    this.#current = job;
    job.made++;
    this.#probesMade++;
    const handle = (this.#handle ??= new WorkerHandle());
    this.#timer = setTimeout(
      () =>
        this.#finish(
          job,
          { admitted: false, reason: `the probe did not answer within ${this.#timeoutMs} ms` },
          true,
        ),
      this.#timeoutMs,
    );
    void handle.probe(job.steps, job.models, this.#settings, job.control).then(
      (report) => {
        const delayMs = this.#retryDelaysMs[job.made - 1];
        if (!report.admitted && report.loadUs > this.#settings.maxLoadUs && delayMs !== undefined)
          this.#retryLater(job, delayMs);
        else this.#finish(job, verdictOf(report), false);
      },
      (error: unknown) =>
        this.#finish(
          job,
          {
            admitted: false,
            reason: `the probe failed: ${error instanceof Error ? error.message : String(error)}`,
          },
          true,
        ),
    );
  }

  /**
   * Puts the running probe `job`, refused for its load time alone, aside for `delayMs`, then
   * back in the queue with a fresh control array (see {@link INLINE_PROBE_LOAD_RETRY_DELAYS_MS});
   * its thread answered, so it is idle, and the next probe goes on.
   */
  #retryLater(job: ProbeJob, delayMs: number): void {
    if (this.#current !== job) return;
    this.#current = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#retrying.add(job);
    job.retry = setTimeout(() => {
      job.retry = null;
      this.#retrying.delete(job);
      job.control = new Int32Array(new SharedArrayBuffer(PROBE_CONTROL.length * 4));
      this.#queue.push(job);
      this.#pump();
    }, delayMs);
    // A process with nothing else to do need not stay for it.
    job.retry.unref();
    this.#pump();
  }

  /** Withdraws a probe waiting to be made again: its timer cleared, its verdict `cancelled`. */
  #withdrawRetry(job: ProbeJob): void {
    if (job.retry !== null) clearTimeout(job.retry);
    job.retry = null;
    this.#retrying.delete(job);
    job.resolve({ admitted: false, reason: 'cancelled' });
  }

  /**
   * Answers the running probe `job` (a later answer of the same job does nothing), stopping
   * its thread when `stop` (overrun, cancelled, failed: the next probe gets a fresh one). The
   * probe is stopped first (`PROBE_STATE.stopped`: its thread makes no more calls into
   * onnxruntime); a thread in JavaScript then is terminated at once, and one inside onnxruntime
   * (a load or run, which nothing can interrupt) is let finish that call, answer and leave on its
   * own: `Worker.terminate()` inside onnxruntime-node aborts the whole process (its binding throws
   * a C++ exception it cannot hand to JavaScript), which a server stopping on SIGTERM during a
   * probe did (exit code null). A thread that has made no call may still be starting, its
   * binding's native code loading: `WorkerHandle.terminate` tells that one to leave instead.
   */
  #finish(job: ProbeJob, verdict: InlineVerdict, stop: boolean): void {
    if (this.#current !== job) return;
    this.#current = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    job.resolve(verdict);
    if (stop) {
      const was = Atomics.exchange(job.control, PROBE_CONTROL.state, PROBE_STATE.stopped);
      this.#stopThread(was !== PROBE_STATE.native);
    }
    this.#pump();
  }

  /**
   * Stops the thread: outright when `kill` (only ever when it is known to make no call into
   * onnxruntime: see {@link #finish}; still starting, it leaves on its own once started), else
   * once idle, which it is between probes and once a stopped probe has answered
   * (`WorkerHandle.close` waits for that, then the thread leaves on its own). The stop is kept
   * in {@link #stopping} until the thread has exited.
   */
  #stopThread(kill: boolean): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    const stopped: Promise<void> = (kill ? handle.terminate() : handle.close())
      .catch(() => undefined)
      .finally(() => this.#stopping.delete(stopped));
    this.#stopping.add(stopped);
  }
}

/** The verdict of a report: admitted only when the probe's thread said so. */
function verdictOf(report: ProbeReport): InlineVerdict {
  return report.admitted ? { admitted: true, report } : { admitted: false, reason: report.reason };
}
