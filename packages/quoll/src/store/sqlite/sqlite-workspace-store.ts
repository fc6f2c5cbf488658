import type { WorkspaceDto } from '@quoll/client/wire';
import type { CreateWorkspaceOutcome, WorkspaceStore } from '../../workspaces/index.js';
import type { SqliteHandle } from './sqlite-database.js';
import { isUniqueViolation } from './sqlite-errors.js';

interface WorkspaceRow {
  id: number;
  name: string;
  created_at: string;
  is_default: number;
}

const toWorkspace = (r: WorkspaceRow): WorkspaceDto => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at,
  isDefault: r.is_default === 1,
});

/** {@link WorkspaceStore} on SQLite (table `workspaces`, migrations 0001 and 0006). */
export class SqliteWorkspaceStore implements WorkspaceStore {
  constructor(private readonly db: SqliteHandle) {}

  async createWorkspace(name: string, createdAt: string): Promise<CreateWorkspaceOutcome> {
    try {
      const row = this.db
        .prepare('INSERT INTO workspaces (name, created_at, is_default) VALUES (?, ?, 0) RETURNING *')
        .get(name, createdAt) as WorkspaceRow;
      return { outcome: 'created', workspace: toWorkspace(row) };
    } catch (err) {
      if (isUniqueViolation(err)) return { outcome: 'name_taken' };
      throw err;
    }
  }

  async ensureDefaultWorkspace(name: string, createdAt: string): Promise<WorkspaceDto> {
    return this.db.transaction((): WorkspaceDto => {
      this.db
        .prepare(
          `INSERT INTO workspaces (name, created_at, is_default)
           SELECT ?, ?, 1 WHERE NOT EXISTS (SELECT 1 FROM workspaces WHERE is_default = 1)
           ON CONFLICT DO NOTHING`,
        )
        .run(name, createdAt);
      // A plain workspace may already carry the name (from before defaults existed): promote it.
      this.db
        .prepare(
          'UPDATE workspaces SET is_default = 1 WHERE name = ? AND NOT EXISTS (SELECT 1 FROM workspaces WHERE is_default = 1)',
        )
        .run(name);
      return toWorkspace(
        this.db.prepare('SELECT * FROM workspaces WHERE is_default = 1').get() as WorkspaceRow,
      );
    })();
  }

  async getWorkspaceById(id: number): Promise<WorkspaceDto | null> {
    const r = this.db.prepare('SELECT * FROM workspaces WHERE id = ?').get(id) as WorkspaceRow | undefined;
    return r ? toWorkspace(r) : null;
  }

  async getWorkspaceByName(name: string): Promise<WorkspaceDto | null> {
    const r = this.db.prepare('SELECT * FROM workspaces WHERE name = ?').get(name) as
      WorkspaceRow | undefined;
    return r ? toWorkspace(r) : null;
  }

  async listWorkspaces(): Promise<WorkspaceDto[]> {
    return (this.db.prepare('SELECT * FROM workspaces ORDER BY id').all() as WorkspaceRow[]).map(toWorkspace);
  }

  async getDefaultWorkspace(): Promise<WorkspaceDto | null> {
    const r = this.db.prepare('SELECT * FROM workspaces WHERE is_default = 1').get() as
      WorkspaceRow | undefined;
    return r ? toWorkspace(r) : null;
  }
}
