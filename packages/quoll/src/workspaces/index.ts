export { WorkspaceService, DEFAULT_WORKSPACE_NAME } from './workspace-service.js';
export { canSeeWorkspace } from './can-see-workspace.js';
export type { CreateWorkspaceOutcome, WorkspaceStore } from './workspace-store.js';
