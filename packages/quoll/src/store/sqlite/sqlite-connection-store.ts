import type {
  AttachOutcome,
  CreateConnectionOutcome,
  ConnectionAuditEntry,
  ConnectionRecord,
  ConnectionStore,
  NewConnection,
  SealedConnectionRecord,
  SealedDetails,
  StoredConnectionAuditEntry,
} from '../../connections/index.js';
import type { SqliteHandle } from './sqlite-database.js';
import { isForeignKeyViolation, isUniqueViolation } from './sqlite-errors.js';
import type { ConnectionAuditRow, ConnectionRow } from '../rows/index.js';
import { toConnection, toConnectionAudit, toSealedConnection } from '../rows/index.js';

/** The SQLite-backed `ConnectionStore` (tables from migration `0003_connections.sql`). */
export class SqliteConnectionStore implements ConnectionStore {
  readonly #db: SqliteHandle;

  /** @param db a handle from `openSqliteDatabase`, migrations applied. */
  constructor(db: SqliteHandle) {
    this.#db = db;
  }

  async createConnection(c: NewConnection): Promise<CreateConnectionOutcome> {
    const db = this.#db;
    try {
      db.transaction(() => {
        db.prepare(
          'INSERT INTO connections (id, name, type, key_id, sealed_details, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        ).run(c.id, c.name, c.type, c.sealedDetails.keyId, c.sealedDetails.blob, c.createdAt);
        if (c.attachTo === undefined) return;
        const outcome = this.#insertAttachment(c.id, c.attachTo, c.createdAt);
        // Throwing rolls the connection back: nothing is stored unless all of it is.
        if (outcome !== 'attached') throw new MissingSide(outcome);
      })();
    } catch (err) {
      if (err instanceof MissingSide) return { outcome: 'workspace_missing' };
      if (isUniqueViolation(err)) return { outcome: 'name_taken' };
      throw err;
    }
    return { outcome: 'created', connection: await this.#required(c.id) };
  }

  async getById(id: string): Promise<ConnectionRecord | null> {
    const row = this.#db.prepare('SELECT * FROM connections WHERE id = ?').get(id) as
      ConnectionRow | undefined;
    return row ? this.#toRecord(row) : null;
  }

  async getByName(name: string): Promise<ConnectionRecord | null> {
    const row = this.#db.prepare('SELECT * FROM connections WHERE name = ?').get(name) as
      ConnectionRow | undefined;
    return row ? this.#toRecord(row) : null;
  }

  async getSealed(id: string): Promise<SealedConnectionRecord | null> {
    const row = this.#db.prepare('SELECT * FROM connections WHERE id = ?').get(id) as
      ConnectionRow | undefined;
    if (!row) return null;
    return toSealedConnection(row, this.#workspaceNames(row.id));
  }

  async list(): Promise<ConnectionRecord[]> {
    const rows = this.#db
      .prepare('SELECT * FROM connections ORDER BY created_at, id')
      .all() as ConnectionRow[];
    return this.#toRecords(rows);
  }

  async listForWorkspace(workspaceId: number): Promise<ConnectionRecord[]> {
    const rows = this.#db
      .prepare(
        `SELECT c.* FROM connections c JOIN connection_workspaces cw ON cw.connection_id = c.id
         WHERE cw.workspace_id = ? ORDER BY c.created_at, c.id`,
      )
      .all(workspaceId) as ConnectionRow[];
    return this.#toRecords(rows);
  }

  async isAttached(connectionId: string, workspaceId: number): Promise<boolean> {
    return (
      this.#db
        .prepare('SELECT 1 FROM connection_workspaces WHERE connection_id = ? AND workspace_id = ?')
        .get(connectionId, workspaceId) !== undefined
    );
  }

  async attach(connectionId: string, workspaceId: number, at: string): Promise<AttachOutcome> {
    return this.#insertAttachment(connectionId, workspaceId, at);
  }

  async detach(connectionId: string, workspaceId: number): Promise<boolean> {
    const r = this.#db
      .prepare('DELETE FROM connection_workspaces WHERE connection_id = ? AND workspace_id = ?')
      .run(connectionId, workspaceId);
    return r.changes > 0;
  }

  async delete(connectionId: string): Promise<boolean> {
    // Attachments go with it through ON DELETE CASCADE (foreign_keys is on for every handle).
    return this.#db.prepare('DELETE FROM connections WHERE id = ?').run(connectionId).changes > 0;
  }

  async deleteIfOnlyAttachedTo(
    connectionId: string,
    workspaceId: number,
  ): Promise<'deleted' | 'missing' | 'shared'> {
    const db = this.#db;
    // One transaction: the check and the delete see the same attachments.
    return db.transaction((): 'deleted' | 'missing' | 'shared' => {
      if (db.prepare('SELECT 1 FROM connections WHERE id = ?').get(connectionId) === undefined)
        return 'missing';
      const elsewhere = db
        .prepare('SELECT 1 FROM connection_workspaces WHERE connection_id = ? AND workspace_id <> ? LIMIT 1')
        .get(connectionId, workspaceId);
      if (elsewhere !== undefined) return 'shared';
      db.prepare('DELETE FROM connections WHERE id = ?').run(connectionId);
      return 'deleted';
    })();
  }

  async getWorkspaceName(workspaceId: number): Promise<string | null> {
    const row = this.#db.prepare('SELECT name FROM workspaces WHERE id = ?').get(workspaceId) as
      { name: string } | undefined;
    return row?.name ?? null;
  }

  async listIdsNotSealedWith(keyId: string, limit: number): Promise<string[]> {
    const rows = this.#db
      .prepare('SELECT id FROM connections WHERE key_id <> ? ORDER BY created_at, id LIMIT ?')
      .all(keyId, limit) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async replaceSealed(connectionId: string, expectedKeyId: string, sealed: SealedDetails): Promise<boolean> {
    const r = this.#db
      .prepare('UPDATE connections SET key_id = ?, sealed_details = ? WHERE id = ? AND key_id = ?')
      .run(sealed.keyId, sealed.blob, connectionId, expectedKeyId);
    return r.changes > 0;
  }

  async appendAudit(e: ConnectionAuditEntry): Promise<void> {
    this.#db
      .prepare(
        'INSERT INTO connection_audit (at, subject, connection_id, connection_name, action) VALUES (?, ?, ?, ?, ?)',
      )
      .run(e.at, e.subject, e.connectionId, e.connectionName, e.action);
  }

  async listAudit(options: { limit: number }): Promise<StoredConnectionAuditEntry[]> {
    const rows = this.#db
      .prepare('SELECT * FROM connection_audit ORDER BY id DESC LIMIT ?')
      .all(options.limit) as ConnectionAuditRow[];
    return rows.map(toConnectionAudit);
  }

  #insertAttachment(connectionId: string, workspaceId: number, at: string): AttachOutcome {
    try {
      // OR IGNORE makes attaching twice a no-op; foreign-key failures are still raised.
      this.#db
        .prepare(
          'INSERT OR IGNORE INTO connection_workspaces (connection_id, workspace_id, attached_at) VALUES (?, ?, ?)',
        )
        .run(connectionId, workspaceId, at);
      return 'attached';
    } catch (err) {
      if (!isForeignKeyViolation(err)) throw err;
      // SQLite does not say which key failed: look.
      const hasConnection =
        this.#db.prepare('SELECT 1 FROM connections WHERE id = ?').get(connectionId) !== undefined;
      return hasConnection ? 'workspace_missing' : 'connection_missing';
    }
  }

  async #required(id: string): Promise<ConnectionRecord> {
    const record = await this.getById(id);
    if (!record) throw new Error(`connection ${id} vanished right after it was written`);
    return record;
  }

  #toRecord(row: ConnectionRow): ConnectionRecord {
    return toConnection(row, this.#workspaceNames(row.id));
  }

  /** The names of a connection's workspaces, sorted. */
  #workspaceNames(connectionId: string): string[] {
    const names = this.#db
      .prepare(
        `SELECT w.name FROM connection_workspaces cw JOIN workspaces w ON w.id = cw.workspace_id
         WHERE cw.connection_id = ? ORDER BY w.name`,
      )
      .all(connectionId) as { name: string }[];
    return names.map((n) => n.name);
  }

  #toRecords(rows: ConnectionRow[]): ConnectionRecord[] {
    if (rows.length === 0) return [];
    // One query for every attachment instead of one per connection.
    const links = this.#db
      .prepare(
        `SELECT cw.connection_id AS id, w.name FROM connection_workspaces cw JOIN workspaces w ON w.id = cw.workspace_id
         ORDER BY w.name`,
      )
      .all() as { id: string; name: string }[];
    const byConnection = new Map<string, string[]>();
    for (const link of links) {
      const names = byConnection.get(link.id);
      if (names) names.push(link.name);
      else byConnection.set(link.id, [link.name]);
    }
    return rows.map((row) => toConnection(row, byConnection.get(row.id) ?? []));
  }
}

/** Thrown inside a transaction to roll it back when an attachment's other side is missing. */
class MissingSide extends Error {
  constructor(readonly side: Exclude<AttachOutcome, 'attached'>) {
    super(side);
  }
}
