import type { DeploymentConfigDto, PipelineStepDto, PipelineVersionDto } from '@quoll/client/wire';

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

/** What {@link PipelineStore.recordDeploy} persists. */
export interface NewDeploy {
  pipelineId: number;
  /** Id of the new pipeline version. */
  version: string;
  /** The steps the version runs (with each model's config snapshotted). */
  steps: PipelineStepDto[];
  config: DeploymentConfigDto;
  at: string;
}

/**
 * Storage port for pipelines, their versions and desired deployments. Every method is one
 * atomic step, safe when several processes (nodes) use the same store at once.
 */
export interface PipelineStore {
  /** Returns the existing pipeline when the name exists (idempotent build, also under races). */
  ensurePipeline(
    workspaceId: number,
    name: string,
    at: string,
  ): Promise<{ pipeline: PipelineRecord; created: boolean }>;
  getPipeline(workspaceId: number, name: string): Promise<PipelineRecord | null>;
  getPipelineById(id: number): Promise<PipelineRecord | null>;
  /** Pipelines oldest first, of one workspace or (without an id) of all. */
  listPipelines(workspaceId?: number): Promise<PipelineRecord[]>;
  /** Replaces the draft steps; null when the pipeline does not exist. */
  setPipelineSteps(id: number, steps: PipelineStepDto[], at: string): Promise<PipelineRecord | null>;
  /**
   * In one transaction: persists a new version — or, when the pipeline's newest version has
   * exactly these steps, reuses it (`reused`) — and makes it the pipeline's desired
   * deployment. Returns the version and the deployment it replaced (null on a first deploy).
   */
  recordDeploy(
    deploy: NewDeploy,
  ): Promise<{ version: PipelineVersionDto; previous: DeploymentRecord | null; reused: boolean }>;
  /**
   * Puts `previous` back as the desired deployment if the current one is still
   * `expectedVersion` (compare and set, so a newer deploy recorded meanwhile is never
   * overwritten); returns whether it did.
   */
  restoreDeploymentIfCurrent(
    pipelineId: number,
    expectedVersion: string,
    previous: DeploymentRecord,
  ): Promise<boolean>;
  getPipelineVersion(version: string): Promise<PipelineVersionDto | null>;
  /** Versions of one pipeline, newest first. */
  listPipelineVersions(pipelineId: number): Promise<PipelineVersionDto[]>;
  /** Version ids of several pipelines at once (one query), each list newest first. */
  listVersionIds(pipelineIds: readonly number[]): Promise<Map<number, string[]>>;
  deleteDeployment(pipelineId: number): Promise<void>;
  getDeployment(pipelineId: number): Promise<DeploymentRecord | null>;
  listDeployments(): Promise<DeploymentRecord[]>;
}
