export { ERROR_CODES, isErrorCode } from './error-codes.js';
export type { ErrorBody, ErrorCode, ErrorKind } from './error-codes.js';
export type {
  ConnectionAuditEntryDto,
  ConnectionDto,
  ConnectionWithDetailsDto,
  CreateTaskRequestDto,
  DeploymentConfigDto,
  ModelConfigDto,
  ModelVersionDto,
  OrchestrationDto,
  OrchestrationStatus,
  PackagingLogLineDto,
  PipelineDto,
  PipelineStatusDto,
  PipelineStatusName,
  PipelineStepDto,
  PipelineVersionDto,
  TaskDto,
  TaskRunDto,
  TaskTickDto,
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
export { LOG_DEFAULTS } from './log-defaults.js';
