import type { TensorInfoDto } from '@quoll/client/wire';
import type { WireTensor } from './tensor-data.js';

/**
 * The one definition of what the engine and its inference workers say to each other.
 * Both sides import this file; a message with another `v` is refused, so a stale worker
 * script cannot silently misread a newer parent.
 */
export const WORKER_PROTOCOL_VERSION = 1;

/** One model step as a worker loads it. */
export interface WorkerStepSpec {
  /** Model name and version, for error messages. */
  label: string;
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
}

/** Parent → worker. */
export type ParentMessage =
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'load'; id: number; steps: WorkerStepSpec[]; threads: number }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'validate'; id: number; model: string | Uint8Array }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'infer'; id: number; rows: number; feeds: WireTensor[] };

/** Worker → parent. Every message answers the request with the same `id`. */
export type WorkerMessage =
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'loaded'; id: number }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'validated'; id: number }
  | { v: typeof WORKER_PROTOCOL_VERSION; type: 'result'; id: number; outputs: WireTensor[] }
  | {
      v: typeof WORKER_PROTOCOL_VERSION;
      type: 'failed';
      id: number;
      /** What was being done; `step` is the 0-based pipeline step when known. */
      stage: 'load' | 'validate' | 'infer' | 'protocol';
      step?: number;
      message: string;
    };
