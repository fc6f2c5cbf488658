import { createRequire } from 'node:module';
import type { onnx as Onnx } from 'onnx-proto';

const require = createRequire(import.meta.url);
let loaded: typeof Onnx | null = null;

/**
 * `onnx-proto`'s message classes, loaded at the first call: protobufjs and the ONNX schema
 * cost a server start ≈ 0.1 s of CPU, and are needed only once a model is uploaded or loaded.
 */
export function onnxSchema(): typeof Onnx {
  loaded ??= (require('onnx-proto') as { onnx: typeof Onnx }).onnx;
  return loaded;
}
