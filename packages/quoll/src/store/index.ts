export type {
  DeploymentRecord,
  ModelStore,
  NewModelVersion,
  PipelineRecord,
  PipelineStore,
  Principal,
  TokenRecord,
  TokenStore,
  WorkspaceStore,
} from './core-store.js';
export { SqliteCoreStore, isUniqueViolation } from './sqlite/sqlite-core-store.js';
export { SqliteConnectionStore } from './sqlite/sqlite-connection-store.js';
export { SqliteOrchestrationStore } from './sqlite/sqlite-orchestration-store.js';
export { SqliteTaskStore } from './sqlite/sqlite-task-store.js';
export type { SqliteTaskStoreOptions } from './sqlite/sqlite-task-store.js';
export { SqliteLogSegmentIndex } from './sqlite/sqlite-log-segment-index.js';
export { openSqliteDatabase, applyMigrations, MIGRATIONS_DIR } from './sqlite/sqlite-database.js';
export type { SqliteHandle } from './sqlite/sqlite-database.js';
