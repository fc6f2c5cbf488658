import type { ModelConfigDto, ModelVersionDto, TensorInfoDto } from '@quoll/client/wire';

export interface ModelRow {
  id: number;
  workspace_id: number;
  name: string;
  version: string;
  sha: string;
  file_name: string;
  size_bytes: number;
  inputs_json: string;
  outputs_json: string;
  config_json: string;
  created_at: string;
}

export const toModel = (r: ModelRow): ModelVersionDto => ({
  id: r.id,
  name: r.name,
  version: r.version,
  sha: r.sha,
  fileName: r.file_name,
  sizeBytes: r.size_bytes,
  workspaceId: r.workspace_id,
  framework: 'onnx',
  inputs: JSON.parse(r.inputs_json) as TensorInfoDto[],
  outputs: JSON.parse(r.outputs_json) as TensorInfoDto[],
  config: JSON.parse(r.config_json) as ModelConfigDto,
  createdAt: r.created_at,
});
