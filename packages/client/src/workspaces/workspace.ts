import { Connection, ConnectionList } from '../connections/index.js';
import { inspectCustom, renderFields } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type { ConnectionDto, WorkspaceDto } from '../wire/index.js';

/** A workspace: models, pipelines and orchestrations live in one. */
export class Workspace {
  /** @internal */
  constructor(
    private readonly http: HttpTransport,
    private readonly dto: WorkspaceDto,
  ) {}

  get id(): number {
    return this.dto.id;
  }
  get name(): string {
    return this.dto.name;
  }
  get createdAt(): string {
    return this.dto.createdAt;
  }
  get isDefault(): boolean {
    return this.dto.isDefault;
  }

  /** Attaches an existing connection (by name) to this workspace. Idempotent. */
  async addConnection(name: string): Promise<void> {
    await this.http.send('PUT', `/v1/workspaces/${this.id}/connections/${encodeURIComponent(name)}`);
  }

  /** Detaches a connection from this workspace; the connection itself remains. */
  async removeConnection(name: string): Promise<void> {
    await this.http.send('DELETE', `/v1/workspaces/${this.id}/connections/${encodeURIComponent(name)}`);
  }

  /** Connections attached to this workspace; the list prints as a table with details `*****`. */
  async listConnections(): Promise<ConnectionList> {
    const dtos = await this.http.json<ConnectionDto[]>('GET', `/v1/workspaces/${this.id}/connections`);
    return ConnectionList.fill(dtos.map((dto) => new Connection(this.http, dto)));
  }

  /** The plain data. */
  toJSON(): WorkspaceDto {
    return { ...this.dto };
  }

  toString(): string {
    return renderFields([
      ['name', this.name],
      ['id', this.id],
      ['created at', this.createdAt],
      ['default', this.isDefault],
    ]);
  }

  [inspectCustom](): string {
    return this.toString();
  }
}
