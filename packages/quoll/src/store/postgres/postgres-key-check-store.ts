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
import type { PostgresDatabase, Sql } from './postgres-database.js';
import { PG_NOW_MS } from './postgres-node-store.js';

// Table `key_checks` (migration 0007) holds, by `name`:
//   'master-key'        the database's key check (key_id: the key it is sealed under);
//   'node:<node id>'    what that node seals with (key_id), created_at = the database's clock
//                       in epoch ms when it was admitted;
//   'keys:<node id>'    every key id that node holds, comma-separated in key_id; it counts only
//                       while its created_at is that of the node's 'node:' row (the same start:
//                       a node of the release before, which records no keys, voids it);
//   'retiring:<key id>' a key the key check was re-sealed away from, until retireKeys;
//   'retired:<key id>'  a key a finished rotation retired, created_at = when (ISO 8601).
// No migration: a node of an earlier release reads only the rows it knows and ignores the rest.

/** {@link KeyCheckStore} on PostgreSQL. */
export class PostgresKeyCheckStore implements KeyCheckStore {
  constructor(private readonly db: PostgresDatabase) {}

  async ensureKeyCheck(candidate: SealedDetails, at: string): Promise<SealedDetails> {
    // Nodes starting together: the first insert wins, the others read what it wrote.
    await this.db.run(
      "INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ('master-key', $1, $2, $3) ON CONFLICT (name) DO NOTHING",
      [candidate.keyId, candidate.blob, at],
    );
    const row = await this.db.one<{ key_id: string; sealed: Buffer }>(
      "SELECT key_id, sealed FROM key_checks WHERE name = 'master-key'",
    );
    if (row === null) throw new Error('the key check vanished right after it was written');
    return { keyId: row.key_id, blob: row.sealed };
  }

  async admitNode(
    candidate: SealedDetails,
    at: string,
    report: NodeKeyReport | null,
    admit: (state: KeyCheckState) => void,
  ): Promise<KeyCheckState> {
    return this.db.transaction(async (sql) => {
      await sql.run(
        "INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ('master-key', $1, $2, $3) ON CONFLICT (name) DO NOTHING",
        [candidate.keyId, candidate.blob, at],
      );
      const check = await lockKeyCheck(sql);
      const nodes = (await pendingNodes(sql, '')).filter((n) => n.nodeId !== report?.nodeId);
      const state: KeyCheckState = {
        check,
        retired: await retiredKeys(sql),
        nodes,
        retiring: await retiringKeys(sql),
      };
      admit(state);
      if (report !== null) {
        await sql.run(
          `INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ($1, $2, $3, (${PG_NOW_MS})::text)
           ON CONFLICT (name) DO UPDATE SET key_id = EXCLUDED.key_id, sealed = EXCLUDED.sealed, created_at = EXCLUDED.created_at`,
          [`node:${report.nodeId}`, report.sealKeyId, candidate.blob],
        );
        if (report.heldKeyIds !== undefined) {
          // Stamped with the node row's time, so the two read as one report.
          await sql.run(
            `INSERT INTO key_checks (name, key_id, sealed, created_at)
             SELECT $1, $2, $3, created_at FROM key_checks WHERE name = $4
             ON CONFLICT (name) DO UPDATE SET key_id = EXCLUDED.key_id, created_at = EXCLUDED.created_at`,
            [
              `keys:${report.nodeId}`,
              report.heldKeyIds.join(HELD_KEY_IDS_SEPARATOR),
              Buffer.alloc(0),
              `node:${report.nodeId}`,
            ],
          );
        }
      }
      return state;
    });
  }

  async replaceKeyCheck(expectedKeyId: string, sealed: SealedDetails, at: string): Promise<boolean> {
    return this.db.transaction(async (sql) => {
      const n = await sql.run(
        "UPDATE key_checks SET key_id = $1, sealed = $2 WHERE name = 'master-key' AND key_id = $3",
        [sealed.keyId, sealed.blob, expectedKeyId],
      );
      if (n === 0) return false;
      await sql.run(
        'INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING',
        [`retiring:${expectedKeyId}`, expectedKeyId, Buffer.alloc(0), at],
      );
      return true;
    });
  }

  async nodesNotSealingWith(keyId: string): Promise<NodeKeyReport[]> {
    return pendingNodes(this.db, keyId);
  }

  async retireKeys(keyId: string, retire: readonly string[], at: string): Promise<RetireBlocked | null> {
    return this.db.transaction(async (sql) => {
      const check = await lockKeyCheck(sql);
      const blocked: RetireBlocked = {
        checkKeyId: check.keyId,
        pendingNodes: await pendingNodes(sql, keyId),
        connectionKeyIds: (
          await sql.rows<{ key_id: string }>(
            'SELECT DISTINCT key_id FROM connections WHERE key_id <> $1 ORDER BY key_id',
            [keyId],
          )
        ).map((r) => r.key_id),
      };
      if (check.keyId !== keyId || blocked.pendingNodes.length > 0 || blocked.connectionKeyIds.length > 0)
        return blocked;
      const retiring = await sql.rows<{ key_id: string }>(
        "SELECT key_id FROM key_checks WHERE name LIKE 'retiring:%'",
      );
      for (const id of new Set([...retire, ...retiring.map((r) => r.key_id)])) {
        if (id === keyId) continue;
        await sql.run(
          'INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING',
          [`retired:${id}`, id, Buffer.alloc(0), at],
        );
      }
      await sql.run("DELETE FROM key_checks WHERE name LIKE 'retiring:%'");
      return null;
    });
  }

  async listRetiredKeys(): Promise<RetiredKey[]> {
    return retiredKeys(this.db);
  }

  async readKeyStatus(): Promise<KeyStatusSnapshot> {
    // One snapshot (REPEATABLE READ): the counts and the reports agree with each other.
    return this.db.transaction(async (sql) => {
      await sql.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // Opened without migrating (a read-only command): a database no node of a release with key
      // checks has started on has no table yet, which reads as no key check and no node.
      const table = await sql.one<{ found: boolean }>(
        "SELECT to_regclass('key_checks') IS NOT NULL AS found",
      );
      if (table?.found !== true)
        return { checkKeyId: null, retiring: [], retired: [], nodes: [], connections: [] };
      const check = await sql.one<{ key_id: string }>(
        "SELECT key_id FROM key_checks WHERE name = 'master-key'",
      );
      const connections = await sql.rows<{ key_id: string; count: string }>(
        `SELECT key_id, COUNT(*) AS count FROM connections GROUP BY key_id ORDER BY key_id COLLATE "C"`,
      );
      return {
        checkKeyId: check?.key_id ?? null,
        retiring: await retiringKeys(sql),
        retired: await retiredKeys(sql),
        nodes: await pendingNodes(sql, ''),
        connections: connections.map((r) => ({ keyId: r.key_id, count: Number(r.count) })),
      };
    });
  }
}

/** The key check, its row locked until the transaction ends. */
async function lockKeyCheck(sql: Sql): Promise<SealedDetails> {
  const row = await sql.one<{ key_id: string; sealed: Buffer }>(
    "SELECT key_id, sealed FROM key_checks WHERE name = 'master-key' FOR UPDATE",
  );
  if (row === null) throw new Error('the database has no key check: no node has started on it yet');
  return { keyId: row.key_id, blob: row.sealed };
}

async function retiredKeys(sql: Sql): Promise<RetiredKey[]> {
  const rows = await sql.rows<{ key_id: string; created_at: string }>(
    "SELECT key_id, created_at FROM key_checks WHERE name LIKE 'retired:%' ORDER BY created_at, key_id",
  );
  return rows.map((r) => ({ keyId: r.key_id, at: r.created_at }));
}

async function retiringKeys(sql: Sql): Promise<string[]> {
  const rows = await sql.rows<{ key_id: string }>(
    `SELECT key_id FROM key_checks WHERE name LIKE 'retiring:%' ORDER BY key_id COLLATE "C"`,
  );
  return rows.map((r) => r.key_id);
}

async function pendingNodes(sql: Sql, keyId: string): Promise<NodeKeyReport[]> {
  const rows = await sql.rows<NodeKeyRow>(
    `SELECT substr(k.name, 6) AS node_id, k.key_id, h.key_id AS held
       FROM key_checks k LEFT JOIN cluster_nodes n ON n.id = substr(k.name, 6)
       -- The keys it holds, recorded at the same start (a later start without them voids them).
       LEFT JOIN key_checks h ON h.name = 'keys:' || substr(k.name, 6) AND h.created_at = k.created_at
      WHERE k.name LIKE 'node:%' AND k.key_id <> $1
        AND (n.status = 'up'
             -- CASE: the cast must never reach a row of another kind (an ISO time).
             OR (CASE WHEN k.name LIKE 'node:%' THEN k.created_at::bigint ELSE 0 END) >= COALESCE(n.last_seen, ${PG_NOW_MS} - $2::bigint))
     UNION ALL
     -- A live node that recorded no key (a release before key rotation) may seal with any.
     SELECT n.id, $3::text, NULL FROM cluster_nodes n
      WHERE n.status = 'up' AND NOT EXISTS (SELECT 1 FROM key_checks k WHERE k.name = 'node:' || n.id)
      ORDER BY 1`,
    [keyId, UNREGISTERED_REPORT_MS, UNREPORTED_KEY_ID],
  );
  return rows.map(toNodeKeyReport);
}
