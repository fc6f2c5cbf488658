export { PipelineService } from './pipeline-service.js';
export type { StepInput } from './pipeline-service.js';
export { DeploymentManager } from './deployment-manager.js';
export type { DeployOutcome, DeployTarget, ServingLookup } from './deployment-manager.js';
