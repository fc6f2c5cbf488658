import type { NodeRecord, NodeRegistration, NodeRole, NodeStore } from '../../cluster/index.js';
import type { PostgresDatabase } from './postgres-database.js';

/** Epoch milliseconds of the database's clock: every node measures leases and heartbeats by it. */
export const PG_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

interface NodeRow {
  id: string;
  url: string;
  roles: string;
  status: NodeRecord['status'];
  started_at: number;
  last_seen: number;
}

export const toNodeRecord = (r: NodeRow): NodeRecord => ({
  id: r.id,
  url: r.url,
  roles: r.roles === '' ? [] : (r.roles.split(',') as NodeRole[]),
  status: r.status,
  startedAt: new Date(r.started_at).toISOString(),
  lastSeenAt: new Date(r.last_seen).toISOString(),
});

/** {@link NodeStore} on PostgreSQL (table `cluster_nodes`, migration 0011), timed by the database's clock. */
export class PostgresNodeStore implements NodeStore {
  constructor(private readonly db: PostgresDatabase) {}

  async registerNode(node: NodeRegistration): Promise<void> {
    await this.db.run(
      `INSERT INTO cluster_nodes (id, url, roles, status, started_at, last_seen, instance)
       VALUES ($1, $2, $3, 'up', ${PG_NOW_MS}, ${PG_NOW_MS}, $4)
       ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, roles = EXCLUDED.roles, status = 'up',
         started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen, instance = EXCLUDED.instance`,
      [node.id, node.url, node.roles.join(','), node.instance ?? null],
    );
  }

  async claimNodeId(
    node: NodeRegistration & { instance: string },
    staleAfterMs: number,
  ): Promise<NodeRecord | null> {
    const claimed = await this.db.rows<{ id: string }>(
      `INSERT INTO cluster_nodes (id, url, roles, status, started_at, last_seen, instance)
       VALUES ($1, $2, $3, 'up', ${PG_NOW_MS}, ${PG_NOW_MS}, $4)
       ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, roles = EXCLUDED.roles, status = 'up',
         started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen, instance = EXCLUDED.instance
       WHERE cluster_nodes.status <> 'up' OR cluster_nodes.instance = EXCLUDED.instance
          OR cluster_nodes.last_seen < ${PG_NOW_MS} - $5::bigint
       RETURNING id`,
      [node.id, node.url, node.roles.join(','), node.instance, staleAfterMs],
    );
    if (claimed.length > 0) return null;
    const holder = await this.db.one<NodeRow>('SELECT * FROM cluster_nodes WHERE id = $1', [node.id]);
    // Gone meanwhile (nothing deletes rows today): nobody holds it, and the next claim takes it.
    return holder ? toNodeRecord(holder) : null;
  }

  async heartbeat(nodeId: string, instance?: string): Promise<boolean> {
    const changed = await this.db.run(
      `UPDATE cluster_nodes SET last_seen = ${PG_NOW_MS}
       WHERE id = $1 AND status = 'up' AND ($2::text IS NULL OR instance = $2::text)`,
      [nodeId, instance ?? null],
    );
    return changed > 0;
  }

  async markLostNodes(timeoutMs: number): Promise<string[]> {
    const rows = await this.db.rows<{ id: string }>(
      `UPDATE cluster_nodes SET status = 'lost'
       WHERE status = 'up' AND last_seen < ${PG_NOW_MS} - $1::bigint RETURNING id`,
      [timeoutMs],
    );
    return rows.map((r) => r.id).sort();
  }

  async markStopped(nodeId: string, instance?: string): Promise<void> {
    await this.db.run(
      `UPDATE cluster_nodes SET status = 'stopped', last_seen = ${PG_NOW_MS}
       WHERE id = $1 AND ($2::text IS NULL OR instance = $2::text)`,
      [nodeId, instance ?? null],
    );
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = await this.db.rows<NodeRow>('SELECT * FROM cluster_nodes ORDER BY id');
    return rows.map(toNodeRecord);
  }
}
