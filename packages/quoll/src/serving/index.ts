export { InferenceService } from './inference-service.js';
export type {
  InferenceLogSink,
  InferenceMetricsSink,
  InferenceServiceOptions,
  PipelineAddress,
} from './inference-service.js';
export { ReplicaDirectory } from './replica-directory.js';
export type { ForwardTarget, ReplicaDirectoryOptions } from './replica-directory.js';
export type { InferenceRoute } from './inference-service.js';
