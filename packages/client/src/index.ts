export { Client } from './client.js';
export type { UploadModelOptions } from './client.js';
export type { ClientOptions } from './http/index.js';
export { Workspace } from './workspaces/index.js';
export { Connection, ConnectionList } from './connections/index.js';
export { ModelVersion } from './models/index.js';
export type { ConfigureOptions } from './models/index.js';
export { Pipeline } from './pipelines/index.js';
export type { DeployOptions, InferenceRecord, InferOptions } from './pipelines/index.js';
export {
  AuthError,
  ConflictError,
  EntityNotFoundError,
  NotDeployedError,
  NotFoundError,
  PayloadTooLargeError,
  QuollError,
  ValidationError,
} from './errors/index.js';
export { inTask, taskArgs } from './task-env/index.js';
export { renderFields, renderTable } from './format/index.js';
export type { Cell } from './format/index.js';
export type {
  ConnectionAuditEntryDto,
  ConnectionDto,
  ConnectionWithDetailsDto,
  DeploymentConfigDto,
  ErrorCode,
  ModelConfigDto,
  ModelVersionDto,
  OrchestrationDto,
  OrchestrationStatus,
  PipelineDto,
  PipelineStatusDto,
  PipelineStatusName,
  PipelineStepDto,
  PipelineVersionDto,
  TaskDto,
  TaskRunDto,
  TaskRunLogLineDto,
  TaskRunStatus,
  TaskStatus,
  TaskType,
  TensorInfoDto,
  WhoAmIDto,
  WorkspaceDto,
} from './wire/index.js';
