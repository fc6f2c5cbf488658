import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { transferList } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import { WORKER_PROTOCOL_VERSION } from './worker-protocol.js';
import type { ParentMessage, WorkerMessage, WorkerStepSpec } from './worker-protocol.js';

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

interface Pending {
  resolve(message: WorkerMessage): void;
  reject(error: Error): void;
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
  /** Resolves the promise `close()` waits on once no request is pending. */
  #onDrained: (() => void) | null = null;
  #nextId = 1;
  #closing = false;
  #closed: Promise<void> | null = null;
  /** Called once when the worker dies without being asked to (not called after `close()`). */
  onUnexpectedExit: ((error: Error) => void) | undefined;

  constructor() {
    this.#worker = spawnInferenceWorker();
    this.#exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        const error = new WorkerFailure('exit', `The inference worker stopped (exit code ${code}).`);
        this.#failAll(error);
        if (!this.#closing) this.onUnexpectedExit?.(error);
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
    if (this.#closing) return Promise.reject(new WorkerFailure('exit', 'The inference worker is closing.'));
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
function spawnInferenceWorker(): Worker {
  const compiled = new URL('./inference-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled);
  const source = new URL('./inference-worker.ts', import.meta.url);
  if (!import.meta.url.endsWith('.ts') || !existsSync(fileURLToPath(source))) {
    throw new Error(
      `The inference worker script is missing: ${fileURLToPath(compiled)}. Build the quoll package.`,
    );
  }
  const tsxApi = tsxEsmApiUrl();
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { eval: true });
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
