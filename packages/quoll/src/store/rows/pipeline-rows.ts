import type { PipelineStepDto, PipelineVersionDto } from '@quoll/client/wire';
import type { DeploymentRecord, PipelineRecord } from '../../pipelines/index.js';

export interface PipelineRow {
  id: number;
  workspace_id: number;
  name: string;
  steps_json: string;
  created_at: string;
  updated_at: string;
}
export interface PipelineVersionRow {
  version: string;
  pipeline_id: number;
  steps_json: string;
  created_at: string;
}
export interface DeploymentRow {
  pipeline_id: number;
  version: string;
  config_json: string;
  deployed_at: string;
}

export const toPipeline = (r: PipelineRow): PipelineRecord => ({
  id: r.id,
  workspaceId: r.workspace_id,
  name: r.name,
  steps: JSON.parse(r.steps_json) as PipelineStepDto[],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
export const toPipelineVersion = (r: PipelineVersionRow): PipelineVersionDto => ({
  version: r.version,
  createdAt: r.created_at,
  steps: JSON.parse(r.steps_json) as PipelineStepDto[],
});
export const toDeployment = (r: DeploymentRow): DeploymentRecord => ({
  pipelineId: r.pipeline_id,
  version: r.version,
  config: JSON.parse(r.config_json) as DeploymentRecord['config'],
  deployedAt: r.deployed_at,
});
