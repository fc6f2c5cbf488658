import type { ModelConfigDto, ModelVersionDto } from '@quoll/client/wire';
import type { ModelStore, NewModelVersion } from '../../models/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import type { ModelRow } from '../rows/index.js';
import { toModel } from '../rows/index.js';

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
