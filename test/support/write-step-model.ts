import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StepModel } from '../../packages/quoll/src/inference/index.js';
import { inspectOnnxModel } from '../../packages/quoll/src/onnx/index.js';

/**
 * A pipeline step of the model `bytes`, written to `<dir>/<name>-<n>.onnx` (`n` keeps each
 * step's file apart), with its inputs and outputs read from the file as a deploy reads them.
 */
export function writeStepModel(dir: string, name: string, bytes: Uint8Array, n: number): StepModel {
  const path = join(dir, `${name}-${n}.onnx`);
  writeFileSync(path, bytes);
  const info = inspectOnnxModel(readFileSync(path));
  return {
    name,
    version: '1',
    sha: createHash('sha256').update(bytes).digest('hex'),
    path,
    inputs: info.inputs,
    outputs: info.outputs,
    config: { tensorFields: null, batchConfig: null },
  };
}
