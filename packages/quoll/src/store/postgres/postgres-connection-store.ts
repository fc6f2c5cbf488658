import type {
  AttachOutcome,
  ConnectionAuditEntry,
  ConnectionRecord,
  ConnectionStore,
  CreateConnectionOutcome,
  NewConnection,
  SealedConnectionRecord,
  SealedDetails,
  StoredConnectionAuditEntry,
} from '../../connections/index.js';
import type { PostgresDatabase, Sql } from './postgres-database.js';
import { PG_FOREIGN_KEY_VIOLATION, sqlState } from './postgres-database.js';
import type { ConnectionAuditRow, ConnectionRow } from '../rows/index.js';
import { toConnection, toConnectionAudit, toSealedConnection } from '../rows/index.js';

/** A connection row with the names of its workspaces, sorted (aggregated by the query). */
interface ConnectionWithNamesRow extends ConnectionRow {
  workspace_names: string[];
}

/** Every connection column plus its workspaces' names, sorted, in one query. */
const SELECT_CONNECTIONS = `SELECT c.*, COALESCE(
    (SELECT array_agg(w.name ORDER BY w.name) FROM connection_workspaces cw JOIN workspaces w ON w.id = cw.workspace_id
     WHERE cw.connection_id = c.id), '{}') AS workspace_names
  FROM connections c`;

const toRecord = (row: ConnectionWithNamesRow): ConnectionRecord => toConnection(row, row.workspace_names);

/** Thrown inside a transaction to roll it back when an attachment's workspace is missing. */
class MissingWorkspace extends Error {}

/** {@link ConnectionStore} on PostgreSQL (tables from migration `0003_connections.sql`). */
export class PostgresConnectionStore implements ConnectionStore {
  constructor(private readonly db: PostgresDatabase) {}

  async createConnection(c: NewConnection): Promise<CreateConnectionOutcome> {
    try {
      const created = await this.db.transaction(async (sql) => {
        const inserted = await sql.one<{ id: string }>(
          `INSERT INTO connections (id, name, type, key_id, sealed_details, created_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (name) DO NOTHING RETURNING id`,
          [c.id, c.name, c.type, c.sealedDetails.keyId, c.sealedDetails.blob, c.createdAt],
        );
        if (inserted === null) return false;
        if (
          c.attachTo !== undefined &&
          (await insertAttachment(sql, c.id, c.attachTo, c.createdAt)) !== 'attached'
        ) {
          throw new MissingWorkspace();
        }
        return true;
      });
      if (!created) return { outcome: 'name_taken' };
    } catch (err) {
      if (err instanceof MissingWorkspace) return { outcome: 'workspace_missing' };
      throw err;
    }
    const record = await this.getById(c.id);
    if (record === null) throw new Error(`connection ${c.id} vanished right after it was written`);
    return { outcome: 'created', connection: record };
  }

  async getById(id: string): Promise<ConnectionRecord | null> {
    const row = await this.db.one<ConnectionWithNamesRow>(`${SELECT_CONNECTIONS} WHERE c.id = $1`, [id]);
    return row ? toRecord(row) : null;
  }

  async getByName(name: string): Promise<ConnectionRecord | null> {
    const row = await this.db.one<ConnectionWithNamesRow>(`${SELECT_CONNECTIONS} WHERE c.name = $1`, [name]);
    return row ? toRecord(row) : null;
  }

  async getSealed(id: string): Promise<SealedConnectionRecord | null> {
    const row = await this.db.one<ConnectionWithNamesRow>(`${SELECT_CONNECTIONS} WHERE c.id = $1`, [id]);
    if (!row) return null;
    return toSealedConnection(row, row.workspace_names);
  }

  async list(): Promise<ConnectionRecord[]> {
    return (
      await this.db.rows<ConnectionWithNamesRow>(`${SELECT_CONNECTIONS} ORDER BY c.created_at, c.id`)
    ).map(toRecord);
  }

  async listForWorkspace(workspaceId: number): Promise<ConnectionRecord[]> {
    const rows = await this.db.rows<ConnectionWithNamesRow>(
      `${SELECT_CONNECTIONS} WHERE EXISTS (SELECT 1 FROM connection_workspaces x WHERE x.connection_id = c.id AND x.workspace_id = $1)
       ORDER BY c.created_at, c.id`,
      [workspaceId],
    );
    return rows.map(toRecord);
  }

  async isAttached(connectionId: string, workspaceId: number): Promise<boolean> {
    return (
      (await this.db.one(
        'SELECT 1 AS one FROM connection_workspaces WHERE connection_id = $1 AND workspace_id = $2',
        [connectionId, workspaceId],
      )) !== null
    );
  }

  async attach(connectionId: string, workspaceId: number, at: string): Promise<AttachOutcome> {
    return insertAttachment(this.db, connectionId, workspaceId, at);
  }

  async detach(connectionId: string, workspaceId: number): Promise<boolean> {
    return (
      (await this.db.run('DELETE FROM connection_workspaces WHERE connection_id = $1 AND workspace_id = $2', [
        connectionId,
        workspaceId,
      ])) > 0
    );
  }

  async delete(connectionId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM connections WHERE id = $1', [connectionId])) > 0;
  }

  async deleteIfOnlyAttachedTo(
    connectionId: string,
    workspaceId: number,
  ): Promise<'deleted' | 'missing' | 'shared'> {
    return this.db.transaction(async (sql) => {
      // The row lock makes a racing attach (its foreign-key check locks the row too) wait.
      const row = await sql.one('SELECT 1 AS one FROM connections WHERE id = $1 FOR UPDATE', [connectionId]);
      if (row === null) return 'missing';
      const elsewhere = await sql.one(
        'SELECT 1 AS one FROM connection_workspaces WHERE connection_id = $1 AND workspace_id <> $2 LIMIT 1',
        [connectionId, workspaceId],
      );
      if (elsewhere !== null) return 'shared';
      await sql.run('DELETE FROM connections WHERE id = $1', [connectionId]);
      return 'deleted';
    });
  }

  async getWorkspaceName(workspaceId: number): Promise<string | null> {
    return (
      (await this.db.one<{ name: string }>('SELECT name FROM workspaces WHERE id = $1', [workspaceId]))
        ?.name ?? null
    );
  }

  async listIdsNotSealedWith(keyId: string, limit: number): Promise<string[]> {
    const rows = await this.db.rows<{ id: string }>(
      'SELECT id FROM connections WHERE key_id <> $1 ORDER BY created_at, id LIMIT $2',
      [keyId, limit],
    );
    return rows.map((r) => r.id);
  }

  async replaceSealed(connectionId: string, expectedKeyId: string, sealed: SealedDetails): Promise<boolean> {
    const n = await this.db.run(
      'UPDATE connections SET key_id = $1, sealed_details = $2 WHERE id = $3 AND key_id = $4',
      [sealed.keyId, sealed.blob, connectionId, expectedKeyId],
    );
    return n > 0;
  }

  async appendAudit(e: ConnectionAuditEntry): Promise<void> {
    await this.db.run(
      'INSERT INTO connection_audit (at, subject, connection_id, connection_name, action) VALUES ($1, $2, $3, $4, $5)',
      [e.at, e.subject, e.connectionId, e.connectionName, e.action],
    );
  }

  async listAudit(options: { limit: number }): Promise<StoredConnectionAuditEntry[]> {
    const rows = await this.db.rows<ConnectionAuditRow>(
      'SELECT * FROM connection_audit ORDER BY id DESC LIMIT $1',
      [options.limit],
    );
    return rows.map(toConnectionAudit);
  }
}

/** Attaches (a no-op when attached); a foreign-key failure says which side is missing. */
async function insertAttachment(
  sql: Sql,
  connectionId: string,
  workspaceId: number,
  at: string,
): Promise<AttachOutcome> {
  const hasConnection = await sql.one('SELECT 1 AS one FROM connections WHERE id = $1', [connectionId]);
  if (hasConnection === null) return 'connection_missing';
  const hasWorkspace = await sql.one('SELECT 1 AS one FROM workspaces WHERE id = $1', [workspaceId]);
  if (hasWorkspace === null) return 'workspace_missing';
  try {
    await sql.run(
      `INSERT INTO connection_workspaces (connection_id, workspace_id, attached_at) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING`,
      [connectionId, workspaceId, at],
    );
    return 'attached';
  } catch (err) {
    // Deleted between the check and the insert: the foreign key still refuses it.
    if (sqlState(err) !== PG_FOREIGN_KEY_VIOLATION) throw err;
    return (await sql.one('SELECT 1 AS one FROM connections WHERE id = $1', [connectionId])) === null
      ? 'connection_missing'
      : 'workspace_missing';
  }
}
