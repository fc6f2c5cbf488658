// Table rows as both backends read them, and their mapping to domain records: one place, so
// SQLite and PostgreSQL cannot drift apart in what a column means.
export type { ModelRow } from './model-rows.js';
export { toModel } from './model-rows.js';
export type { DeploymentRow, PipelineRow, PipelineVersionRow } from './pipeline-rows.js';
export { toDeployment, toPipeline, toPipelineVersion } from './pipeline-rows.js';
export type { RunRow, TaskRow, TickRow } from './task-rows.js';
export { TASK_SELECT, toRun, toTask, toTick } from './task-rows.js';
export type { TokenRow } from './token-rows.js';
export { toToken } from './token-rows.js';
export type { OrchestrationRow } from './orchestration-rows.js';
export { toOrchestration } from './orchestration-rows.js';
export type { ConnectionAuditRow, ConnectionRow } from './connection-rows.js';
export { toConnection, toConnectionAudit, toSealedConnection } from './connection-rows.js';
export type { NodeKeyRow } from './key-check-rows.js';
export { HELD_KEY_IDS_SEPARATOR, toNodeKeyReport } from './key-check-rows.js';
