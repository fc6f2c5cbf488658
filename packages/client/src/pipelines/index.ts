export { Pipeline } from './pipeline.js';
export type { DeployOptions, InferenceRecord, InferOptions } from './pipeline.js';
