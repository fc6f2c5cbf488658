import type { WhoAmIDto, WorkspaceDto } from '@quoll/client/wire';
import { ApiError } from '../server/api-error.js';
import type { Principal, WorkspaceStore } from '../store/index.js';
import { validateName } from '../validation/index.js';
import { canSeeWorkspace } from './can-see-workspace.js';

/** Name of the workspace every instance starts with. */
export const DEFAULT_WORKSPACE_NAME = 'default';

/** Workspaces, seen through the caller's principal: a scoped token sees only its own. */
export class WorkspaceService {
  constructor(
    private readonly store: WorkspaceStore,
    private readonly now: () => number,
  ) {}

  /** Creates the default workspace if the instance has none. */
  async ensureDefault(): Promise<WorkspaceDto> {
    const existing = await this.store.getDefaultWorkspace();
    if (existing) return existing;
    return this.store.createWorkspace(DEFAULT_WORKSPACE_NAME, new Date(this.now()).toISOString(), true);
  }

  async create(principal: Principal, name: unknown): Promise<WorkspaceDto> {
    if (principal.kind !== 'admin') {
      throw new ApiError(
        'forbidden',
        'A workspace-scoped token cannot create workspaces; use an admin token.',
      );
    }
    return this.store.createWorkspace(validateName('workspace', name), new Date(this.now()).toISOString());
  }

  async list(principal: Principal): Promise<WorkspaceDto[]> {
    const all = await this.store.listWorkspaces();
    return principal.kind === 'admin' ? all : all.filter((w) => w.id === principal.workspaceId);
  }

  /** By name; a workspace the principal cannot see answers exactly like a missing one. */
  async getByName(principal: Principal, name: string, createIfNotExist = false): Promise<WorkspaceDto> {
    const ws = await this.store.getWorkspaceByName(name);
    if (ws && canSeeWorkspace(principal, ws.id)) return ws;
    if (!ws && createIfNotExist && principal.kind === 'admin') return this.create(principal, name);
    throw notFound(name);
  }

  /** By id, with the same visibility rule. */
  async getById(principal: Principal, id: number): Promise<WorkspaceDto> {
    const ws = Number.isInteger(id) ? await this.store.getWorkspaceById(id) : null;
    if (ws && canSeeWorkspace(principal, ws.id)) return ws;
    throw new ApiError(
      'workspace_not_found',
      `No workspace with id ${String(id)} exists; listWorkspaces() shows the ones you can use.`,
      {
        id,
      },
    );
  }

  async whoAmI(principal: Principal): Promise<WhoAmIDto> {
    const workspace =
      principal.kind === 'admin'
        ? await this.ensureDefault()
        : await this.getById(principal, principal.workspaceId);
    return { kind: principal.kind, workspace, subject: principal.subject };
  }
}

function notFound(name: string): ApiError {
  return new ApiError(
    'workspace_not_found',
    `Workspace with name "${name}" does not exist. To create it, call getWorkspace("${name}", { createIfNotExist: true }) or createWorkspace("${name}").`,
    { name },
  );
}
