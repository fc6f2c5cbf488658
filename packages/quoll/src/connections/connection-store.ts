/** A connection's details: any JSON object (host URLs, service-account JSON, passwords …). */
export type ConnectionDetails = Record<string, unknown>;

/** Details as stored: AES-256-GCM ciphertext and the id of the master key that sealed it. */
export interface SealedDetails {
  /** Id of the master key (see `masterKeyId`), so rotation can tell old rows from new. */
  readonly keyId: string;
  /** version byte | 12-byte IV | 16-byte tag | ciphertext. */
  readonly blob: Buffer;
}

/** A connection as the store knows it, without its details. */
export interface ConnectionRecord {
  id: string;
  name: string;
  type: string;
  /** ISO 8601. */
  createdAt: string;
  /** Names of the workspaces it is attached to, sorted. */
  workspaceNames: string[];
}

/** A connection with its sealed details. */
export interface SealedConnectionRecord extends ConnectionRecord {
  sealed: SealedDetails;
}

/** What `createConnection` stores. */
export interface NewConnection {
  id: string;
  name: string;
  type: string;
  sealedDetails: SealedDetails;
  createdAt: string;
  /** Attach to this workspace in the same transaction. */
  attachTo?: number | undefined;
}

/** What an audit entry records; more actions may be added. */
export type ConnectionAuditAction = 'read_details';

/** One audit entry: who did what to which connection, when. */
export interface ConnectionAuditEntry {
  /** The token subject that acted. */
  subject: string;
  connectionId: string;
  /** The name at the time, so the entry stays readable after the connection is deleted. */
  connectionName: string;
  action: ConnectionAuditAction;
  /** ISO 8601. */
  at: string;
}

/** An audit entry as stored. */
export interface StoredConnectionAuditEntry extends ConnectionAuditEntry {
  id: number;
}

/** What {@link ConnectionStore.createConnection} did; nothing is stored unless `created`. */
export type CreateConnectionOutcome =
  | { outcome: 'created'; connection: ConnectionRecord }
  | { outcome: 'name_taken' }
  | { outcome: 'workspace_missing' };

/** What {@link ConnectionStore.attach} did (attaching twice is `attached`). */
export type AttachOutcome = 'attached' | 'connection_missing' | 'workspace_missing';

/**
 * Storage port for connections: names are unique per instance; details are only ever held
 * sealed. Every backend passes the same conformance suite (`store/conformance/`).
 */
export interface ConnectionStore {
  /**
   * Stores a connection (and its attachment, when `attachTo` is given) in one transaction,
   * or reports why not: the name is taken, or `attachTo` names no workspace.
   */
  createConnection(connection: NewConnection): Promise<CreateConnectionOutcome>;
  getById(id: string): Promise<ConnectionRecord | null>;
  getByName(name: string): Promise<ConnectionRecord | null>;
  /** The connection with its sealed details, for opening. */
  getSealed(id: string): Promise<SealedConnectionRecord | null>;
  /** Every connection, oldest first. */
  list(): Promise<ConnectionRecord[]>;
  /** Connections attached to the workspace, oldest first. */
  listForWorkspace(workspaceId: number): Promise<ConnectionRecord[]>;
  /** Whether the connection is attached to the workspace. */
  isAttached(connectionId: string, workspaceId: number): Promise<boolean>;
  /** Attaches; attaching twice is a no-op. Reports which side is missing, if one is. */
  attach(connectionId: string, workspaceId: number, at: string): Promise<AttachOutcome>;
  /** Detaches; returns false when it was not attached. */
  detach(connectionId: string, workspaceId: number): Promise<boolean>;
  /** Deletes the connection and every attachment; returns false when it did not exist. */
  delete(connectionId: string): Promise<boolean>;
  /**
   * Deletes the connection (and its attachments) only if no workspace but `workspaceId` has
   * it attached, checked and deleted atomically: `'deleted'`, `'missing'` when it does not
   * exist, `'shared'` (nothing changed) when another workspace has it attached.
   */
  deleteIfOnlyAttachedTo(
    connectionId: string,
    workspaceId: number,
  ): Promise<'deleted' | 'missing' | 'shared'>;
  /** The name of a workspace, or null when there is none with this id. */
  getWorkspaceName(workspaceId: number): Promise<string | null>;
  /** Ids of connections sealed under a key other than `keyId`, oldest first, at most `limit`. */
  listIdsNotSealedWith(keyId: string, limit: number): Promise<string[]>;
  /**
   * Replaces the sealed details if they are still sealed under `expectedKeyId` (compare and
   * set, so a rotation never overwrites a concurrent change); returns whether it replaced.
   */
  replaceSealed(connectionId: string, expectedKeyId: string, sealed: SealedDetails): Promise<boolean>;
  appendAudit(entry: ConnectionAuditEntry): Promise<void>;
  /** Audit entries, newest first. */
  listAudit(options: { limit: number }): Promise<StoredConnectionAuditEntry[]>;
}
