import type { TaskDto, TaskRunDto, TaskTickDto } from '@quoll/client/wire';
import type { TaskRecord, TaskRunRecord, TickRecord } from './task-store.js';

/** The wire form of a task; the workspace name comes from the workspace store. */
export function toTaskDto(task: TaskRecord, workspaceName: string): TaskDto {
  return {
    id: task.id,
    name: task.name,
    type: task.type,
    status: task.status,
    orchestrationId: task.orchestrationId,
    workspaceId: task.workspaceId,
    workspaceName,
    schedule: task.schedule,
    timezone: task.timezone,
    jsonArgs: task.jsonArgs,
    timeout: task.timeout,
    limits: task.limits,
    killed: task.killed,
    lastRunStatus: task.lastRunStatus,
    statusReason: task.statusReason,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
  };
}

/** The wire form of a task run (the tick as RFC 3339). */
export function toTaskRunDto(run: TaskRunRecord): TaskRunDto {
  return {
    id: run.id,
    taskId: run.taskId,
    status: run.status,
    tick: run.tick === null ? null : new Date(run.tick).toISOString(),
    exitCode: run.exitCode,
    reason: run.reason,
    node: run.nodeId,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
  };
}

/** The wire form of a skipped or missed tick (the tick as RFC 3339). */
export function toTaskTickDto(t: TickRecord): TaskTickDto {
  return {
    taskId: t.taskId,
    tick: new Date(t.tick).toISOString(),
    kind: t.kind,
    reason: t.reason,
    recordedAt: t.recordedAt,
  };
}
