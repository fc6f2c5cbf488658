/**
 * JSON shapes of the HTTP API's resources, shared by the server and the SDK.
 * Timestamps are RFC 3339 strings in UTC unless a field says otherwise.
 */

/** A workspace: the unit of ownership and scoping. */
export interface WorkspaceDto {
  id: number;
  name: string;
  createdAt: string;
  /** True for the instance's default workspace. */
  isDefault: boolean;
}

/** Who the caller's token is. */
export interface WhoAmIDto {
  /** `admin` tokens see everything; `workspace` tokens see one workspace. */
  kind: 'admin' | 'workspace';
  /** The workspace a scoped token is bound to (or the default workspace for admin tokens). */
  workspace: WorkspaceDto;
  /** Name recorded for audit trails, e.g. `admin` or `task-run:<id>`. */
  subject: string;
}

/** Element types a model input or output can declare. */
export type TensorElementType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool'
  | 'string';

/** One input or output of a model, as the model file declares it. */
export interface TensorInfoDto {
  name: string;
  type: TensorElementType;
  /** Dimensions; a string or null is a symbolic (batch) dimension. */
  shape: (number | string | null)[];
}

/** How a model version maps request columns and batches rows. */
export interface ModelConfigDto {
  /** Input column names, in model-input order. */
  tensorFields: string[] | null;
  /** `single` runs the model one row at a time (for models without a batch dimension). */
  batchConfig: 'single' | null;
}

/** One uploaded version of a model. */
export interface ModelVersionDto {
  id: number;
  name: string;
  /** UUID of this version. */
  version: string;
  /** SHA-256 of the uploaded bytes, hex. */
  sha: string;
  fileName: string;
  sizeBytes: number;
  workspaceId: number;
  framework: 'onnx';
  inputs: TensorInfoDto[];
  outputs: TensorInfoDto[];
  config: ModelConfigDto;
  createdAt: string;
}

/** A step of a pipeline: run one model version. */
export interface PipelineStepDto {
  model: { name: string; version: string; sha: string };
  /**
   * The model config this step runs with, snapshotted when the version was deployed (absent on
   * draft steps and on versions made before snapshots).
   */
  config?: ModelConfigDto;
}

/** A persisted, deployable snapshot of a pipeline's steps. */
export interface PipelineVersionDto {
  version: string;
  createdAt: string;
  steps: PipelineStepDto[];
}

/** Deployment state of a pipeline. `Running` exactly when inference will succeed. */
export type PipelineStatusName = 'Running' | 'Starting' | 'Error' | 'Undeployed';

/** The answer of `status()`. */
export interface PipelineStatusDto {
  status: PipelineStatusName;
  /** Human-readable reasons: the load error when `Error`, progress while `Starting`. */
  details: string[];
  /** The pipeline version being served (or loaded). */
  version: string | null;
  models: { name: string; version: string; sha: string; status: PipelineStatusName }[];
  /** Worker sessions serving this deployment. */
  workers: number;
  deployedAt: string | null;
}

/** Deployment options. */
export interface DeploymentConfigDto {
  /** Worker threads serving the pipeline. @default 2 */
  workers?: number;
}

/** A pipeline and its current (draft) steps. */
export interface PipelineDto {
  id: number;
  name: string;
  workspaceId: number;
  createdAt: string;
  updatedAt: string;
  steps: PipelineStepDto[];
  /** Version UUIDs, newest first. */
  versions: string[];
  deployed: boolean;
  /** Path of the inference endpoint, relative to the server URL. */
  inferencePath: string;
}

/** A connection as listed: details are never included. */
export interface ConnectionDto {
  id: string;
  name: string;
  type: string;
  createdAt: string;
  workspaceNames: string[];
}

/** A connection with its unmasked details: only `GET /v1/connections/:name/details` answers this (audited). */
export interface ConnectionWithDetailsDto extends ConnectionDto {
  details: Record<string, unknown>;
}

/** One entry of the audit trail of unmasked connection reads (`GET /v1/admin/audit`). */
export interface ConnectionAuditEntryDto {
  id: number;
  /** The token subject that acted. */
  subject: string;
  connectionId: string;
  /** The connection's name at the time. */
  connectionName: string;
  action: 'read_details';
  /** ISO 8601. */
  at: string;
}

/** Orchestration packaging states. */
export type OrchestrationStatus = 'pending_packaging' | 'packaging' | 'ready' | 'error';

/** An uploaded orchestration. */
export interface OrchestrationDto {
  id: string;
  name: string;
  fileName: string;
  sha: string;
  status: OrchestrationStatus;
  /** Why packaging failed, when `status` is `error`. */
  error: string | null;
  entrypoint: string | null;
  workspaceId: number;
  workspaceName: string;
  createdAt: string;
  updatedAt: string;
}

/** Task types, as the seed names them. */
export type TaskType = 'Temporary Run' | 'Scheduled Run' | 'Continuous Run';

/** Task states. */
export type TaskStatus = 'pending' | 'started' | 'pending_kill' | 'killed';

/** Task-run outcomes. */
export type TaskRunStatus = 'running' | 'success' | 'failure' | 'timed_out' | 'killed';

/** A task: an orchestration run once, on a schedule or continuously. */
export interface TaskDto {
  id: string;
  name: string;
  type: TaskType;
  status: TaskStatus;
  orchestrationId: string;
  workspaceId: number;
  workspaceName: string;
  schedule: string | null;
  timezone: string | null;
  jsonArgs: Record<string, unknown>;
  /** Seconds; null = no limit. */
  timeout: number | null;
  killed: boolean;
  lastRunStatus: TaskRunStatus | 'unknown';
  /** Why the task is in a notable state (e.g. a continuous task's crash loop); null when healthy. */
  statusReason: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A cron tick of a scheduled task that produced no run, and why. */
export interface TaskTickDto {
  taskId: string;
  /** The nominal tick, RFC 3339. */
  tick: string;
  /** `skipped`: the previous run was still going; `missed`: the server was down or late. */
  kind: 'skipped' | 'missed';
  reason: string;
  recordedAt: string;
}

/** One run of a task. */
export interface TaskRunDto {
  id: string;
  taskId: string;
  status: TaskRunStatus;
  /** Nominal cron tick (scheduled runs), RFC 3339; null otherwise. */
  tick: string | null;
  exitCode: number | null;
  /** Why the run ended the way it did (e.g. the lost-run reason). */
  reason: string | null;
  createdAt: string;
  updatedAt: string;
}

/** One captured line of a task run's output. */
export interface TaskRunLogLineDto {
  /** RFC 3339 with nanoseconds, UTC. */
  time: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

/** One line of an orchestration's packaging log: what quoll, npm and the compiler said. */
export interface PackagingLogLineDto {
  /** RFC 3339, UTC. */
  time: string;
  source: 'quoll' | 'npm' | 'esbuild';
  line: string;
}

/** Body of `POST /v1/orchestrations/:id/tasks`. */
export interface CreateTaskRequestDto {
  type: 'once' | 'scheduled' | 'continuous';
  name: string;
  jsonArgs?: Record<string, unknown>;
  /** Scheduled tasks only: 5-field cron (the comma form is accepted). */
  schedule?: string;
  /** Scheduled tasks only: IANA time zone. @default 'UTC' */
  timezone?: string | null;
  /** Seconds per run (once and scheduled). @default 900 */
  timeout?: number | null;
}
