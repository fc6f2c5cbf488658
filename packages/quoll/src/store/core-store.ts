import type {
  DeploymentConfigDto,
  ModelConfigDto,
  ModelVersionDto,
  PipelineStepDto,
  PipelineVersionDto,
  TensorInfoDto,
  WorkspaceDto,
} from '@quoll/client/wire';

/** Who a request acts as, resolved from its bearer token. */
export type Principal =
  | { kind: 'admin'; subject: string; tokenId: string }
  | { kind: 'workspace'; workspaceId: number; subject: string; tokenId: string };

/** A stored API token (only its hash is kept). */
export interface TokenRecord {
  id: string;
  tokenHash: string;
  kind: 'admin' | 'workspace';
  workspaceId: number | null;
  subject: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

/** Workspaces. Names are unique per instance. */
export interface WorkspaceStore {
  /** Creates a workspace; throws `ApiError('workspace_exists')` on a duplicate name. */
  createWorkspace(name: string, createdAt: string, isDefault?: boolean): Promise<WorkspaceDto>;
  getWorkspaceById(id: number): Promise<WorkspaceDto | null>;
  getWorkspaceByName(name: string): Promise<WorkspaceDto | null>;
  listWorkspaces(): Promise<WorkspaceDto[]>;
  getDefaultWorkspace(): Promise<WorkspaceDto | null>;
}

/** API tokens. */
export interface TokenStore {
  insertToken(token: TokenRecord): Promise<void>;
  findTokenByHash(tokenHash: string): Promise<TokenRecord | null>;
  revokeToken(id: string, at: string): Promise<void>;
  /**
   * Revokes every unrevoked token whose subject starts with `prefix`, except those whose
   * subject is in `keepSubjects`; returns how many were revoked.
   */
  revokeTokensBySubjectPrefix(prefix: string, at: string, keepSubjects?: readonly string[]): Promise<number>;
  /** Sets the expiry of an unrevoked token (ISO time). */
  setTokenExpiry(id: string, expiresAt: string): Promise<void>;
}

/** What is recorded for a new model version. */
export interface NewModelVersion {
  workspaceId: number;
  name: string;
  version: string;
  sha: string;
  fileName: string;
  sizeBytes: number;
  inputs: TensorInfoDto[];
  outputs: TensorInfoDto[];
  config: ModelConfigDto;
  createdAt: string;
}

/** Model versions. The same name uploaded again is a new version. */
export interface ModelStore {
  insertModelVersion(model: NewModelVersion): Promise<ModelVersionDto>;
  /** The newest version of `name`, or the given version. */
  getModelVersion(workspaceId: number, name: string, version?: string): Promise<ModelVersionDto | null>;
  getModelVersionByVersion(version: string): Promise<ModelVersionDto | null>;
  /** Every version in the workspace, newest first. */
  listModelVersions(workspaceId: number): Promise<ModelVersionDto[]>;
  setModelConfig(version: string, config: ModelConfigDto): Promise<ModelVersionDto>;
}

/** A pipeline row as stored. */
export interface PipelineRecord {
  id: number;
  workspaceId: number;
  name: string;
  steps: PipelineStepDto[];
  createdAt: string;
  updatedAt: string;
}

/** The persisted desired deployment of a pipeline. */
export interface DeploymentRecord {
  pipelineId: number;
  version: string;
  config: DeploymentConfigDto;
  deployedAt: string;
}

/** Pipelines, their versions and desired deployments. */
export interface PipelineStore {
  /** Returns the existing pipeline when the name exists (idempotent build). */
  ensurePipeline(
    workspaceId: number,
    name: string,
    at: string,
  ): Promise<{ pipeline: PipelineRecord; created: boolean }>;
  getPipeline(workspaceId: number, name: string): Promise<PipelineRecord | null>;
  getPipelineById(id: number): Promise<PipelineRecord | null>;
  listPipelines(workspaceId?: number): Promise<PipelineRecord[]>;
  setPipelineSteps(id: number, steps: PipelineStepDto[], at: string): Promise<PipelineRecord>;
  /** Persists a new version with the given steps. */
  insertPipelineVersion(
    pipelineId: number,
    version: string,
    steps: PipelineStepDto[],
    at: string,
  ): Promise<PipelineVersionDto>;
  getPipelineVersion(version: string): Promise<PipelineVersionDto | null>;
  /** Versions, newest first. */
  listPipelineVersions(pipelineId: number): Promise<PipelineVersionDto[]>;
  upsertDeployment(deployment: DeploymentRecord): Promise<void>;
  deleteDeployment(pipelineId: number): Promise<void>;
  getDeployment(pipelineId: number): Promise<DeploymentRecord | null>;
  listDeployments(): Promise<DeploymentRecord[]>;
}
