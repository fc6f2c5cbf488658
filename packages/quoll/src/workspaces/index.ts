export { WorkspaceService, DEFAULT_WORKSPACE_NAME } from './workspace-service.js';
