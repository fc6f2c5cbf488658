import type { PipelineStatusName } from '@quoll/client/wire';
import type { NodeRecord } from '../../cluster/index.js';
import type { PlacementChanges, ReplicaRecord, ReplicaReport, ReplicaStore } from '../../pipelines/index.js';
import { planReplicaPlacement } from '../../pipelines/index.js';
import { PG_LOCK_NOT_AVAILABLE, sqlState } from './postgres-database.js';
import type { PostgresDatabase } from './postgres-database.js';
import { PG_NOW_MS } from './postgres-node-store.js';

interface ReplicaRow {
  pipeline_id: number;
  node_id: string;
  url: string | null;
  node_status: NodeRecord['status'] | null;
  status: PipelineStatusName;
  version: string | null;
  details_json: string;
  workers: number;
  placed_at: string;
  updated_at: string;
}

const toReplica = (r: ReplicaRow): ReplicaRecord => ({
  pipelineId: r.pipeline_id,
  nodeId: r.node_id,
  nodeUrl: r.url ?? '',
  // A row whose node row is gone (never, while nodes are not deleted) reads as lost.
  nodeStatus: r.node_status ?? 'lost',
  status: r.status,
  version: r.version,
  details: JSON.parse(r.details_json) as string[],
  workers: r.workers,
  placedAt: new Date(Number(r.placed_at)).toISOString(),
  updatedAt: new Date(Number(r.updated_at)).toISOString(),
});

const SELECT_REPLICAS = `SELECT r.pipeline_id, r.node_id, n.url, n.status AS node_status, r.status, r.version,
    r.details_json, r.workers, r.placed_at, r.updated_at
  FROM pipeline_replicas r LEFT JOIN cluster_nodes n ON n.id = r.node_id`;

/** {@link ReplicaStore} on PostgreSQL (table `pipeline_replicas`, migration 0012). */
export class PostgresReplicaStore implements ReplicaStore {
  constructor(private readonly db: PostgresDatabase) {}

  async rebalance(): Promise<PlacementChanges> {
    try {
      return await this.#place();
    } catch (err) {
      // Another node has held the placement lock past the lock timeout: it stalled inside its
      // placement (its transaction ends when the database's idle-in-transaction timeout
      // ends its session). Waiting on it would block this node's round, deploy() and stop();
      // this round places nothing and a later one (any node's, every few seconds) catches up.
      if (sqlState(err) === PG_LOCK_NOT_AVAILABLE) return { add: [], remove: [] };
      throw err;
    }
  }

  #place(): Promise<PlacementChanges> {
    return this.db.coordinate(async (sql) => {
      // One placement at a time in the whole cluster (keyed by schema: tests share a server).
      await sql.run(`SELECT pg_advisory_xact_lock(hashtext('quoll_replicas:' || current_schema()))`);
      const deployments = await sql.rows<{ pipeline_id: number; config_json: string }>(
        'SELECT pipeline_id, config_json FROM deployments',
      );
      const nodes = await sql.rows<{ id: string }>(
        `SELECT id FROM cluster_nodes WHERE status = 'up' AND 'inference' = ANY(string_to_array(roles, ','))`,
      );
      const current = await sql.rows<{ pipeline_id: number; node_id: string }>(
        'SELECT pipeline_id, node_id FROM pipeline_replicas',
      );
      const plan = planReplicaPlacement({
        deployments: deployments.map((d) => ({
          pipelineId: d.pipeline_id,
          replicas: (JSON.parse(d.config_json) as { replicas?: number }).replicas,
        })),
        nodes: nodes.map((n) => n.id),
        current: current.map((c) => ({ pipelineId: c.pipeline_id, nodeId: c.node_id })),
      });
      if (plan.remove.length > 0) {
        await sql.run(
          `DELETE FROM pipeline_replicas r USING unnest($1::int[], $2::text[]) AS x(pipeline_id, node_id)
           WHERE r.pipeline_id = x.pipeline_id AND r.node_id = x.node_id`,
          [plan.remove.map((s) => s.pipelineId), plan.remove.map((s) => s.nodeId)],
        );
      }
      if (plan.add.length > 0) {
        await sql.run(
          `INSERT INTO pipeline_replicas (pipeline_id, node_id, placed_at, status, version, details_json, workers, updated_at)
           SELECT x.pipeline_id, x.node_id, ${PG_NOW_MS}, 'Starting', NULL,
             '["placed on this node; waiting for it to load the pipeline"]', 0, ${PG_NOW_MS}
           FROM unnest($1::int[], $2::text[]) AS x(pipeline_id, node_id)
           ON CONFLICT (pipeline_id, node_id) DO NOTHING`,
          [plan.add.map((s) => s.pipelineId), plan.add.map((s) => s.nodeId)],
        );
      }
      return plan;
    });
  }

  async pipelinesOn(nodeId: string): Promise<number[]> {
    const rows = await this.db.rows<{ pipeline_id: number }>(
      'SELECT pipeline_id FROM pipeline_replicas WHERE node_id = $1 ORDER BY pipeline_id',
      [nodeId],
    );
    return rows.map((r) => r.pipeline_id);
  }

  async replicasOf(pipelineId: number): Promise<ReplicaRecord[]> {
    return (
      await this.db.rows<ReplicaRow>(`${SELECT_REPLICAS} WHERE r.pipeline_id = $1 ORDER BY r.node_id`, [
        pipelineId,
      ])
    ).map(toReplica);
  }

  async replicasByName(workspaceId: number, name: string): Promise<ReplicaRecord[]> {
    return (
      await this.db.rows<ReplicaRow>(
        `${SELECT_REPLICAS} JOIN pipelines p ON p.id = r.pipeline_id
         WHERE p.workspace_id = $1 AND p.name = $2 ORDER BY r.node_id`,
        [workspaceId, name],
      )
    ).map(toReplica);
  }

  async report(nodeId: string, reports: readonly ReplicaReport[]): Promise<void> {
    if (reports.length === 0) return;
    await this.db.run(
      // updated_at moves only when the state changes: a node reports every round, and status()
      // of an unchanged deployment answers the same twice (as on an embedded server).
      `UPDATE pipeline_replicas r SET status = x.status, version = x.version, details_json = x.details_json,
         workers = x.workers,
         updated_at = CASE WHEN (r.status, r.version, r.details_json, r.workers)
                                IS DISTINCT FROM (x.status, x.version, x.details_json, x.workers)
                           THEN ${PG_NOW_MS} ELSE r.updated_at END
       FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::int[])
         AS x(pipeline_id, status, version, details_json, workers)
       WHERE r.node_id = $1 AND r.pipeline_id = x.pipeline_id`,
      [
        nodeId,
        reports.map((r) => r.pipelineId),
        reports.map((r) => r.status),
        reports.map((r) => r.version),
        reports.map((r) => JSON.stringify(r.details)),
        reports.map((r) => r.workers),
      ],
    );
  }
}
