import type { PipelineStepDto, PipelineVersionDto } from '@quoll/client/wire';
import type { DeploymentRecord, NewDeploy, PipelineRecord, PipelineStore } from '../../pipelines/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import type { DeploymentRow, PipelineRow, PipelineVersionRow } from '../rows/index.js';
import { toDeployment, toPipeline, toPipelineVersion } from '../rows/index.js';

/** {@link PipelineStore} on PostgreSQL (tables `pipelines`, `pipeline_versions`, `deployments`, migration 0001). */
export class PostgresPipelineStore implements PipelineStore {
  constructor(private readonly db: PostgresDatabase) {}

  async ensurePipeline(
    workspaceId: number,
    name: string,
    at: string,
  ): Promise<{ pipeline: PipelineRecord; created: boolean }> {
    const inserted = await this.db.one<PipelineRow>(
      `INSERT INTO pipelines (workspace_id, name, steps_json, created_at, updated_at) VALUES ($1, $2, '[]', $3, $3)
       ON CONFLICT (workspace_id, name) DO NOTHING RETURNING *`,
      [workspaceId, name, at],
    );
    if (inserted) return { pipeline: toPipeline(inserted), created: true };
    const p = await this.getPipeline(workspaceId, name);
    if (!p) throw new Error(`pipeline ${name} neither inserted nor found`);
    return { pipeline: p, created: false };
  }

  async getPipeline(workspaceId: number, name: string): Promise<PipelineRecord | null> {
    const r = await this.db.one<PipelineRow>(
      'SELECT * FROM pipelines WHERE workspace_id = $1 AND name = $2',
      [workspaceId, name],
    );
    return r ? toPipeline(r) : null;
  }

  async getPipelineById(id: number): Promise<PipelineRecord | null> {
    const r = await this.db.one<PipelineRow>('SELECT * FROM pipelines WHERE id = $1', [id]);
    return r ? toPipeline(r) : null;
  }

  async listPipelines(workspaceId?: number): Promise<PipelineRecord[]> {
    const rows =
      workspaceId === undefined
        ? await this.db.rows<PipelineRow>('SELECT * FROM pipelines ORDER BY id')
        : await this.db.rows<PipelineRow>('SELECT * FROM pipelines WHERE workspace_id = $1 ORDER BY id', [
            workspaceId,
          ]);
    return rows.map(toPipeline);
  }

  async setPipelineSteps(id: number, steps: PipelineStepDto[], at: string): Promise<PipelineRecord | null> {
    const r = await this.db.one<PipelineRow>(
      'UPDATE pipelines SET steps_json = $1, updated_at = $2 WHERE id = $3 RETURNING *',
      [JSON.stringify(steps), at, id],
    );
    return r ? toPipeline(r) : null;
  }

  async recordDeploy(
    d: NewDeploy,
  ): Promise<{ version: PipelineVersionDto; previous: DeploymentRecord | null; reused: boolean }> {
    return this.db.transaction(async (sql) => {
      // Updating the pipeline row first locks it: deploys of one pipeline from several nodes
      // queue here, so each reads (as `previous`) the deployment the one before it wrote.
      await sql.run('UPDATE pipelines SET updated_at = $1 WHERE id = $2', [d.at, d.pipelineId]);
      const stepsJson = JSON.stringify(d.steps);
      const newest = await sql.one<PipelineVersionRow>(
        'SELECT * FROM pipeline_versions WHERE pipeline_id = $1 ORDER BY created_at DESC, version DESC LIMIT 1',
        [d.pipelineId],
      );
      const reused = newest !== null && newest.steps_json === stepsJson;
      const version: PipelineVersionDto = reused
        ? toPipelineVersion(newest)
        : { version: d.version, steps: d.steps, createdAt: d.at };
      if (!reused) {
        await sql.run(
          'INSERT INTO pipeline_versions (version, pipeline_id, steps_json, created_at) VALUES ($1, $2, $3, $4)',
          [d.version, d.pipelineId, stepsJson, d.at],
        );
      }
      const prev = await sql.one<DeploymentRow>('SELECT * FROM deployments WHERE pipeline_id = $1', [
        d.pipelineId,
      ]);
      await sql.run(
        `INSERT INTO deployments (pipeline_id, version, config_json, deployed_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (pipeline_id) DO UPDATE SET version = excluded.version, config_json = excluded.config_json, deployed_at = excluded.deployed_at`,
        [d.pipelineId, version.version, JSON.stringify(d.config), d.at],
      );
      return { version, previous: prev ? toDeployment(prev) : null, reused };
    });
  }

  async restoreDeploymentIfCurrent(
    pipelineId: number,
    expectedVersion: string,
    previous: DeploymentRecord,
  ): Promise<boolean> {
    const n = await this.db.run(
      'UPDATE deployments SET version = $1, config_json = $2, deployed_at = $3 WHERE pipeline_id = $4 AND version = $5',
      [previous.version, JSON.stringify(previous.config), previous.deployedAt, pipelineId, expectedVersion],
    );
    return n > 0;
  }

  async getPipelineVersion(version: string): Promise<PipelineVersionDto | null> {
    const r = await this.db.one<PipelineVersionRow>('SELECT * FROM pipeline_versions WHERE version = $1', [
      version,
    ]);
    return r ? toPipelineVersion(r) : null;
  }

  async listPipelineVersions(pipelineId: number): Promise<PipelineVersionDto[]> {
    return (
      await this.db.rows<PipelineVersionRow>(
        'SELECT * FROM pipeline_versions WHERE pipeline_id = $1 ORDER BY created_at DESC, version DESC',
        [pipelineId],
      )
    ).map(toPipelineVersion);
  }

  async listVersionIds(pipelineIds: readonly number[]): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>(pipelineIds.map((id) => [id, []]));
    if (pipelineIds.length === 0) return out;
    const rows = await this.db.rows<{ pipeline_id: number; version: string }>(
      `SELECT pipeline_id, version FROM pipeline_versions WHERE pipeline_id = ANY($1::int[])
       ORDER BY pipeline_id, created_at DESC, version DESC`,
      [[...pipelineIds]],
    );
    for (const r of rows) out.get(r.pipeline_id)?.push(r.version);
    return out;
  }

  async deleteDeployment(pipelineId: number): Promise<void> {
    await this.db.run('DELETE FROM deployments WHERE pipeline_id = $1', [pipelineId]);
  }

  async getDeployment(pipelineId: number): Promise<DeploymentRecord | null> {
    const r = await this.db.one<DeploymentRow>('SELECT * FROM deployments WHERE pipeline_id = $1', [
      pipelineId,
    ]);
    return r ? toDeployment(r) : null;
  }

  async listDeployments(): Promise<DeploymentRecord[]> {
    return (await this.db.rows<DeploymentRow>('SELECT * FROM deployments ORDER BY pipeline_id')).map(
      toDeployment,
    );
  }
}
