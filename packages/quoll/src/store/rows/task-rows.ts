import type { TaskRunStatus, TaskStatus, TaskType } from '@quoll/client/wire';
import type { TaskLimits, TaskRecord, TaskRunRecord, TaskRunsAs, TickRecord } from '../../scheduler/index.js';

export interface TaskRow {
  id: string;
  name: string;
  type: TaskType;
  status: TaskStatus;
  orchestration_id: string;
  workspace_id: number;
  schedule: string | null;
  timezone: string | null;
  json_args: string;
  timeout_seconds: number | null;
  limits_json: string;
  /** SQLite answers 0/1, PostgreSQL a boolean. */
  killed: number | boolean;
  status_reason: string | null;
  runs_as: TaskRunsAs;
  last_tick: number | null;
  created_at: string;
  updated_at: string;
  last_run_status: TaskRunStatus | null;
}
export interface RunRow {
  id: string;
  task_id: string;
  tick: number | null;
  status: TaskRunStatus;
  exit_code: number | null;
  reason: string | null;
  pid: number | null;
  node_id: string | null;
  created_at: string;
  updated_at: string;
}
export interface TickRow {
  task_id: string;
  tick: number;
  kind: 'skipped' | 'missed';
  reason: string;
  recorded_at: string;
}

export const toTask = (r: TaskRow): TaskRecord => ({
  id: r.id,
  name: r.name,
  type: r.type,
  status: r.status,
  orchestrationId: r.orchestration_id,
  workspaceId: r.workspace_id,
  schedule: r.schedule,
  timezone: r.timezone,
  jsonArgs: JSON.parse(r.json_args) as Record<string, unknown>,
  timeout: r.timeout_seconds,
  limits: JSON.parse(r.limits_json) as TaskLimits,
  killed: r.killed === true || r.killed === 1,
  statusReason: r.status_reason,
  runsAs: r.runs_as,
  lastTick: r.last_tick,
  lastRunStatus: r.last_run_status ?? 'unknown',
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
export const toRun = (r: RunRow): TaskRunRecord => ({
  id: r.id,
  taskId: r.task_id,
  status: r.status,
  tick: r.tick,
  exitCode: r.exit_code,
  reason: r.reason,
  pid: r.pid,
  nodeId: r.node_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
export const toTick = (r: TickRow): TickRecord => ({
  taskId: r.task_id,
  tick: r.tick,
  kind: r.kind,
  reason: r.reason,
  recordedAt: r.recorded_at,
});

/** The newest run's status, computed in the same query as the task. */
export const TASK_SELECT = `SELECT t.*, (SELECT r.status FROM task_runs r WHERE r.task_id = t.id
  ORDER BY r.created_at DESC, r.id DESC LIMIT 1) AS last_run_status FROM tasks t`;
