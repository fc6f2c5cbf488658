import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ApiError } from '../errors/index.js';
import { transferList } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import { DecodeProgress } from './decode-progress.js';
import { ECHO_BUFFERS_PER_MESSAGE, echoBuffers } from './echo-buffers.js';
import { WORKER_PROTOCOL_VERSION } from './worker-protocol.js';
import type { ParentMessage, RecordsPart, WorkerMessage, WorkerStepSpec } from './worker-protocol.js';

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
  #abandoned = false;
  /** Resolves the promise `close()` waits on once no request is pending. */
  #onDrained: (() => void) | null = null;
  #nextId = 1;
  #closing = false;
  #closed: Promise<void> | null = null;
  /** Called once when the worker dies without being asked to (not called after `close()`). */
  onUnexpectedExit: ((error: Error) => void) | undefined;

  constructor() {
    this.#worker = spawnInferenceWorker({ progress: this.#progress.buffer });
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        const error = new WorkerFailure('exit', `The inference worker stopped (exit code ${code}).`);
        this.#failAll(error);
        if (!this.#closing && !this.#abandoned) this.onUnexpectedExit?.(error);
        resolve();
      });
    });
    this.#worker.on('error', (error) =>
      this.#failAll(new WorkerFailure('exit', `The inference worker crashed: ${error.message}`)),
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

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.#pending.size;
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

  /** Runs a pipeline plan whose models are loaded; the feeds' buffers are transferred (unusable afterwards). */
  infer(plan: string, feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
    // The hot path: one promise per run, no async wrapper.
    return this.#request(
      { v: WORKER_PROTOCOL_VERSION, type: 'infer', id: 0, plan, rows, feeds },
      transferList(feeds),
    ).then((answer) => {
      if (answer.type !== 'result')
        throw new WorkerFailure('protocol', `Unexpected answer "${answer.type}" to infer.`);
      return answer.outputs;
    });
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
    void this.#worker.terminate();
    this.onUnexpectedExit?.(new WorkerFailure('exit', 'The inference worker was abandoned.'));
  }

  /** Waits for in-flight requests to be answered, then stops the thread. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      if (this.#pending.size > 0) await new Promise<void>((resolve) => (this.#onDrained = resolve));
      await this.#worker.terminate();
      await this.#exited;
    })();
    return this.#closed;
  }

  /** Sends `message` under a fresh id (its `id` is overwritten) and resolves with the answer. */
  #request(message: ParentMessage, transfer: ArrayBuffer[]): Promise<WorkerMessage> {
    if (this.#closing || this.#abandoned)
      return Promise.reject(new WorkerFailure('exit', 'The inference worker is closing.'));
    const id = this.#nextId++;
    message.id = id;
    return new Promise<WorkerMessage>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage(message, transfer);
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
function spawnInferenceWorker(workerData: { progress: SharedArrayBuffer }): Worker {
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
