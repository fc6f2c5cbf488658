import type { PipelineStepDto, PipelineVersionDto } from '@quoll/client/wire';
import type { DeploymentRecord, NewDeploy, PipelineRecord, PipelineStore } from '../../pipelines/index.js';
import type { SqliteHandle } from './sqlite-database.js';
import type { DeploymentRow, PipelineRow, PipelineVersionRow } from '../rows/index.js';
import { toDeployment, toPipeline, toPipelineVersion } from '../rows/index.js';

/** Newest first; version ids are time-ordered, so they break ties within one millisecond. */
const VERSION_ORDER = 'ORDER BY created_at DESC, version DESC';

/** {@link PipelineStore} on SQLite (tables `pipelines`, `pipeline_versions`, `deployments`, migration 0001). */
export class SqlitePipelineStore implements PipelineStore {
  constructor(private readonly db: SqliteHandle) {}

  async ensurePipeline(
    workspaceId: number,
    name: string,
    at: string,
  ): Promise<{ pipeline: PipelineRecord; created: boolean }> {
    const inserted = this.db
      .prepare(
        `INSERT INTO pipelines (workspace_id, name, steps_json, created_at, updated_at) VALUES (?, ?, '[]', ?, ?)
         ON CONFLICT DO NOTHING RETURNING *`,
      )
      .get(workspaceId, name, at, at) as PipelineRow | undefined;
    if (inserted) return { pipeline: toPipeline(inserted), created: true };
    const p = await this.getPipeline(workspaceId, name);
    if (!p) throw new Error(`pipeline ${name} neither inserted nor found`);
    return { pipeline: p, created: false };
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

  async setPipelineSteps(id: number, steps: PipelineStepDto[], at: string): Promise<PipelineRecord | null> {
    const r = this.db
      .prepare('UPDATE pipelines SET steps_json = ?, updated_at = ? WHERE id = ? RETURNING *')
      .get(JSON.stringify(steps), at, id) as PipelineRow | undefined;
    return r ? toPipeline(r) : null;
  }

  async recordDeploy(
    d: NewDeploy,
  ): Promise<{ version: PipelineVersionDto; previous: DeploymentRecord | null; reused: boolean }> {
    return this.db.transaction(() => {
      const stepsJson = JSON.stringify(d.steps);
      const newest = this.db
        .prepare(`SELECT * FROM pipeline_versions WHERE pipeline_id = ? ${VERSION_ORDER} LIMIT 1`)
        .get(d.pipelineId) as PipelineVersionRow | undefined;
      const reused = newest !== undefined && newest.steps_json === stepsJson;
      const version: PipelineVersionDto = reused
        ? toPipelineVersion(newest)
        : { version: d.version, steps: d.steps, createdAt: d.at };
      if (!reused) {
        this.db
          .prepare(
            'INSERT INTO pipeline_versions (version, pipeline_id, steps_json, created_at) VALUES (?, ?, ?, ?)',
          )
          .run(d.version, d.pipelineId, stepsJson, d.at);
      }
      this.db.prepare('UPDATE pipelines SET updated_at = ? WHERE id = ?').run(d.at, d.pipelineId);
      const prev = this.db.prepare('SELECT * FROM deployments WHERE pipeline_id = ?').get(d.pipelineId) as
        DeploymentRow | undefined;
      this.db
        .prepare(
          `INSERT INTO deployments (pipeline_id, version, config_json, deployed_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (pipeline_id) DO UPDATE SET version = excluded.version, config_json = excluded.config_json, deployed_at = excluded.deployed_at`,
        )
        .run(d.pipelineId, version.version, JSON.stringify(d.config), d.at);
      return { version, previous: prev ? toDeployment(prev) : null, reused };
    })();
  }

  async restoreDeploymentIfCurrent(
    pipelineId: number,
    expectedVersion: string,
    previous: DeploymentRecord,
  ): Promise<boolean> {
    const r = this.db
      .prepare(
        'UPDATE deployments SET version = ?, config_json = ?, deployed_at = ? WHERE pipeline_id = ? AND version = ?',
      )
      .run(
        previous.version,
        JSON.stringify(previous.config),
        previous.deployedAt,
        pipelineId,
        expectedVersion,
      );
    return r.changes > 0;
  }

  async getPipelineVersion(version: string): Promise<PipelineVersionDto | null> {
    const r = this.db.prepare('SELECT * FROM pipeline_versions WHERE version = ?').get(version) as
      PipelineVersionRow | undefined;
    return r ? toPipelineVersion(r) : null;
  }

  async listPipelineVersions(pipelineId: number): Promise<PipelineVersionDto[]> {
    return (
      this.db
        .prepare(`SELECT * FROM pipeline_versions WHERE pipeline_id = ? ${VERSION_ORDER}`)
        .all(pipelineId) as PipelineVersionRow[]
    ).map(toPipelineVersion);
  }

  async listVersionIds(pipelineIds: readonly number[]): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>(pipelineIds.map((id) => [id, []]));
    if (pipelineIds.length === 0) return out;
    const rows = this.db
      .prepare(
        `SELECT pipeline_id, version FROM pipeline_versions WHERE pipeline_id IN (SELECT value FROM json_each(?))
         ORDER BY pipeline_id, created_at DESC, version DESC`,
      )
      .all(JSON.stringify(pipelineIds)) as { pipeline_id: number; version: string }[];
    for (const r of rows) out.get(r.pipeline_id)?.push(r.version);
    return out;
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
    return (this.db.prepare('SELECT * FROM deployments ORDER BY pipeline_id').all() as DeploymentRow[]).map(
      toDeployment,
    );
  }
}
