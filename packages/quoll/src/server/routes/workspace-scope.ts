import type { Principal } from '../../auth/index.js';
import type { ServerContext } from '../server-context.js';

/** Optional workspace filters of a cross-workspace listing. */
export interface WorkspaceFilter {
  workspaceId?: number;
  workspaceName?: string;
}

/**
 * The workspaces a listing covers, id → name: every workspace the principal can see, or the
 * one the filter names (an unknown or invisible one is `workspace_not_found`).
 */
export async function workspacesInScope(
  ctx: ServerContext,
  principal: Principal,
  filter: WorkspaceFilter = {},
): Promise<Map<number, string>> {
  if (filter.workspaceName !== undefined && filter.workspaceName !== '') {
    const ws = await ctx.workspaces.getByName(principal, filter.workspaceName);
    if (filter.workspaceId !== undefined && filter.workspaceId !== ws.id) return new Map();
    return new Map([[ws.id, ws.name]]);
  }
  if (filter.workspaceId !== undefined) {
    const ws = await ctx.workspaces.getById(principal, filter.workspaceId);
    return new Map([[ws.id, ws.name]]);
  }
  return new Map((await ctx.workspaces.list(principal)).map((w) => [w.id, w.name]));
}
