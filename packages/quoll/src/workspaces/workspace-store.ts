import type { WorkspaceDto } from '@quoll/client/wire';

/** What {@link WorkspaceStore.createWorkspace} did: created it, or found the name taken (nothing changed). */
export type CreateWorkspaceOutcome =
  { outcome: 'created'; workspace: WorkspaceDto } | { outcome: 'name_taken' };

/**
 * Storage port for workspaces. Names are unique per instance and exactly one workspace is
 * the default. Every method is one atomic step, safe when several processes (nodes) use the
 * same store at once.
 */
export interface WorkspaceStore {
  /** Creates a (non-default) workspace, or reports the name taken. */
  createWorkspace(name: string, createdAt: string): Promise<CreateWorkspaceOutcome>;
  /**
   * The default workspace, created under `name` when the instance has none. Many callers at
   * once (nodes starting together) all get the same workspace and none fails.
   */
  ensureDefaultWorkspace(name: string, createdAt: string): Promise<WorkspaceDto>;
  getWorkspaceById(id: number): Promise<WorkspaceDto | null>;
  getWorkspaceByName(name: string): Promise<WorkspaceDto | null>;
  /** Every workspace, oldest first. */
  listWorkspaces(): Promise<WorkspaceDto[]>;
  getDefaultWorkspace(): Promise<WorkspaceDto | null>;
}
