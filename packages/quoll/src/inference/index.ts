export { InferenceEngine } from './inference-engine.js';
export type { DeployOptions, InferenceEngineOptions } from './inference-engine.js';
export type { Deployment, InlineAdmission } from './deployment.js';
export type { InlineProbeOptions } from './inline-prober.js';
export type { ModelWorkerPool } from './model-worker-pool.js';
export type { StepModel } from './step-model.js';
export { decodeInferenceBody, formatOfMediaType, UNCHECKED_BODY_DECODER } from './inference-input.js';
export type {
  EngineInput,
  ResultFormat,
  InferenceInput,
  InputTensor,
  UndecodedRecords,
} from './inference-input.js';
export { encodeInferenceAnswer, encodeInferenceResult, JSON_SLICE_ROWS } from './inference-result.js';
export type { InferenceResult } from './inference-result.js';
export { DecodePool } from './decode/decode-pool.js';
export type { DecodePoolOptions } from './decode/decode-pool.js';
export { checkArrowIpc } from './decode/check-arrow-ipc.js';
export type {
  DecodedInference,
  EncodedInference,
  InferenceCodec,
  RawInferenceBody,
  ServedModel,
} from './inference-codec.js';
export { quollBodyCodecs } from './quoll-body-codec.js';
export type { QuollBodyDecoder } from './quoll-body-codec.js';
export {
  INFERENCE_HEADER_CONTENT_LENGTH,
  MAX_OPEN_INFERENCE_TENSORS,
  openInferenceCodec,
  readOpenInferenceBody,
} from './open-inference-codec.js';
export type {
  OpenInferenceBody,
  OpenInferenceBodyDecoder,
  OpenInferenceRequest,
} from './open-inference-codec.js';
export { openInferenceMetadata } from './open-inference-metadata.js';
export type { OpenInferenceModelMetadata, OpenInferenceTensorMetadata } from './open-inference-metadata.js';
export { openInferenceDatatype } from './open-inference-datatype.js';
export type { OpenInferenceDatatype } from './open-inference-datatype.js';
