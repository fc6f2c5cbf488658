import type { ModelConfigDto, ModelVersionDto } from '@quoll/client/wire';
import type { ModelStore, NewModelVersion } from '../../models/index.js';
import type { SqliteHandle } from './sqlite-database.js';
import type { ModelRow } from '../rows/index.js';
import { toModel } from '../rows/index.js';

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
