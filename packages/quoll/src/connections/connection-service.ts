import type { ConnectionDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { timeOrderedId } from '../ids/index.js';
import { validateName } from '../validation/index.js';
import type { ConnectionSealer } from './connection-sealer.js';
import type { ConnectionDetails, ConnectionRecord, ConnectionStore } from './connection-store.js';

/**
 * Who is asking. A workspace-scoped caller sees only the connections attached to its
 * workspace; every other name answers `connection_not_found` exactly like a missing one,
 * and the `workspaceNames` it is shown name only its own workspace. The auth `Principal`
 * fits this type.
 */
export type ConnectionScope = { kind: 'admin' } | { kind: 'workspace'; workspaceId: number };

/** Names a connection by its unique name or by its id. */
export type ConnectionRef = { name: string } | { id: string };

/** What `create` is given; every field is checked, since it comes straight from a request. */
export interface CreateConnectionInput {
  name: unknown;
  type: unknown;
  details: unknown;
}

/** Dependencies and limits of a `ConnectionService`. */
export interface ConnectionServiceOptions {
  store: ConnectionStore;
  sealer: ConnectionSealer;
  /** @default () => new Date() */
  clock?: () => Date;
  /** @default time-ordered UUIDs (version 7) */
  newId?: () => string;
  /** Largest details object accepted, in bytes of its JSON. @default 65536 */
  maxDetailsBytes?: number;
}

/** The default cap on a connection's details JSON: 64 KiB. */
export const DEFAULT_MAX_DETAILS_BYTES = 64 * 1024;
/** The longest connection type accepted. */
const MAX_TYPE_LENGTH = 128;

/**
 * Connections as the HTTP layer sees them: validation, sealing, workspace scoping and the
 * audit trail of unmasked reads. Listings and lookups never carry details; only `details()` does.
 * @example
 * const connections = new ConnectionService({ store, sealer });
 * await connections.create({ kind: 'admin' }, { name: 'houseprice', type: 'HTTPFILE', details: { host } });
 * const { details } = await connections.details(principal, { name: 'houseprice' }, principal.subject);
 */
export class ConnectionService {
  readonly #store: ConnectionStore;
  readonly #sealer: ConnectionSealer;
  readonly #clock: () => Date;
  readonly #newId: () => string;
  readonly #maxDetailsBytes: number;

  constructor(options: ConnectionServiceOptions) {
    this.#store = options.store;
    this.#sealer = options.sealer;
    this.#clock = options.clock ?? (() => new Date());
    this.#newId = options.newId ?? timeOrderedId;
    this.#maxDetailsBytes = options.maxDetailsBytes ?? DEFAULT_MAX_DETAILS_BYTES;
  }

  /**
   * Creates a connection; admin only. A workspace-scoped caller gets `forbidden` before
   * anything else is looked at: connections are defined instance-wide by whoever runs the
   * platform (as in the seed), and answering `connection_exists` to a scoped caller would
   * reveal names it cannot otherwise see.
   * Throws `forbidden`, `invalid_name`, `invalid_connection` or `connection_exists`; nothing is stored then.
   */
  async create(scope: ConnectionScope, input: CreateConnectionInput): Promise<ConnectionDto> {
    if (scope.kind === 'workspace') {
      throw new ApiError(
        'forbidden',
        'A workspace token cannot create connections: an admin creates a connection and attaches it to workspaces (createConnection, then workspace.addConnection) with the admin token.',
      );
    }
    const name = validateName('connection', input.name);
    const type = this.#validateType(input.type);
    const details = this.#validateDetails(input.details);
    const id = this.#newId();
    const created = await this.#store.createConnection({
      id,
      name,
      type,
      sealedDetails: this.#sealer.seal(id, details),
      createdAt: this.#clock().toISOString(),
    });
    switch (created.outcome) {
      case 'created':
        return toDto(created.connection);
      case 'name_taken':
        throw new ApiError(
          'connection_exists',
          `A connection named "${name}" already exists; choose a different name, or delete the existing one first.`,
          { name },
        );
      case 'workspace_missing':
        // create() never attaches, so this cannot happen; keep the switch exhaustive anyway.
        throw new Error('connection store reported a missing workspace for an unattached create');
    }
  }

  /**
   * Connections the caller can see, oldest first; `workspaceId` narrows to one workspace
   * (a workspace-scoped caller may only name its own).
   */
  async list(
    scope: ConnectionScope,
    options: { workspaceId?: number | undefined } = {},
  ): Promise<ConnectionDto[]> {
    let workspaceId = options.workspaceId;
    if (scope.kind === 'workspace') {
      if (workspaceId !== undefined && workspaceId !== scope.workspaceId)
        throw workspaceNotFound(workspaceId);
      workspaceId = scope.workspaceId;
    }
    const records =
      workspaceId === undefined ? await this.#store.list() : await this.#store.listForWorkspace(workspaceId);
    const visible = await this.#visibleNames(scope);
    return records.map((r) => toDto(r, visible));
  }

  /** One connection, masked (no details). Throws `connection_not_found`. */
  async get(scope: ConnectionScope, ref: ConnectionRef): Promise<ConnectionDto> {
    const record = await this.#find(scope, ref);
    return toDto(record, await this.#visibleNames(scope));
  }

  /**
   * The unmasked details, recording who read them in the audit trail first (no audit
   * entry, no details). Throws `connection_not_found`.
   * @param subject the token subject, for the audit trail.
   */
  async details(
    scope: ConnectionScope,
    ref: ConnectionRef,
    subject: string,
  ): Promise<{ connection: ConnectionDto; details: ConnectionDetails }> {
    const record = await this.#find(scope, ref);
    const sealed = await this.#store.getSealed(record.id);
    if (!sealed) throw notFound(ref);
    const details = this.#sealer.open(record.id, sealed.sealed);
    await this.#store.appendAudit({
      subject,
      connectionId: record.id,
      connectionName: record.name,
      action: 'read_details',
      at: this.#clock().toISOString(),
    });
    return { connection: toDto(record, await this.#visibleNames(scope)), details };
  }

  /**
   * Deletes a connection and detaches it from every workspace. A workspace-scoped caller may
   * delete only a connection attached to its own workspace alone: deleting one that other
   * workspaces use would break them, so that answers `forbidden` (detach it instead) and
   * changes nothing. Throws `connection_not_found` or `forbidden`.
   */
  async delete(scope: ConnectionScope, ref: ConnectionRef): Promise<void> {
    const record = await this.#find(scope, ref);
    if (scope.kind === 'admin') {
      if (!(await this.#store.delete(record.id))) throw notFound(ref);
      return;
    }
    // Checked and deleted in one store step, so an attach racing in cannot slip past.
    const outcome = await this.#store.deleteIfOnlyAttachedTo(record.id, scope.workspaceId);
    if (outcome === 'missing') throw notFound(ref);
    if (outcome === 'shared') {
      // Says only that other workspaces use it, never which: their names stay hidden.
      throw new ApiError(
        'forbidden',
        `Connection "${record.name}" is also attached to other workspaces, so a workspace token cannot delete it; detach it from this workspace instead (workspace.removeConnection), or ask an admin to delete it.`,
        { name: record.name },
      );
    }
  }

  /**
   * Attaches a connection to a workspace; attaching twice is a no-op. A workspace-scoped
   * caller may only attach what it sees to its own workspace. Throws `connection_not_found`
   * or `workspace_not_found`.
   */
  async attach(scope: ConnectionScope, ref: ConnectionRef, workspaceId: number): Promise<ConnectionDto> {
    this.#checkWorkspace(scope, workspaceId);
    const record = await this.#find(scope, ref);
    const attached = await this.#store.attach(record.id, workspaceId, this.#clock().toISOString());
    if (attached === 'workspace_missing') throw workspaceNotFound(workspaceId);
    // Deleted between the lookup and the attach: answer as if it had never been there.
    if (attached === 'connection_missing') throw notFound(ref);
    return toDto(await this.#find({ kind: 'admin' }, { id: record.id }), await this.#visibleNames(scope));
  }

  /**
   * Detaches a connection from a workspace; detaching what is not attached is a no-op.
   * Throws `connection_not_found` or `workspace_not_found`.
   */
  async detach(scope: ConnectionScope, ref: ConnectionRef, workspaceId: number): Promise<void> {
    this.#checkWorkspace(scope, workspaceId);
    const record = await this.#find(scope, ref);
    await this.#store.detach(record.id, workspaceId);
  }

  /**
   * The workspace names a caller may be shown: all for an admin (null = no filter); for a
   * workspace-scoped caller only its own, so a shared connection does not reveal where else
   * it is used.
   */
  async #visibleNames(scope: ConnectionScope): Promise<ReadonlySet<string> | null> {
    if (scope.kind === 'admin') return null;
    const own = await this.#store.getWorkspaceName(scope.workspaceId);
    return new Set(own === null ? [] : [own]);
  }

  #checkWorkspace(scope: ConnectionScope, workspaceId: number): void {
    // Another workspace is invisible to a workspace-scoped caller, so it answers "not found".
    if (scope.kind === 'workspace' && scope.workspaceId !== workspaceId) throw workspaceNotFound(workspaceId);
  }

  async #find(scope: ConnectionScope, ref: ConnectionRef): Promise<ConnectionRecord> {
    const record = 'id' in ref ? await this.#store.getById(ref.id) : await this.#store.getByName(ref.name);
    // Hidden and missing take the same path and the same message, so existence does not leak;
    // a scoped caller is told what it can see, so a task run knows why it found nothing.
    if (
      !record ||
      (scope.kind === 'workspace' && !(await this.#store.isAttached(record.id, scope.workspaceId)))
    ) {
      throw scope.kind === 'workspace'
        ? notVisible(ref, await this.#store.getWorkspaceName(scope.workspaceId))
        : notFound(ref);
    }
    return record;
  }

  #validateType(type: unknown): string {
    if (typeof type !== 'string' || type.trim() === '' || type.length > MAX_TYPE_LENGTH) {
      throw new ApiError(
        'invalid_connection',
        `Invalid connection type ${describe(type)}: give a non-empty string of at most ${MAX_TYPE_LENGTH} characters, e.g. "HTTPFILE".`,
        { field: 'type' },
      );
    }
    return type;
  }

  /** Checks the details and returns a plain JSON copy; messages name only shapes and sizes, never values. */
  #validateDetails(details: unknown): ConnectionDetails {
    if (!isPlainObject(details)) {
      const got = details === null ? 'null' : Array.isArray(details) ? 'an array' : `a ${typeof details}`;
      throw new ApiError(
        'invalid_connection',
        `Connection details must be a JSON object, got ${got}: pass e.g. { "host": "https://…" }.`,
        {
          field: 'details',
        },
      );
    }
    let json: string;
    try {
      json = JSON.stringify(details);
    } catch {
      throw new ApiError(
        'invalid_connection',
        'Connection details cannot be encoded as JSON (a BigInt or a circular reference?): pass plain JSON values only.',
        { field: 'details' },
      );
    }
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > this.#maxDetailsBytes) {
      throw new ApiError(
        'invalid_connection',
        `Connection details are ${bytes} bytes of JSON, over the ${this.#maxDetailsBytes}-byte cap: store large files elsewhere and put their location in the details.`,
        { field: 'details', bytes, maxBytes: this.#maxDetailsBytes },
      );
    }
    return JSON.parse(json) as ConnectionDetails;
  }
}

/** The wire form; `visibleNames` (null = all) filters `workspaceNames` for a scoped caller. */
function toDto(record: ConnectionRecord, visibleNames: ReadonlySet<string> | null = null): ConnectionDto {
  // Field by field, so nothing the store adds can reach the wire.
  return {
    id: record.id,
    name: record.name,
    type: record.type,
    createdAt: record.createdAt,
    workspaceNames: record.workspaceNames.filter((n) => visibleNames === null || visibleNames.has(n)),
  };
}

function notFound(ref: ConnectionRef): ApiError {
  if ('id' in ref) {
    return new ApiError(
      'connection_not_found',
      `No connection has id ${describe(ref.id)}; list connections to see the ids.`,
      {
        id: ref.id,
      },
    );
  }
  return new ApiError(
    'connection_not_found',
    `No connection is named ${describe(ref.name)}; list connections to see the names.`,
    {
      name: ref.name,
    },
  );
}

/**
 * `connection_not_found` for a workspace-scoped caller (a workspace token, or a task run
 * created with one): the same whether the connection is missing or only not attached, and
 * saying which connections the caller sees and how to make one visible.
 */
function notVisible(ref: ConnectionRef, workspaceName: string | null): ApiError {
  const what = 'id' in ref ? `has id ${describe(ref.id)}` : `is named ${describe(ref.name)}`;
  const ws = workspaceName === null ? 'its workspace' : `workspace ${describe(workspaceName)}`;
  return new ApiError(
    'connection_not_found',
    `No connection ${what} among those this token can see: it is bounded to ${ws} and sees only the connections attached to it. ` +
      'Attach the connection to that workspace (workspace.addConnection(name), with an admin token), or create the task with an admin token so its runs see every connection.',
    { ...('id' in ref ? { id: ref.id } : { name: ref.name }), workspace: workspaceName },
  );
}

function workspaceNotFound(workspaceId: number): ApiError {
  return new ApiError(
    'workspace_not_found',
    `No workspace has id ${workspaceId}; list workspaces to find the right one.`,
    {
      workspaceId,
    },
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A short, quoted rendering of a user-given (non-secret) value for a message. */
function describe(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : `(a ${typeof value})`;
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(shown);
}
