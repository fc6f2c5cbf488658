import type { FastifyRequest } from 'fastify';
import type { TokenService } from '../auth/index.js';
import type { BlobStore } from '../blobs/index.js';
import type { ServerConfig } from '../config/index.js';
import type { ConnectionService, ConnectionStore } from '../connections/index.js';
import type { InferenceLogStore } from '../logs/index.js';
import type { ModelService } from '../models/index.js';
import type { OrchestrationStore, Packager } from '../orchestrations/index.js';
import type { TaskService } from '../scheduler/index.js';
import type { DeploymentManager, PipelineService } from '../pipelines/index.js';
import type { Principal } from '../store/index.js';
import type { WorkspaceService } from '../workspaces/index.js';
import { ApiError } from './api-error.js';
import type { RunSecrets } from './run-secrets.js';

/** The services routes call; built once by the composition root. */
export interface ServerContext {
  readonly config: ServerConfig;
  readonly now: () => number;
  readonly tokens: TokenService;
  readonly workspaces: WorkspaceService;
  readonly models: ModelService;
  readonly pipelines: PipelineService;
  readonly deployments: DeploymentManager;
  /** Connections: sealed details, workspace scoping, audited unmasked reads. */
  readonly connections: ConnectionService;
  /** The connections store, for the admin audit trail (`listAudit`). */
  readonly connectionStore: ConnectionStore;
  /** Every inference's rows (appended unless `config.inferenceLogs` is off; always readable). */
  readonly inferenceLogs: InferenceLogStore;
  /** Where uploads (models, orchestration zips) are received. */
  readonly blobs: BlobStore;
  /** Orchestrations: validated uploads and background packaging. */
  readonly packager: Packager;
  readonly orchestrationStore: OrchestrationStore;
  /** Tasks, their runs and run logs. */
  readonly tasks: TaskService;
  /** Connection values each task run read, hidden in that run's log. */
  readonly runSecrets: RunSecrets;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on every route but health. */
    principal: Principal | null;
  }
}

/** The authenticated principal of a request (routes run after the auth hook). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new ApiError('unauthenticated', 'Missing bearer token.');
  return req.principal;
}

/** Parses `:workspaceId` and checks the caller may see it (else it does not exist for them). */
export async function workspaceIdOf(ctx: ServerContext, req: FastifyRequest): Promise<number> {
  const raw = (req.params as { workspaceId?: string }).workspaceId;
  const id = Number(raw);
  if (!Number.isInteger(id)) {
    throw new ApiError('invalid_request', `Workspace id "${String(raw)}" is not an integer.`);
  }
  return (await ctx.workspaces.getById(principalOf(req), id)).id;
}
