import type { Principal } from '../../auth/index.js';
import type { ServerContext } from '../server-context.js';
import { MAX_NUMERIC_ID, parseNumericId } from '../../validation/index.js';

/** Optional workspace filters of a cross-workspace listing. */
export interface WorkspaceFilter {
  /** As the query names it (see {@link WORKSPACE_ID_QUERY}); parsed strictly here. */
  workspaceId?: string;
  workspaceName?: string;
}

/**
 * The `workspaceId` query parameter of a listing: a string of canonical decimal digits, so that
 * `0x2`, `1e3`, `+2`, ` 2` or `02` are refused (`invalid_request`) instead of being coerced
 * to a number (the schema's validator reads `0x2` as 2 for an integer).
 */
export const WORKSPACE_ID_QUERY = {
  type: 'string',
  pattern: '^[1-9][0-9]{0,9}$',
  description: `only this workspace (its id: decimal digits, 1 to ${MAX_NUMERIC_ID})`,
} as const;

/**
 * The workspaces a listing covers, id → name: every workspace the principal can see, or the
 * one the filter names (an unknown or invisible one is `workspace_not_found`).
 */
export async function workspacesInScope(
  ctx: ServerContext,
  principal: Principal,
  filter: WorkspaceFilter = {},
): Promise<Map<number, string>> {
  const id =
    filter.workspaceId === undefined ? undefined : parseNumericId(filter.workspaceId, 'Workspace id');
  if (filter.workspaceName !== undefined && filter.workspaceName !== '') {
    const ws = await ctx.workspaces.getByName(principal, filter.workspaceName);
    if (id !== undefined && id !== ws.id) return new Map();
    return new Map([[ws.id, ws.name]]);
  }
  if (id !== undefined) {
    const ws = await ctx.workspaces.getById(principal, id);
    return new Map([[ws.id, ws.name]]);
  }
  return new Map((await ctx.workspaces.list(principal)).map((w) => [w.id, w.name]));
}
