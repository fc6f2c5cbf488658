import { randomUUID } from 'node:crypto';
import type {
  DeploymentConfigDto,
  ModelVersionDto,
  PipelineDto,
  PipelineStatusDto,
  PipelineStepDto,
  PipelineVersionDto,
} from '@quoll/client/wire';
import type { StepModel } from '../inference/index.js';
import type { ModelService } from '../models/index.js';
import { ApiError } from '../server/api-error.js';
import type { PipelineRecord, PipelineStore } from '../store/index.js';
import { validateName } from '../validation/index.js';
import type { DeploymentManager } from './deployment-manager.js';

/** A step as the API receives it: which model version to run. */
export interface StepInput {
  modelName: string;
  modelVersion: string;
}

/** Pipelines: draft steps, versions, deploy/undeploy and status. */
export class PipelineService {
  constructor(
    private readonly store: PipelineStore,
    private readonly models: ModelService,
    private readonly deployments: DeploymentManager,
    private readonly now: () => number,
  ) {}

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  /** Creates the pipeline, or returns the existing one with that name. */
  async build(workspaceId: number, name: unknown): Promise<PipelineDto> {
    const { pipeline } = await this.store.ensurePipeline(
      workspaceId,
      validateName('pipeline', name),
      this.iso(),
    );
    return this.toDto(pipeline);
  }

  async get(workspaceId: number, name: string): Promise<PipelineDto> {
    return this.toDto(await this.record(workspaceId, name));
  }

  async list(workspaceId: number): Promise<PipelineDto[]> {
    return Promise.all((await this.store.listPipelines(workspaceId)).map((p) => this.toDto(p)));
  }

  /** Replaces the draft steps; every model version must exist in the workspace. */
  async setSteps(workspaceId: number, name: string, steps: StepInput[]): Promise<PipelineDto> {
    const p = await this.record(workspaceId, name);
    const resolved: PipelineStepDto[] = [];
    for (const s of steps) {
      const m = await this.models.get(workspaceId, s.modelName, s.modelVersion);
      resolved.push({ model: { name: m.name, version: m.version, sha: m.sha } });
    }
    return this.toDto(await this.store.setPipelineSteps(p.id, resolved, this.iso()));
  }

  async versions(workspaceId: number, name: string): Promise<PipelineVersionDto[]> {
    return this.store.listPipelineVersions((await this.record(workspaceId, name)).id);
  }

  /**
   * Persists the draft steps as a new version, with each model's current config (so a later
   * `configure()` does not change what this version runs), and loads it. With `wait`, answers
   * once the load has settled: `Running` on the new version, `Error` with the reason (first
   * deploy), or — when a redeploy of a running pipeline fails — still `Running` on the old
   * version with `details` saying why the new one failed.
   */
  async deploy(
    workspaceId: number,
    name: string,
    config: DeploymentConfigDto,
    wait: boolean,
  ): Promise<PipelineStatusDto> {
    const p = await this.record(workspaceId, name);
    if (p.steps.length === 0) {
      throw new ApiError(
        'invalid_step',
        `Pipeline "${name}" has no steps; add one with addModelStep(model) before deploy().`,
        { name },
      );
    }
    const models = await this.stepVersions(workspaceId, p.steps);
    const snapshot: PipelineStepDto[] = models.map((m) => ({
      model: { name: m.name, version: m.version, sha: m.sha },
      config: m.config,
    }));
    const version = await this.store.insertPipelineVersion(p.id, randomUUID(), snapshot, this.iso());
    const previous = await this.store.getDeployment(p.id);
    await this.store.upsertDeployment({
      pipelineId: p.id,
      version: version.version,
      config,
      deployedAt: this.iso(),
    });
    const done = this.deployments
      .deploy(p, version, this.stepModels(models, snapshot), config)
      .then(async (outcome) => {
        // A redeploy that failed leaves the old version serving: it stays the one a restart
        // restores (unless a newer deploy has been recorded meanwhile).
        if (outcome.result === 'failed' && outcome.stillServing !== null && previous !== null) {
          const current = await this.store.getDeployment(p.id);
          if (current?.version === version.version) await this.store.upsertDeployment(previous);
        }
      });
    if (wait) await done;
    else void done.catch(() => undefined);
    return this.deployments.status(p.id);
  }

  async undeploy(workspaceId: number, name: string): Promise<PipelineStatusDto> {
    const p = await this.record(workspaceId, name);
    await this.store.deleteDeployment(p.id);
    await this.deployments.undeploy(p.id);
    return this.deployments.status(p.id);
  }

  async status(workspaceId: number, name: string): Promise<PipelineStatusDto> {
    return this.deployments.status((await this.record(workspaceId, name)).id);
  }

  /**
   * Registers what was deployed when the server last stopped and starts loading it. Resolves
   * once every deployment is registered (`Starting`, or `Error` with the reason when its
   * version or a model is gone); the models load in the background.
   */
  async restoreDeployments(): Promise<void> {
    for (const d of await this.store.listDeployments()) {
      const p = await this.store.getPipelineById(d.pipelineId);
      if (!p) continue;
      const v = await this.store.getPipelineVersion(d.version);
      if (!v) {
        this.deployments.fail(p, d.version, `version ${d.version} to restore no longer exists; deploy again`);
        continue;
      }
      let steps: StepModel[];
      try {
        steps = this.stepModels(await this.stepVersions(p.workspaceId, v.steps), v.steps);
      } catch (err) {
        this.deployments.fail(
          p,
          v.version,
          `failed to restore version ${v.version}: ${err instanceof Error ? err.message : String(err)}`,
        );
        continue;
      }
      void this.deployments.deploy(p, v, steps, d.config);
    }
  }

  /** The model version of every step (each must still exist in the workspace). */
  private async stepVersions(workspaceId: number, steps: PipelineStepDto[]): Promise<ModelVersionDto[]> {
    const out: ModelVersionDto[] = [];
    for (const s of steps) out.push(await this.models.get(workspaceId, s.model.name, s.model.version));
    return out;
  }

  /**
   * What the engine loads for each step. The config is the one the version snapshotted;
   * versions persisted before snapshots existed fall back to the model's current config.
   */
  private stepModels(models: ModelVersionDto[], steps: PipelineStepDto[]): StepModel[] {
    return models.map((m, i) => ({
      name: m.name,
      version: m.version,
      sha: m.sha,
      path: this.models.pathOf(m),
      inputs: m.inputs,
      outputs: m.outputs,
      config: steps[i]?.config ?? m.config,
    }));
  }

  private async record(workspaceId: number, name: string): Promise<PipelineRecord> {
    const p = await this.store.getPipeline(workspaceId, name);
    if (!p) {
      throw new ApiError(
        'pipeline_not_found',
        `No pipeline named "${name}" in this workspace; create it with buildPipeline("${name}").`,
        {
          name,
        },
      );
    }
    return p;
  }

  private async toDto(p: PipelineRecord): Promise<PipelineDto> {
    const versions = await this.store.listPipelineVersions(p.id);
    return {
      id: p.id,
      name: p.name,
      workspaceId: p.workspaceId,
      createdAt: p.createdAt,
      updatedAt: p.updatedAt,
      steps: p.steps,
      versions: versions.map((v) => v.version),
      deployed: this.deployments.isDeployed(p.id),
      inferencePath: `/v1/workspaces/${p.workspaceId}/pipelines/${encodeURIComponent(p.name)}/infer`,
    };
  }
}
