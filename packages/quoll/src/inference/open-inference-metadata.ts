import type { TensorInfoDto } from '@quoll/client/wire';
import type { ServedModel } from './inference-codec.js';
import { openInferenceDatatype } from './open-inference-datatype.js';
import type { OpenInferenceDatatype } from './open-inference-datatype.js';

/** One tensor of `GET /v2/models/{name}`: symbolic dimensions are -1, as the protocol says. */
export interface OpenInferenceTensorMetadata {
  name: string;
  datatype: OpenInferenceDatatype;
  shape: number[];
}

/** The body of `GET /v2/models/{name}` (the protocol's `$metadata_model_response`). */
export interface OpenInferenceModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: OpenInferenceTensorMetadata[];
  outputs: OpenInferenceTensorMetadata[];
}

/**
 * Model metadata of a served pipeline: its inputs are the first step's (named by the column
 * that feeds each), its outputs the last step's.
 */
export function openInferenceMetadata(served: ServedModel): OpenInferenceModelMetadata {
  return {
    name: served.name,
    versions: [served.version],
    platform: 'onnxruntime_onnx',
    inputs: served.inputs.map(tensorMetadata),
    outputs: served.outputs.map(tensorMetadata),
  };
}

function tensorMetadata(tensor: TensorInfoDto): OpenInferenceTensorMetadata {
  return {
    name: tensor.name,
    datatype: openInferenceDatatype(tensor.type),
    shape: tensor.shape.map((dim) => (typeof dim === 'number' ? dim : -1)),
  };
}
