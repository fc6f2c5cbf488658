export { ERROR_CODES, isErrorCode } from './error-codes.js';
export type { ErrorBody, ErrorCode, ErrorKind } from './error-codes.js';
export type {
  ConnectionAuditEntryDto,
  ConnectionDto,
  ConnectionWithDetailsDto,
  DeploymentConfigDto,
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
  TensorElementType,
  TensorInfoDto,
  WhoAmIDto,
  WorkspaceDto,
} from './resources.js';
export { MEDIA_TYPES } from './media-types.js';
