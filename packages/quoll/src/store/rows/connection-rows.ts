import type {
  ConnectionAuditEntry,
  ConnectionRecord,
  SealedConnectionRecord,
  StoredConnectionAuditEntry,
} from '../../connections/index.js';

/** A `connections` row (migration 0003). */
export interface ConnectionRow {
  id: string;
  name: string;
  type: string;
  key_id: string;
  sealed_details: Buffer;
  created_at: string;
}

/** A `connection_audit` row (migration 0003). */
export interface ConnectionAuditRow {
  id: number;
  at: string;
  subject: string;
  connection_id: string;
  connection_name: string;
  action: string;
}

export const toConnection = (row: ConnectionRow, workspaceNames: string[]): ConnectionRecord => ({
  id: row.id,
  name: row.name,
  type: row.type,
  createdAt: row.created_at,
  workspaceNames,
});

export const toSealedConnection = (row: ConnectionRow, workspaceNames: string[]): SealedConnectionRecord => ({
  ...toConnection(row, workspaceNames),
  sealed: { keyId: row.key_id, blob: row.sealed_details },
});

export const toConnectionAudit = (r: ConnectionAuditRow): StoredConnectionAuditEntry => ({
  id: r.id,
  at: r.at,
  subject: r.subject,
  connectionId: r.connection_id,
  connectionName: r.connection_name,
  action: r.action as ConnectionAuditEntry['action'],
});
