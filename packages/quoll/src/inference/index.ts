export { InferenceEngine } from './inference-engine.js';
export type { DeployOptions, InferenceEngineOptions } from './inference-engine.js';
export type { Deployment } from './deployment.js';
export type { StepModel } from './step-model.js';
export { decodeInferenceBody, formatOfMediaType } from './inference-input.js';
export type { ResultFormat, InferenceInput } from './inference-input.js';
export { encodeInferenceResult } from './inference-result.js';
export type { InferenceResult } from './inference-result.js';
