import type { ModelConfigDto, TensorInfoDto } from '@quoll/client/wire';

/** One model of a pipeline as the engine loads it. */
export interface StepModel {
  name: string;
  version: string;
  sha: string;
  /** Path of the ONNX file on disk. */
  path: string;
  /** Declared inputs, as `inspectOnnxModel` reads them. */
  inputs: TensorInfoDto[];
  outputs: TensorInfoDto[];
  config: ModelConfigDto;
}
