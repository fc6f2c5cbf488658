import type { WhoAmIDto, WorkspaceDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import type { Principal } from '../auth/index.js';
import type { WorkspaceStore } from './workspace-store.js';
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
    // One store step, so nodes starting together on one database all get the same workspace.
    return this.store.ensureDefaultWorkspace(DEFAULT_WORKSPACE_NAME, new Date(this.now()).toISOString());
  }

  async create(principal: Principal, name: unknown): Promise<WorkspaceDto> {
    if (principal.kind !== 'admin') {
      throw new ApiError(
        'forbidden',
        'A workspace-scoped token cannot create workspaces; use an admin token.',
      );
    }
    const wsName = validateName('workspace', name);
    const created = await this.store.createWorkspace(wsName, new Date(this.now()).toISOString());
    if (created.outcome === 'name_taken') {
      throw new ApiError(
        'workspace_exists',
        `A workspace named "${wsName}" already exists; use getWorkspace("${wsName}") to open it.`,
        { name: wsName },
      );
    }
    return created.workspace;
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
    if (principal.kind === 'workspace') {
      // The same words whether it is missing or only hidden; they say what this token sees.
      const own = await this.store.getWorkspaceById(principal.workspaceId);
      throw new ApiError(
        'workspace_not_found',
        `No workspace named "${name}" among those this token can see: it is bounded to workspace "${own?.name ?? String(principal.workspaceId)}". ` +
          'Use that workspace, or an admin token (a task created with one runs with admin rights).',
        { name },
      );
    }
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

  /**
   * Who the principal is and its default workspace: a scoped token's own, else `home` when
   * given (the task's workspace, for a task run acting as an admin), else the default one.
   */
  async whoAmI(principal: Principal, home?: number): Promise<WhoAmIDto> {
    const homeWorkspace =
      principal.kind === 'admin' && home !== undefined ? await this.store.getWorkspaceById(home) : null;
    const workspace =
      principal.kind === 'admin'
        ? (homeWorkspace ?? (await this.ensureDefault()))
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
