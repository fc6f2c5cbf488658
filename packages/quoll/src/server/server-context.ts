import type { FastifyRequest } from 'fastify';
import type { SessionService, TokenService } from '../auth/index.js';
import type { BlobStore } from '../blobs/index.js';
import type { NodeStore } from '../cluster/index.js';
import type { ServerConfig } from '../config/index.js';
import type { ConnectionService, ConnectionStore } from '../connections/index.js';
import type { InferenceLogs } from '../logs/index.js';
import type { ModelService } from '../models/index.js';
import type { PythonSdk } from '../python-sdk/index.js';
import type { OrchestrationStore, Packager } from '../orchestrations/index.js';
import type { TaskService } from '../scheduler/index.js';
import type { DeploymentManager, PipelineService } from '../pipelines/index.js';
import type { InferenceService, ReplicaDirectory } from '../serving/index.js';
import type { Principal } from '../auth/index.js';
import type { WorkspaceService } from '../workspaces/index.js';
import type { DatabaseHealth, SchemaState } from '../store/index.js';
import { ApiError } from '../errors/index.js';
import { parseNumericId } from '../validation/index.js';
import type { SandboxStatus } from '../runner/index.js';
import type { DecodePool } from '../inference/index.js';
import type { RunSecrets } from './run-secrets.js';
import type { MetricsWindow, ServerMetrics } from '../metrics/index.js';
import type { BodyBudget } from './body-budget.js';

/** How task runs are isolated, and who may start them (`/v1/health` shows it). */
export interface RunIsolation extends SandboxStatus {
  /** `admin-only`: runs are not sandboxed, so workspace-scoped tokens may not create tasks. */
  unsandboxedRuns: 'allowed' | 'admin-only';
}

/** The services routes call; built once by the composition root. */
export interface ServerContext {
  readonly config: ServerConfig;
  /** This node's id (`QUOLL_NODE_ID` or `<home>/node-id`). */
  readonly nodeId: string;
  /** The nodes of the instance (`GET /v1/admin/nodes`). */
  readonly nodes: NodeStore;
  /**
   * On a node of a cluster: where the replicas of pipelines are, so that inference requests
   * for a pipeline this node does not serve are forwarded; null on the embedded home.
   */
  readonly replicaDirectory: ReplicaDirectory | null;
  /** Checks the metadata database with one round-trip (for `GET /v1/health`). */
  readonly databaseHealth: () => Promise<DatabaseHealth>;
  /**
   * The database's schema against this node's code, as last read (`schema_ahead` on
   * `GET /v1/health` once a node of a newer release migrated it).
   */
  readonly schemaState: () => SchemaState;
  readonly now: () => number;
  readonly tokens: TokenService;
  /** Console sessions and one-time sign-in links. */
  readonly sessions: SessionService;
  readonly workspaces: WorkspaceService;
  readonly models: ModelService;
  readonly pipelines: PipelineService;
  readonly deployments: DeploymentManager;
  /** The inference use case both inference endpoints (`/v1`, Open Inference `/v2`) call. */
  readonly inference: InferenceService;
  /** Connections: sealed details, workspace scoping, audited unmasked reads. */
  readonly connections: ConnectionService;
  /** The connections store, for the admin audit trail (`listAudit`). */
  readonly connectionStore: ConnectionStore;
  /** Every inference's rows (appended unless `config.inferenceLogs` is off; always readable). */
  readonly inferenceLogs: InferenceLogs;
  /** Where uploads (models, orchestration zips) are received. */
  readonly blobs: BlobStore;
  /** Orchestrations: validated uploads and background packaging. */
  readonly packager: Packager;
  readonly orchestrationStore: OrchestrationStore;
  /** Tasks, their runs and run logs. */
  readonly tasks: TaskService;
  /** Connection values each task run read, hidden in that run's log. */
  readonly runSecrets: RunSecrets;
  /** The Python client this server serves at `/sdk/python/` (null when the package was built without it). */
  readonly pythonSdk: PythonSdk | null;
  /** How task runs are isolated. */
  readonly runIsolation: RunIsolation;
  /** Prometheus metrics (`GET /metrics`). */
  readonly metrics: ServerMetrics;
  /** The recent history of the metrics, for the console (`GET /v1/metrics/window`). */
  readonly metricsWindow: MetricsWindow;
  /** Decodes inference bodies off the event loop, under a deadline. */
  readonly decoder: DecodePool;
  /** The memory budget of inference bodies held at once. */
  readonly bodyBudget: BodyBudget;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on every route but health. */
    principal: Principal | null;
    /** On inference requests: the serving pipeline that answered (for the metrics); null until found. */
    servedPipeline: { workspaceId: number; name: string } | null;
  }
}

/** The authenticated principal of a request (routes run after the auth hook). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new ApiError('unauthenticated', 'Missing bearer token.');
  return req.principal;
}

/**
 * Parses `:workspaceId` strictly (`parseNumericId`: `0x2`, `1e3`, `02` … are `invalid_request`,
 * never another workspace) and checks the caller may see it (else it does not exist for them).
 */
export async function workspaceIdOf(ctx: ServerContext, req: FastifyRequest): Promise<number> {
  return (await ctx.workspaces.getById(principalOf(req), workspaceIdParam(req))).id;
}

/** `:workspaceId` of a request, parsed strictly (see {@link parseNumericId}); not checked against the caller. */
export function workspaceIdParam(req: FastifyRequest): number {
  return parseNumericId((req.params as { workspaceId?: string }).workspaceId, 'Workspace id');
}
