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

/** A token just issued: `token` is shown once (the server keeps only its hash); `id` revokes it. */
export interface IssuedTokenDto {
  id: string;
  token: string;
}

/** A live API token as `GET /v1/admin/tokens` lists it (never its secret). */
export interface ApiTokenDto {
  id: string;
  /** Who it was issued to: `admin`, `workspace:<name>`, a chosen subject, or `task-run:<runId>`. */
  subject: string;
  kind: 'admin' | 'workspace';
  /** The one workspace a `workspace` token sees; null for `admin`. */
  workspaceId: number | null;
  createdAt: string;
  /** Null for a token that never expires. */
  expiresAt: string | null;
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
  models: {
    name: string;
    version: string;
    sha: string;
    status: PipelineStatusName;
    /**
     * Indexes of the answering server's shared pool workers that hold this model's session now
     * (the deployment's workers only). Empty while the model is unloaded under the server's
     * model memory budget (it loads again on the next request), and on a cluster node that
     * holds no replica of the pipeline.
     */
    loadedOn: number[];
  }[];
  /** Workers of the server's shared pool serving this deployment. */
  workers: number;
  deployedAt: string | null;
  /**
   * Each node holding a replica of the deployment, by node id: on a cluster the nodes the
   * placement chose (`replicas` of them, or every inference node); on an embedded server the
   * server itself. Empty when undeployed.
   */
  replicas: ReplicaStatusDto[];
}

/** One node's replica of a deployed pipeline, as that node last reported it. */
export interface ReplicaStatusDto {
  /** The node's id (as in `GET /v1/admin/nodes`). */
  node: string;
  /** The node's own state: `up`, or `lost`/`stopped` until its replica is moved. */
  nodeStatus: 'up' | 'lost' | 'stopped';
  /** `Starting` from placement until the node has loaded the version, then `Running` (or `Error`). */
  status: PipelineStatusName;
  /** The version the node serves (or loads). */
  version: string | null;
  details: string[];
  workers: number;
  /** When the replica's state (status, version, details, workers) last changed (RFC 3339). */
  updatedAt: string;
}

/**
 * Deployment options. The names of Wallaroo's `DeploymentConfigBuilder` (`replica_count`,
 * `cpus`, `memory`) map onto what a Quoll server runs; a value the server cannot honour is
 * refused with `invalid_deployment_config`, never ignored.
 * @example await pipeline.deploy({ config: { replicas: 1, cpus: 0.5, memory: '1Gi' } })
 */
export interface DeploymentConfigDto {
  /**
   * Nodes serving the pipeline (Wallaroo's `replica_count`). On a cluster, that many
   * inference nodes load it (fewer while fewer are up) and the others forward its requests to
   * them; an embedded server is one node, so only 1 fits there. @default every inference node
   */
  replicas?: number;
  /** Worker threads serving the pipeline, each on its own core (1–64). @default the server's --workers (2) */
  workers?: number;
  /**
   * Cores the pipeline may use. Without `workers` it sets the worker count to `ceil(cpus)`
   * (0.5 → 1 worker); with `workers`, the two must agree. @default as many as the workers
   */
  cpus?: number;
  /**
   * Memory the pipeline's models may take, as bytes or a quantity (`"512Mi"`, `"1Gi"`,
   * `"2G"`): every worker holds each model, so a deploy whose workers × model size is over
   * it is refused. @default no limit
   */
  memory?: string | number;
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

/** A node of the instance (`GET /v1/admin/nodes`); an embedded home has one. */
export interface NodeDto {
  id: string;
  /** Where the node serves the API, as it was started. */
  url: string;
  /** `api`, plus `tasks` and `inference` unless the node was started without them. */
  roles: ('api' | 'tasks' | 'inference')[];
  /** `up` while it sends heartbeats; `lost` once it stopped without saying so; `stopped` after a clean shutdown. */
  status: 'up' | 'lost' | 'stopped';
  /** ISO 8601, the database's clock. */
  startedAt: string;
  /** The last heartbeat, ISO 8601. */
  lastSeenAt: string;
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
  /** Which language runs it, from the entrypoint: `python` for a `.py`, else `node`. */
  runtime?: 'node' | 'python' | null;
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

/**
 * What each run of a task may use; each limit can only tighten the server's (which applies
 * where the task sets none). Enforced per process with resource limits, see docs/security.md.
 */
export interface TaskLimitsDto {
  /** Private writable memory of each process, bytes (RLIMIT_DATA). */
  memoryBytes?: number;
  /** Processes and threads of the run (RLIMIT_NPROC). */
  processes?: number;
  /** Open files of each process (RLIMIT_NOFILE). */
  openFiles?: number;
  /** CPU seconds of each process (RLIMIT_CPU). */
  cpuSeconds?: number;
  /**
   * Disk the run may fill, bytes: its directory's size on disk (watched; past it the run ends
   * `failure`, "disk limit exceeded") and each file it writes (RLIMIT_FSIZE).
   */
  diskBytes?: number;
}

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
  /** The limits the task set for its runs (the server's apply to the rest); {} = the server's. */
  limits: TaskLimitsDto;
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
  /**
   * The node that runs (or ran) it; null while it waits for a node to claim it. Optional:
   * servers before distributed mode do not send it.
   */
  node?: string | null;
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
  source: 'quoll' | 'npm' | 'esbuild' | 'pip';
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
  /** Tighter resource limits for each run than the server's. @default the server's */
  limits?: TaskLimitsDto;
}
