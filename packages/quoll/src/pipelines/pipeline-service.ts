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
   * Persists the draft steps as a new version and loads it. With `wait`, answers once the
   * version is Running or has failed (then with the reason in `status.details`).
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
    const stepModels = await this.stepModels(workspaceId, p.steps);
    const version = await this.store.insertPipelineVersion(p.id, randomUUID(), p.steps, this.iso());
    await this.store.upsertDeployment({
      pipelineId: p.id,
      version: version.version,
      config,
      deployedAt: this.iso(),
    });
    const done = this.deployments.deploy(p, version, stepModels, config);
    if (wait) await done;
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

  /** Re-deploys what was deployed when the server last stopped. */
  async restoreDeployments(): Promise<void> {
    for (const d of await this.store.listDeployments()) {
      const p = await this.store.getPipelineById(d.pipelineId);
      const v = await this.store.getPipelineVersion(d.version);
      if (!p || !v) continue;
      let steps: StepModel[];
      try {
        steps = await this.stepModels(p.workspaceId, v.steps);
      } catch {
        continue;
      }
      void this.deployments.deploy(p, v, steps, d.config);
    }
  }

  private async stepModels(workspaceId: number, steps: PipelineStepDto[]): Promise<StepModel[]> {
    const out: StepModel[] = [];
    for (const s of steps) {
      const m: ModelVersionDto = await this.models.get(workspaceId, s.model.name, s.model.version);
      out.push({
        name: m.name,
        version: m.version,
        sha: m.sha,
        path: this.models.pathOf(m),
        inputs: m.inputs,
        outputs: m.outputs,
        config: m.config,
      });
    }
    return out;
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
