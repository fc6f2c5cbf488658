export { Workspace } from './workspace.js';
