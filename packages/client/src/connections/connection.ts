import { inspectCustom, renderFields } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type { ConnectionDto, ConnectionWithDetailsDto } from '../wire/index.js';

/** What every print of a connection shows in place of its details. */
export const DETAILS_MASK = '*****';

/**
 * A named, typed set of details (a URL, credentials …) kept encrypted by the server and
 * attached to workspaces. The object never holds the details: `details()` fetches them
 * (an audited read) each time, so no print, log or `JSON.stringify` of it can show them.
 * @example
 *   const connection = await client.getConnection('houseprice_arrow_table');
 *   console.log(connection);                 // Details  *****
 *   const { host } = await connection.details();
 */
export class Connection {
  readonly #http: HttpTransport;
  readonly #dto: ConnectionDto;

  /** @internal */
  constructor(http: HttpTransport, dto: ConnectionDto) {
    this.#http = http;
    // Copy field by field: whatever else a DTO carries never reaches this object.
    this.#dto = {
      id: dto.id,
      name: dto.name,
      type: dto.type,
      createdAt: dto.createdAt,
      workspaceNames: [...dto.workspaceNames],
    };
  }

  /** The connection's UUID. */
  get id(): string {
    return this.#dto.id;
  }
  /** The instance-wide unique name. */
  get name(): string {
    return this.#dto.name;
  }
  /** The user-defined type, e.g. `HTTPFILE`. */
  get type(): string {
    return this.#dto.type;
  }
  /** When it was created (ISO 8601). */
  get createdAt(): string {
    return this.#dto.createdAt;
  }
  /** Names of the workspaces it is attached to (as of when this object was fetched). */
  get workspaceNames(): string[] {
    return [...this.#dto.workspaceNames];
  }

  /**
   * The full, unmasked details object, read from the server; each call is recorded in
   * the server's audit trail under this token's subject.
   * @example const { host } = await connection.details();
   */
  async details(): Promise<Record<string, unknown>> {
    const dto = await this.#http.json<ConnectionWithDetailsDto>(
      'GET',
      `/v1/connections/${encodeURIComponent(this.name)}/details`,
    );
    return dto.details;
  }

  /** Deletes the connection; it is detached from every workspace. */
  async deleteConnection(): Promise<void> {
    await this.#http.send('DELETE', `/v1/connections/${encodeURIComponent(this.name)}`);
  }

  /** The plain data, without details. */
  toJSON(): ConnectionDto {
    return { ...this.#dto, workspaceNames: [...this.#dto.workspaceNames] };
  }

  /** The seed's field/value table: Name, Connection Type, Details `*****`, Created At, Linked Workspaces. */
  toString(): string {
    return renderFields([
      ['Name', this.name],
      ['Connection Type', this.type],
      ['Details', DETAILS_MASK],
      ['Created At', this.createdAt],
      ['Linked Workspaces', formatWorkspaceNames(this.#dto.workspaceNames)],
    ]);
  }

  [inspectCustom](): string {
    return this.toString();
  }
}

/** `['a', 'b']`, as the seed prints linked workspaces. */
export function formatWorkspaceNames(names: readonly string[]): string {
  return `[${names.map((n) => `'${n}'`).join(', ')}]`;
}
