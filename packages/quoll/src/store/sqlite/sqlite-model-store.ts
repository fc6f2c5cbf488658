import type { ModelConfigDto, ModelVersionDto, TensorInfoDto } from '@quoll/client/wire';
import type { ModelStore, NewModelVersion } from '../../models/index.js';
import type { SqliteHandle } from './sqlite-database.js';

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

/** {@link ModelStore} on SQLite (table `models`, migration 0001). */
export class SqliteModelStore implements ModelStore {
  constructor(private readonly db: SqliteHandle) {}

  async insertModelVersion(m: NewModelVersion): Promise<ModelVersionDto> {
    const row = this.db
      .prepare(
        `INSERT INTO models (workspace_id, name, version, sha, file_name, size_bytes, framework, inputs_json, outputs_json, config_json, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'onnx', ?, ?, ?, ?) RETURNING *`,
      )
      .get(
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
      ) as ModelRow;
    return toModel(row);
  }

  async getModelVersion(
    workspaceId: number,
    name: string,
    version?: string,
  ): Promise<ModelVersionDto | null> {
    const r = (
      version === undefined
        ? this.db
            .prepare('SELECT * FROM models WHERE workspace_id = ? AND name = ? ORDER BY id DESC LIMIT 1')
            .get(workspaceId, name)
        : this.db
            .prepare('SELECT * FROM models WHERE workspace_id = ? AND name = ? AND version = ?')
            .get(workspaceId, name, version)
    ) as ModelRow | undefined;
    return r ? toModel(r) : null;
  }

  async getModelVersionByVersion(version: string): Promise<ModelVersionDto | null> {
    const r = this.db.prepare('SELECT * FROM models WHERE version = ?').get(version) as ModelRow | undefined;
    return r ? toModel(r) : null;
  }

  async listModelVersions(workspaceId: number): Promise<ModelVersionDto[]> {
    return (
      this.db
        .prepare('SELECT * FROM models WHERE workspace_id = ? ORDER BY id DESC')
        .all(workspaceId) as ModelRow[]
    ).map(toModel);
  }

  async setModelConfig(version: string, config: ModelConfigDto): Promise<ModelVersionDto | null> {
    const r = this.db
      .prepare('UPDATE models SET config_json = ? WHERE version = ? RETURNING *')
      .get(JSON.stringify(config), version) as ModelRow | undefined;
    return r ? toModel(r) : null;
  }
}
