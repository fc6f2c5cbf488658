import type { NodeRecord, NodeRegistration, NodeRole, NodeStore } from '../../cluster/index.js';
import type { Clock } from '../../clock/index.js';
import { systemClock } from '../../clock/index.js';
import type { SqliteHandle } from './sqlite-database.js';

interface NodeRow {
  id: string;
  url: string;
  roles: string;
  status: NodeRecord['status'];
  started_at: number;
  last_seen: number;
}

/** {@link NodeStore} of the embedded home (table `cluster_nodes`, migration 0011): its one node. */
export class SqliteNodeStore implements NodeStore {
  private readonly clock: Clock;

  constructor(
    private readonly db: SqliteHandle,
    options: { clock?: Clock } = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  async registerNode(node: NodeRegistration): Promise<void> {
    const now = this.clock.now();
    this.db
      .prepare(
        `INSERT INTO cluster_nodes (id, url, roles, status, started_at, last_seen, instance) VALUES (?, ?, ?, 'up', ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, roles = excluded.roles, status = 'up',
           started_at = excluded.started_at, last_seen = excluded.last_seen, instance = excluded.instance`,
      )
      .run(node.id, node.url, node.roles.join(','), now, now, node.instance ?? null);
    return Promise.resolve();
  }

  async claimNodeId(
    node: NodeRegistration & { instance: string },
    staleAfterMs: number,
  ): Promise<NodeRecord | null> {
    const now = this.clock.now();
    const claimed = this.db
      .prepare(
        `INSERT INTO cluster_nodes (id, url, roles, status, started_at, last_seen, instance) VALUES (?, ?, ?, 'up', ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, roles = excluded.roles, status = 'up',
           started_at = excluded.started_at, last_seen = excluded.last_seen, instance = excluded.instance
         WHERE cluster_nodes.status <> 'up' OR cluster_nodes.instance IS excluded.instance
            OR cluster_nodes.last_seen < ?
         RETURNING id`,
      )
      .get(node.id, node.url, node.roles.join(','), now, now, node.instance, now - staleAfterMs);
    if (claimed !== undefined) return Promise.resolve(null);
    const holder = this.db.prepare('SELECT * FROM cluster_nodes WHERE id = ?').get(node.id) as
      NodeRow | undefined;
    return Promise.resolve(holder === undefined ? null : toRecord(holder));
  }

  async heartbeat(nodeId: string, instance?: string): Promise<boolean> {
    const info = this.db
      .prepare(
        "UPDATE cluster_nodes SET last_seen = ? WHERE id = ? AND status = 'up' AND (? IS NULL OR instance IS ?)",
      )
      .run(this.clock.now(), nodeId, instance ?? null, instance ?? null);
    return Promise.resolve(info.changes > 0);
  }

  async markLostNodes(timeoutMs: number): Promise<string[]> {
    const rows = this.db
      .prepare("UPDATE cluster_nodes SET status = 'lost' WHERE status = 'up' AND last_seen < ? RETURNING id")
      .all(this.clock.now() - timeoutMs) as { id: string }[];
    return Promise.resolve(rows.map((r) => r.id).sort());
  }

  async markStopped(nodeId: string, instance?: string): Promise<void> {
    this.db
      .prepare(
        "UPDATE cluster_nodes SET status = 'stopped', last_seen = ? WHERE id = ? AND (? IS NULL OR instance IS ?)",
      )
      .run(this.clock.now(), nodeId, instance ?? null, instance ?? null);
    return Promise.resolve();
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = this.db.prepare('SELECT * FROM cluster_nodes ORDER BY id').all() as NodeRow[];
    return Promise.resolve(rows.map(toRecord));
  }
}

function toRecord(r: NodeRow): NodeRecord {
  return {
    id: r.id,
    url: r.url,
    roles: r.roles === '' ? [] : (r.roles.split(',') as NodeRole[]),
    status: r.status,
    startedAt: new Date(r.started_at).toISOString(),
    lastSeenAt: new Date(r.last_seen).toISOString(),
  };
}
