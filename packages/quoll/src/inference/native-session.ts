import type * as ort from 'onnxruntime-node';
import { binding, initOrt } from 'onnxruntime-node/dist/binding.js';
import { checkTreeDepths } from '../onnx/index.js';

/**
 * An onnxruntime session driven through onnxruntime-node's native binding, which runs
 * synchronously: the package's `InferenceSession.run` only wraps the same native call in a
 * `setImmediate` and a promise, which a worker that never returns to its event loop between
 * runs (see `inference-worker.ts`) cannot wait for, and that the HTTP thread runs inline (`inline-runner.ts`). Loading and checking the model are the package's own
 * steps (`OnnxruntimeSessionHandler`), so a model loads or fails exactly as it did through it.
 */
export class NativeSession {
  readonly #native = new binding.InferenceSession();
  readonly inputNames: string[];
  readonly outputNames: string[];
  readonly #fetches: Record<string, null> = {};

  constructor(model: string | Uint8Array, options: ort.InferenceSession.SessionOptions) {
    initOrt();
    if (typeof model === 'string') this.#native.loadModel(model, options);
    else this.#native.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, options);
    for (const meta of [...this.#native.inputMetadata, ...this.#native.outputMetadata])
      if (meta.isTensor && !SUPPORTED_TYPES.has(meta.type))
        throw new Error(`Unsupported data type: ${meta.type}`);
    this.inputNames = this.#native.inputMetadata.map((meta) => meta.name);
    this.outputNames = this.#native.outputMetadata.map((meta) => meta.name);
    for (const name of this.outputNames) this.#fetches[name] = null;
  }

  /** Runs the model now (the calling thread runs it), with the checks the package's `run` makes. */
  run(feeds: Record<string, ort.Tensor>): Record<string, ort.OnnxValue> {
    for (const name of this.inputNames)
      if (feeds[name] === undefined) throw new Error(`input '${name}' is missing in 'feeds'.`);
    return this.#native.run(feeds, { ...this.#fetches }, {});
  }

  release(): void {
    this.#native.dispose();
  }
}

/** Element types onnxruntime-node maps to tensors (its `dataTypeStrings`). */
const SUPPORTED_TYPES = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 21, 22]);

/**
 * A session of `model` (a file path or its bytes), the only way Quoll has onnxruntime load a
 * model: the upload's validation, the pool workers' loads (of models stored before any check
 * too) and the inline sessions all come here. What would crash the native loader rather than
 * fail it is refused first, by `checkTreeDepths` (`ApiError('invalid_model')`), which reads a
 * file given by path a node at a time.
 */
export function createSession(model: string | Uint8Array, threads: number): NativeSession {
  checkTreeDepths(model);
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  return new NativeSession(model, options);
}
