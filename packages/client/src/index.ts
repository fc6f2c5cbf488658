// The browser-safe root. Node resolves `@quoll/client` to ./node/index.ts (the `node` export
// condition), which adds a Client that reads credentials files and local paths.
export { Client } from './client.js';
export type { UploadModelOptions, WorkspaceFilterOptions } from './client.js';
export type { ClientOptions, UploadProgress } from './http/index.js';
export { Workspace } from './workspaces/index.js';
export { Connection, ConnectionList } from './connections/index.js';
export { ModelVersion } from './models/index.js';
export type { ConfigureOptions } from './models/index.js';
export { Pipeline, parseDataSize } from './pipelines/index.js';
export type {
  DeployOptions,
  ExportLogsOptions,
  ExportLogsSummary,
  InferenceRecord,
  InferOptions,
  InferWithArrowOptions,
  LogRecord,
  LogRecords,
  LogsOptions,
  LogsResultInfo,
  LogsTable,
  LogsTableOf,
  LogTime,
} from './pipelines/index.js';
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
export { Orchestration, OrchestrationList, PackagingLogLine, PackagingLogs } from './orchestrations/index.js';
export type { RunContinuouslyOptions, RunOnceOptions, RunScheduledOptions } from './orchestrations/index.js';
export {
  Task,
  TaskList,
  TaskRun,
  TaskRunList,
  TaskRunLogLine,
  TaskRunLogs,
  TaskTick,
  TaskTickList,
} from './tasks/index.js';
export type { LastRunsOptions } from './tasks/index.js';
export { SDK_ARROW_RANGE } from './arrow-interop/index.js';
export type { ArrowModule, ArrowTableLike, ArrowTableOf } from './arrow-interop/index.js';
export { renderFields, renderTable } from './format/index.js';
export type { Cell } from './format/index.js';
/**
 * The Apache Arrow library the SDK uses, so code that builds or reads tables (orchestrations too)
 * shares one copy with the SDK: `import { arrow } from '@quoll/client'; arrow.tableFromIPC(bytes)`.
 */
export * as arrow from 'apache-arrow';
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
  PackagingLogLineDto,
  PipelineDto,
  PipelineStatusDto,
  ReplicaStatusDto,
  PipelineStatusName,
  PipelineStepDto,
  PipelineVersionDto,
  TaskDto,
  TaskLimitsDto,
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
  ApiTokenDto,
  IssuedTokenDto,
} from './wire/index.js';
