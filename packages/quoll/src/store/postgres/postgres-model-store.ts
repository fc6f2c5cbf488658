import type { ModelConfigDto, ModelVersionDto, TensorInfoDto } from '@quoll/client/wire';
import type { ModelStore, NewModelVersion } from '../../models/index.js';
import type { PostgresDatabase } from './postgres-database.js';

interface ModelRow {
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

const toModel = (r: ModelRow): ModelVersionDto => ({
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

/** {@link ModelStore} on PostgreSQL (table `models`, migration 0001). */
export class PostgresModelStore implements ModelStore {
  constructor(private readonly db: PostgresDatabase) {}

  async insertModelVersion(m: NewModelVersion): Promise<ModelVersionDto> {
    const row = await this.db.one<ModelRow>(
      `INSERT INTO models (workspace_id, name, version, sha, file_name, size_bytes, framework, inputs_json, outputs_json, config_json, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'onnx', $7, $8, $9, $10) RETURNING *`,
      [
        m.workspaceId,
        m.name,
        m.version,
        m.sha,
        m.fileName,
        m.sizeBytes,
        JSON.stringify(m.inputs),
        JSON.stringify(m.outputs),
        JSON.stringify(m.config),
        m.createdAt,
      ],
    );
    if (row === null) throw new Error('INSERT … RETURNING gave no row');
    return toModel(row);
  }

  async getModelVersion(
    workspaceId: number,
    name: string,
    version?: string,
  ): Promise<ModelVersionDto | null> {
    const r =
      version === undefined
        ? await this.db.one<ModelRow>(
            'SELECT * FROM models WHERE workspace_id = $1 AND name = $2 ORDER BY id DESC LIMIT 1',
            [workspaceId, name],
          )
        : await this.db.one<ModelRow>(
            'SELECT * FROM models WHERE workspace_id = $1 AND name = $2 AND version = $3',
            [workspaceId, name, version],
          );
    return r ? toModel(r) : null;
  }

  async getModelVersionByVersion(version: string): Promise<ModelVersionDto | null> {
    const r = await this.db.one<ModelRow>('SELECT * FROM models WHERE version = $1', [version]);
    return r ? toModel(r) : null;
  }

  async listModelVersions(workspaceId: number): Promise<ModelVersionDto[]> {
    return (
      await this.db.rows<ModelRow>('SELECT * FROM models WHERE workspace_id = $1 ORDER BY id DESC', [
        workspaceId,
      ])
    ).map(toModel);
  }

  async setModelConfig(version: string, config: ModelConfigDto): Promise<ModelVersionDto | null> {
    const r = await this.db.one<ModelRow>(
      'UPDATE models SET config_json = $1 WHERE version = $2 RETURNING *',
      [JSON.stringify(config), version],
    );
    return r ? toModel(r) : null;
  }
}
