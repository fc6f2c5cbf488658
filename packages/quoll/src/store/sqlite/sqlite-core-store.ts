import type {
  ModelConfigDto,
  ModelVersionDto,
  PipelineStepDto,
  PipelineVersionDto,
  TensorInfoDto,
  WorkspaceDto,
} from '@quoll/client/wire';
import { ApiError } from '../../server/api-error.js';
import type {
  DeploymentRecord,
  ModelStore,
  NewModelVersion,
  PipelineRecord,
  PipelineStore,
  TokenRecord,
  TokenStore,
  WorkspaceStore,
} from '../core-store.js';
import type { SqliteHandle } from './sqlite-database.js';

interface WorkspaceRow {
  id: number;
  name: string;
  created_at: string;
  is_default: number;
}
interface TokenRow {
  id: string;
  token_hash: string;
  kind: 'admin' | 'workspace';
  workspace_id: number | null;
  subject: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}
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
interface PipelineRow {
  id: number;
  workspace_id: number;
  name: string;
  steps_json: string;
  created_at: string;
  updated_at: string;
}
interface PipelineVersionRow {
  version: string;
  pipeline_id: number;
  steps_json: string;
  created_at: string;
}
interface DeploymentRow {
  pipeline_id: number;
  version: string;
  config_json: string;
  deployed_at: string;
}

const toWorkspace = (r: WorkspaceRow): WorkspaceDto => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at,
  isDefault: r.is_default === 1,
});
const toToken = (r: TokenRow): TokenRecord => ({
  id: r.id,
  tokenHash: r.token_hash,
  kind: r.kind,
  workspaceId: r.workspace_id,
  subject: r.subject,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});
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
const toPipeline = (r: PipelineRow): PipelineRecord => ({
  id: r.id,
  workspaceId: r.workspace_id,
  name: r.name,
  steps: JSON.parse(r.steps_json) as PipelineStepDto[],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const toPipelineVersion = (r: PipelineVersionRow): PipelineVersionDto => ({
  version: r.version,
  createdAt: r.created_at,
  steps: JSON.parse(r.steps_json) as PipelineStepDto[],
});
const toDeployment = (r: DeploymentRow): DeploymentRecord => ({
  pipelineId: r.pipeline_id,
  version: r.version,
  config: JSON.parse(r.config_json) as DeploymentRecord['config'],
  deployedAt: r.deployed_at,
});

/**
 * SQLite implementation of the core metadata ports. better-sqlite3 is synchronous; the
 * methods are async so that a PostgreSQL store can implement the same interface.
 */
export class SqliteCoreStore implements WorkspaceStore, TokenStore, ModelStore, PipelineStore {
  constructor(private readonly db: SqliteHandle) {}

  // -- workspaces
  async createWorkspace(name: string, createdAt: string, isDefault = false): Promise<WorkspaceDto> {
    try {
      const info = this.db
        .prepare('INSERT INTO workspaces (name, created_at, is_default) VALUES (?, ?, ?)')
        .run(name, createdAt, isDefault ? 1 : 0);
      return toWorkspace({
        id: Number(info.lastInsertRowid),
        name,
        created_at: createdAt,
        is_default: isDefault ? 1 : 0,
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new ApiError(
          'workspace_exists',
          `A workspace named "${name}" already exists; use getWorkspace("${name}") to open it.`,
          {
            name,
          },
        );
      }
      throw err;
    }
  }
  async getWorkspaceById(id: number): Promise<WorkspaceDto | null> {
    const r = this.db.prepare('SELECT * FROM workspaces WHERE id = ?').get(id) as WorkspaceRow | undefined;
    return r ? toWorkspace(r) : null;
  }
  async getWorkspaceByName(name: string): Promise<WorkspaceDto | null> {
    const r = this.db.prepare('SELECT * FROM workspaces WHERE name = ?').get(name) as
      WorkspaceRow | undefined;
    return r ? toWorkspace(r) : null;
  }
  async listWorkspaces(): Promise<WorkspaceDto[]> {
    return (this.db.prepare('SELECT * FROM workspaces ORDER BY id').all() as WorkspaceRow[]).map(toWorkspace);
  }
  async getDefaultWorkspace(): Promise<WorkspaceDto | null> {
    const r = this.db.prepare('SELECT * FROM workspaces WHERE is_default = 1 ORDER BY id LIMIT 1').get() as
      WorkspaceRow | undefined;
    return r ? toWorkspace(r) : null;
  }

  // -- tokens
  async insertToken(t: TokenRecord): Promise<void> {
    this.db
      .prepare(
        'INSERT INTO api_tokens (id, token_hash, kind, workspace_id, subject, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(t.id, t.tokenHash, t.kind, t.workspaceId, t.subject, t.createdAt, t.expiresAt, t.revokedAt);
  }
  async findTokenByHash(tokenHash: string): Promise<TokenRecord | null> {
    const r = this.db.prepare('SELECT * FROM api_tokens WHERE token_hash = ?').get(tokenHash) as
      TokenRow | undefined;
    return r ? toToken(r) : null;
  }
  async revokeToken(id: string, at: string): Promise<void> {
    this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id);
  }
  async revokeTokensBySubjectPrefix(
    prefix: string,
    at: string,
    keepSubjects: readonly string[] = [],
  ): Promise<number> {
    const keep = new Set(keepSubjects);
    const rows = this.db
      .prepare('SELECT id, subject FROM api_tokens WHERE revoked_at IS NULL AND substr(subject, 1, ?) = ?')
      .all(prefix.length, prefix) as { id: string; subject: string }[];
    const revoke = this.db.prepare(
      'UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL',
    );
    let n = 0;
    this.db.transaction(() => {
      for (const r of rows) if (!keep.has(r.subject)) n += revoke.run(at, r.id).changes;
    })();
    return n;
  }
  async setTokenExpiry(id: string, expiresAt: string): Promise<void> {
    this.db
      .prepare('UPDATE api_tokens SET expires_at = ? WHERE id = ? AND revoked_at IS NULL')
      .run(expiresAt, id);
  }

  // -- models
  async insertModelVersion(m: NewModelVersion): Promise<ModelVersionDto> {
    const info = this.db
      .prepare(
        `INSERT INTO models (workspace_id, name, version, sha, file_name, size_bytes, framework, inputs_json, outputs_json, config_json, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'onnx', ?, ?, ?, ?)`,
      )
      .run(
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
      );
    return { ...m, id: Number(info.lastInsertRowid), framework: 'onnx' };
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
  async setModelConfig(version: string, config: ModelConfigDto): Promise<ModelVersionDto> {
    this.db
      .prepare('UPDATE models SET config_json = ? WHERE version = ?')
      .run(JSON.stringify(config), version);
    const m = await this.getModelVersionByVersion(version);
    if (!m) throw new ApiError('model_not_found', `No model version ${version} exists.`, { version });
    return m;
  }

  // -- pipelines
  async ensurePipeline(
    workspaceId: number,
    name: string,
    at: string,
  ): Promise<{ pipeline: PipelineRecord; created: boolean }> {
    const info = this.db
      .prepare(
        'INSERT INTO pipelines (workspace_id, name, steps_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      )
      .run(workspaceId, name, '[]', at, at);
    const p = await this.getPipeline(workspaceId, name);
    if (!p) throw new Error(`pipeline ${name} vanished after insert`);
    return { pipeline: p, created: info.changes === 1 };
  }
  async getPipeline(workspaceId: number, name: string): Promise<PipelineRecord | null> {
    const r = this.db
      .prepare('SELECT * FROM pipelines WHERE workspace_id = ? AND name = ?')
      .get(workspaceId, name) as PipelineRow | undefined;
    return r ? toPipeline(r) : null;
  }
  async getPipelineById(id: number): Promise<PipelineRecord | null> {
    const r = this.db.prepare('SELECT * FROM pipelines WHERE id = ?').get(id) as PipelineRow | undefined;
    return r ? toPipeline(r) : null;
  }
  async listPipelines(workspaceId?: number): Promise<PipelineRecord[]> {
    const rows = (
      workspaceId === undefined
        ? this.db.prepare('SELECT * FROM pipelines ORDER BY id').all()
        : this.db.prepare('SELECT * FROM pipelines WHERE workspace_id = ? ORDER BY id').all(workspaceId)
    ) as PipelineRow[];
    return rows.map(toPipeline);
  }
  async setPipelineSteps(id: number, steps: PipelineStepDto[], at: string): Promise<PipelineRecord> {
    this.db
      .prepare('UPDATE pipelines SET steps_json = ?, updated_at = ? WHERE id = ?')
      .run(JSON.stringify(steps), at, id);
    const p = await this.getPipelineById(id);
    if (!p) throw new Error(`pipeline ${id} vanished`);
    return p;
  }
  async insertPipelineVersion(
    pipelineId: number,
    version: string,
    steps: PipelineStepDto[],
    at: string,
  ): Promise<PipelineVersionDto> {
    this.db.transaction(() => {
      this.db
        .prepare(
          'INSERT INTO pipeline_versions (version, pipeline_id, steps_json, created_at) VALUES (?, ?, ?, ?)',
        )
        .run(version, pipelineId, JSON.stringify(steps), at);
      this.db.prepare('UPDATE pipelines SET updated_at = ? WHERE id = ?').run(at, pipelineId);
    })();
    return { version, steps, createdAt: at };
  }
  async getPipelineVersion(version: string): Promise<PipelineVersionDto | null> {
    const r = this.db.prepare('SELECT * FROM pipeline_versions WHERE version = ?').get(version) as
      PipelineVersionRow | undefined;
    return r ? toPipelineVersion(r) : null;
  }
  async listPipelineVersions(pipelineId: number): Promise<PipelineVersionDto[]> {
    return (
      this.db
        .prepare('SELECT * FROM pipeline_versions WHERE pipeline_id = ? ORDER BY created_at DESC, rowid DESC')
        .all(pipelineId) as PipelineVersionRow[]
    ).map(toPipelineVersion);
  }
  async upsertDeployment(d: DeploymentRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO deployments (pipeline_id, version, config_json, deployed_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (pipeline_id) DO UPDATE SET version = excluded.version, config_json = excluded.config_json, deployed_at = excluded.deployed_at`,
      )
      .run(d.pipelineId, d.version, JSON.stringify(d.config), d.deployedAt);
  }
  async deleteDeployment(pipelineId: number): Promise<void> {
    this.db.prepare('DELETE FROM deployments WHERE pipeline_id = ?').run(pipelineId);
  }
  async getDeployment(pipelineId: number): Promise<DeploymentRecord | null> {
    const r = this.db.prepare('SELECT * FROM deployments WHERE pipeline_id = ?').get(pipelineId) as
      DeploymentRow | undefined;
    return r ? toDeployment(r) : null;
  }
  async listDeployments(): Promise<DeploymentRecord[]> {
    return (this.db.prepare('SELECT * FROM deployments').all() as DeploymentRow[]).map(toDeployment);
  }
}

/** Whether a better-sqlite3 error is a UNIQUE constraint violation. */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
