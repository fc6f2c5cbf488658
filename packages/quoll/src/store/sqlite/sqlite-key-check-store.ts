import type {
  KeyCheckState,
  KeyCheckStore,
  KeyStatusSnapshot,
  NodeKeyReport,
  RetireBlocked,
  RetiredKey,
  SealedDetails,
} from '../../connections/index.js';
import { UNREGISTERED_REPORT_MS, UNREPORTED_KEY_ID } from '../../connections/index.js';
import { HELD_KEY_IDS_SEPARATOR, toNodeKeyReport } from '../rows/index.js';
import type { NodeKeyRow } from '../rows/index.js';
import type { SqliteHandle } from './sqlite-database.js';

// Table `key_checks` (migration 0007), by `name`, as on PostgreSQL: 'master-key' (the key
// check), 'node:<node id>' (what a node seals with; created_at in epoch ms), 'keys:<node id>'
// (every key id that node holds, comma-separated in key_id; it counts only while its created_at
// is that of the node's 'node:' row, i.e. from the same start), 'retiring:<key id>' (a key the
// key check was re-sealed away from) and 'retired:<key id>' (a key a finished rotation retired;
// created_at ISO 8601).

/** {@link KeyCheckStore} on SQLite. */
export class SqliteKeyCheckStore implements KeyCheckStore {
  constructor(private readonly db: SqliteHandle) {}

  async ensureKeyCheck(candidate: SealedDetails, at: string): Promise<SealedDetails> {
    this.#insertCheck(candidate, at);
    return this.#check();
  }

  async admitNode(
    candidate: SealedDetails,
    at: string,
    report: NodeKeyReport | null,
    admit: (state: KeyCheckState) => void,
  ): Promise<KeyCheckState> {
    // better-sqlite3 transactions are synchronous: nothing interleaves with this one.
    return this.db.transaction(() => {
      this.#insertCheck(candidate, at);
      const nodes = this.#pending('').filter((n) => n.nodeId !== report?.nodeId);
      const state: KeyCheckState = {
        check: this.#check(),
        retired: this.#retired(),
        nodes,
        retiring: this.#retiring(),
      };
      admit(state);
      if (report !== null) {
        const upsert = this.db.prepare(
          `INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, created_at = excluded.created_at`,
        );
        const reportedAt = String(Date.now());
        upsert.run(`node:${report.nodeId}`, report.sealKeyId, candidate.blob, reportedAt);
        if (report.heldKeyIds !== undefined)
          upsert.run(
            `keys:${report.nodeId}`,
            report.heldKeyIds.join(HELD_KEY_IDS_SEPARATOR),
            Buffer.alloc(0),
            reportedAt,
          );
      }
      return state;
    })();
  }

  async replaceKeyCheck(expectedKeyId: string, sealed: SealedDetails, at: string): Promise<boolean> {
    return this.db.transaction((): boolean => {
      const result = this.db
        .prepare("UPDATE key_checks SET key_id = ?, sealed = ? WHERE name = 'master-key' AND key_id = ?")
        .run(sealed.keyId, sealed.blob, expectedKeyId);
      if (result.changes === 0) return false;
      this.db
        .prepare(
          'INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING',
        )
        .run(`retiring:${expectedKeyId}`, expectedKeyId, Buffer.alloc(0), at);
      return true;
    })();
  }

  async nodesNotSealingWith(keyId: string): Promise<NodeKeyReport[]> {
    return this.#pending(keyId);
  }

  async retireKeys(keyId: string, retire: readonly string[], at: string): Promise<RetireBlocked | null> {
    return this.db.transaction((): RetireBlocked | null => {
      const blocked: RetireBlocked = {
        checkKeyId: this.#check().keyId,
        pendingNodes: this.#pending(keyId),
        connectionKeyIds: (
          this.db
            .prepare('SELECT DISTINCT key_id FROM connections WHERE key_id <> ? ORDER BY key_id')
            .all(keyId) as { key_id: string }[]
        ).map((r) => r.key_id),
      };
      if (
        blocked.checkKeyId !== keyId ||
        blocked.pendingNodes.length > 0 ||
        blocked.connectionKeyIds.length > 0
      )
        return blocked;
      const insert = this.db.prepare(
        'INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING',
      );
      const retiring = this.db
        .prepare("SELECT key_id FROM key_checks WHERE name LIKE 'retiring:%'")
        .all() as { key_id: string }[];
      for (const id of new Set([...retire, ...retiring.map((r) => r.key_id)]))
        if (id !== keyId) insert.run(`retired:${id}`, id, Buffer.alloc(0), at);
      this.db.prepare("DELETE FROM key_checks WHERE name LIKE 'retiring:%'").run();
      return null;
    })();
  }

  async listRetiredKeys(): Promise<RetiredKey[]> {
    return this.#retired();
  }

  async readKeyStatus(): Promise<KeyStatusSnapshot> {
    return this.db.transaction((): KeyStatusSnapshot => {
      const check = this.db.prepare("SELECT key_id FROM key_checks WHERE name = 'master-key'").get() as
        { key_id: string } | undefined;
      const connections = this.db
        .prepare('SELECT key_id, COUNT(*) AS count FROM connections GROUP BY key_id ORDER BY key_id')
        .all() as { key_id: string; count: number }[];
      return {
        checkKeyId: check?.key_id ?? null,
        retiring: this.#retiring(),
        retired: this.#retired(),
        nodes: this.#pending(''),
        connections: connections.map((r) => ({ keyId: r.key_id, count: Number(r.count) })),
      };
    })();
  }

  #insertCheck(candidate: SealedDetails, at: string): void {
    this.db
      .prepare(
        "INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ('master-key', ?, ?, ?) ON CONFLICT DO NOTHING",
      )
      .run(candidate.keyId, candidate.blob, at);
  }

  #check(): SealedDetails {
    const row = this.db.prepare("SELECT key_id, sealed FROM key_checks WHERE name = 'master-key'").get() as
      { key_id: string; sealed: Buffer } | undefined;
    if (row === undefined) throw new Error('the database has no key check: no node has started on it yet');
    return { keyId: row.key_id, blob: row.sealed };
  }

  #retired(): RetiredKey[] {
    const rows = this.db
      .prepare(
        "SELECT key_id, created_at FROM key_checks WHERE name LIKE 'retired:%' ORDER BY created_at, key_id",
      )
      .all() as { key_id: string; created_at: string }[];
    return rows.map((r) => ({ keyId: r.key_id, at: r.created_at }));
  }

  #retiring(): string[] {
    const rows = this.db
      .prepare("SELECT key_id FROM key_checks WHERE name LIKE 'retiring:%' ORDER BY key_id")
      .all() as { key_id: string }[];
    return rows.map((r) => r.key_id);
  }

  #pending(keyId: string): NodeKeyReport[] {
    const rows = this.db
      .prepare(
        `SELECT substr(k.name, 6) AS node_id, k.key_id, h.key_id AS held
           FROM key_checks k LEFT JOIN cluster_nodes n ON n.id = substr(k.name, 6)
           -- The keys it holds, recorded at the same start (a later start without them voids them).
           LEFT JOIN key_checks h ON h.name = 'keys:' || substr(k.name, 6) AND h.created_at = k.created_at
          WHERE k.name LIKE 'node:%' AND k.key_id <> ?
            AND (n.status = 'up' OR CAST(k.created_at AS INTEGER) >= COALESCE(n.last_seen, ?))
         UNION ALL
         -- A live node that recorded no key (a release before key rotation) may seal with any.
         SELECT n.id, ?, NULL FROM cluster_nodes n
          WHERE n.status = 'up' AND NOT EXISTS (SELECT 1 FROM key_checks k WHERE k.name = 'node:' || n.id)
          ORDER BY 1`,
      )
      .all(keyId, Date.now() - UNREGISTERED_REPORT_MS, UNREPORTED_KEY_ID) as NodeKeyRow[];
    return rows.map(toNodeKeyReport);
  }
}
