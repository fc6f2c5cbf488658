import type { WorkspaceDto } from '@quoll/client/wire';
import type { CreateWorkspaceOutcome, WorkspaceStore } from '../../workspaces/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import { PG_UNIQUE_VIOLATION, sqlState } from './postgres-database.js';

interface WorkspaceRow {
  id: number;
  name: string;
  created_at: string;
  is_default: boolean;
}

const toWorkspace = (r: WorkspaceRow): WorkspaceDto => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at,
  isDefault: r.is_default,
});

/** {@link WorkspaceStore} on PostgreSQL (table `workspaces`, migrations 0001 and 0006). */
export class PostgresWorkspaceStore implements WorkspaceStore {
  constructor(private readonly db: PostgresDatabase) {}

  async createWorkspace(name: string, createdAt: string): Promise<CreateWorkspaceOutcome> {
    const row = await this.db.one<WorkspaceRow>(
      `INSERT INTO workspaces (name, created_at, is_default) VALUES ($1, $2, false)
       ON CONFLICT (name) DO NOTHING RETURNING *`,
      [name, createdAt],
    );
    return row ? { outcome: 'created', workspace: toWorkspace(row) } : { outcome: 'name_taken' };
  }

  async ensureDefaultWorkspace(name: string, createdAt: string): Promise<WorkspaceDto> {
    // Any unique index (the name, or "one default") turns a racing second insert into a
    // no-op; PostgreSQL waits for the first inserter to commit before deciding.
    await this.db.run(
      `INSERT INTO workspaces (name, created_at, is_default)
       SELECT $1, $2, true WHERE NOT EXISTS (SELECT 1 FROM workspaces WHERE is_default)
       ON CONFLICT DO NOTHING`,
      [name, createdAt],
    );
    let row = await this.db.one<WorkspaceRow>('SELECT * FROM workspaces WHERE is_default');
    if (row === null) {
      // A plain workspace already carries the name: promote it (a racing promoter may win).
      try {
        await this.db.run(
          'UPDATE workspaces SET is_default = true WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM workspaces WHERE is_default)',
          [name],
        );
      } catch (err) {
        if (sqlState(err) !== PG_UNIQUE_VIOLATION) throw err;
      }
      row = await this.db.one<WorkspaceRow>('SELECT * FROM workspaces WHERE is_default');
    }
    if (row === null) throw new Error('no default workspace after creating one');
    return toWorkspace(row);
  }

  async getWorkspaceById(id: number): Promise<WorkspaceDto | null> {
    const r = await this.db.one<WorkspaceRow>('SELECT * FROM workspaces WHERE id = $1', [id]);
    return r ? toWorkspace(r) : null;
  }

  async getWorkspaceByName(name: string): Promise<WorkspaceDto | null> {
    const r = await this.db.one<WorkspaceRow>('SELECT * FROM workspaces WHERE name = $1', [name]);
    return r ? toWorkspace(r) : null;
  }

  async listWorkspaces(): Promise<WorkspaceDto[]> {
    return (await this.db.rows<WorkspaceRow>('SELECT * FROM workspaces ORDER BY id')).map(toWorkspace);
  }

  async getDefaultWorkspace(): Promise<WorkspaceDto | null> {
    const r = await this.db.one<WorkspaceRow>('SELECT * FROM workspaces WHERE is_default');
    return r ? toWorkspace(r) : null;
  }
}
