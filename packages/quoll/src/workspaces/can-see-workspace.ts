import type { Principal } from '../auth/index.js';

/** Whether the principal may see things of this workspace: admins see all, scoped tokens their own. */
export function canSeeWorkspace(principal: Principal, workspaceId: number): boolean {
  return principal.kind === 'admin' || principal.workspaceId === workspaceId;
}
