import type {
  Connection,
  ConnectionAuditEntryDto,
  ModelVersion,
  Orchestration,
  PackagingLogLine,
  Pipeline,
  PipelineStatusDto,
  PipelineVersionDto,
  Task,
  TaskRun,
  TaskRunLogLine,
  TaskTick,
  Workspace,
  Cell,
} from '@quoll/client';
import { formatTime } from './format-time.js';
import type { SessionInfo, TokenInfo } from '../auth/index.js';

/** A table column (or a field of a one-object view): header and how to read the cell. */
export type Column<T> = readonly [header: string, cell: (item: T) => Cell];

/** `4dd816...df4e12`, as listings show a SHA-256. */
export function shortSha(sha: string): string {
  return sha.length <= 15 ? sha : `${sha.slice(0, 6)}...${sha.slice(-6)}`;
}

const tensors = (t: readonly { name: string }[]): string => t.map((x) => x.name).join(', ');

// Every view prints times through formatTime: one ISO 8601 form in all CLI output.

export const WORKSPACE_VIEW: readonly Column<Workspace>[] = [
  ['id', (w) => w.id],
  ['name', (w) => w.name],
  ['created at', (w) => formatTime(w.createdAt)],
  ['default', (w) => w.isDefault],
];

export const MODEL_VIEW: readonly Column<ModelVersion>[] = [
  ['name', (m) => m.name],
  ['version', (m) => m.version],
  ['file name', (m) => m.fileName],
  ['sha', (m) => shortSha(m.sha)],
  ['inputs', (m) => tensors(m.inputs)],
  ['outputs', (m) => tensors(m.outputs)],
  ['tensor fields', (m) => m.config.tensorFields?.join(', ') ?? null],
  ['created at', (m) => formatTime(m.createdAt)],
  ['workspace id', (m) => m.workspaceId],
];

export const PIPELINE_VIEW: readonly Column<Pipeline>[] = [
  ['name', (p) => p.name],
  ['created at', (p) => formatTime(p.createdAt)],
  ['updated at', (p) => formatTime(p.toJSON().updatedAt)],
  ['deployed', (p) => p.toJSON().deployed],
  [
    'steps',
    (p) =>
      p
        .toJSON()
        .steps.map((s) => s.model.name)
        .join(', ') || null,
  ],
  ['versions', (p) => p.toJSON().versions.length],
  ['workspace id', (p) => p.workspaceId],
];

export const PIPELINE_VERSION_VIEW: readonly Column<PipelineVersionDto>[] = [
  ['version', (v) => v.version],
  ['created at', (v) => formatTime(v.createdAt)],
  ['steps', (v) => v.steps.map((s) => s.model.name).join(', ')],
];

export const PIPELINE_STATUS_VIEW: readonly Column<PipelineStatusDto>[] = [
  ['status', (s) => s.status],
  ['version', (s) => s.version],
  ['workers', (s) => s.workers],
  ['deployed at', (s) => formatTime(s.deployedAt)],
  [
    'models',
    (s) =>
      s.models
        .map(
          (m) =>
            `${m.name} (${m.status}; ${m.loadedOn.length ? `loaded on worker ${m.loadedOn.join(', ')}` : 'not loaded'})`,
        )
        .join(', ') || null,
  ],
  ['details', (s) => s.details.join('; ') || null],
  [
    'replicas',
    // Absent from an older server's answer.
    (s) =>
      (Array.isArray(s.replicas) ? s.replicas : [])
        .map((r) => `${r.node} (${r.nodeStatus === 'up' ? r.status : `node ${r.nodeStatus}`})`)
        .join(', ') || null,
  ],
];

export const CONNECTION_VIEW: readonly Column<Connection>[] = [
  ['name', (c) => c.name],
  ['connection type', (c) => c.type],
  ['details', () => '*****'],
  ['created at', (c) => formatTime(c.createdAt)],
  ['linked workspaces', (c) => `[${c.workspaceNames.map((n) => `'${n}'`).join(', ')}]`],
];

export const ORCHESTRATION_VIEW: readonly Column<Orchestration>[] = [
  ['id', (o) => o.id],
  ['name', (o) => o.name || null],
  ['status', (o) => o.toJSON().status],
  ['filename', (o) => o.fileName],
  ['sha', (o) => shortSha(o.sha)],
  ['created at', (o) => formatTime(o.createdAt)],
  ['updated at', (o) => formatTime(o.updatedAt)],
  ['workspace id', (o) => o.workspaceId],
  ['workspace name', (o) => o.workspaceName],
];

/** A packaging log line as the CLI prints it: `<time> <source> <line>`. */
export function packagingLogLine(line: PackagingLogLine): string {
  return `${formatTime(line.time)} ${line.source} ${line.line}`;
}

export const TASK_VIEW: readonly Column<Task>[] = [
  ['id', (t) => t.id],
  ['name', (t) => t.name],
  ['last run status', (t) => t.toJSON().lastRunStatus],
  ['type', (t) => t.type],
  ['active', (t) => t.active],
  ['schedule', (t) => t.schedule],
  ['status reason', (t) => t.statusReason],
  ['created at', (t) => formatTime(t.createdAt)],
  ['updated at', (t) => formatTime(t.updatedAt)],
  ['workspace id', (t) => t.workspaceId],
  ['workspace name', (t) => t.workspaceName],
];

export const TASK_RUN_VIEW: readonly Column<TaskRun>[] = [
  ['run id', (r) => r.id],
  ['status', (r) => r.status],
  ['exit code', (r) => r.exitCode],
  ['reason', (r) => r.reason],
  ['tick', (r) => (r.tick === null ? null : formatTime(r.tick))],
  ['created at', (r) => formatTime(r.createdAt)],
  ['updated at', (r) => formatTime(r.updatedAt)],
];

export const TASK_TICK_VIEW: readonly Column<TaskTick>[] = [
  ['tick', (t) => formatTime(t.tick)],
  ['kind', (t) => t.kind],
  ['reason', (t) => t.reason],
  ['recorded at', (t) => formatTime(t.recordedAt)],
];

export const AUDIT_VIEW: readonly Column<ConnectionAuditEntryDto>[] = [
  ['at', (e) => formatTime(e.at)],
  ['subject', (e) => e.subject],
  ['connection', (e) => e.connectionName],
  ['action', (e) => e.action],
];

/** Console sessions (`quoll admin sessions`). */
export const SESSION_VIEW: readonly Column<SessionInfo>[] = [
  ['id', (s) => s.id],
  ['subject', (s) => s.subject],
  ['scope', (s) => (s.kind === 'admin' ? 'admin' : `workspace ${String(s.workspaceId)}`)],
  ['created', (s) => formatTime(s.createdAt)],
  ['expires', (s) => formatTime(s.expiresAt)],
];

export const TOKEN_VIEW: readonly Column<TokenInfo>[] = [
  ['id', (t) => t.id],
  ['subject', (t) => t.subject],
  ['scope', (t) => (t.kind === 'admin' ? 'admin' : `workspace ${String(t.workspaceId)}`)],
  ['created', (t) => formatTime(t.createdAt)],
  ['expires', (t) => (t.expiresAt === null ? 'never' : formatTime(t.expiresAt))],
];

/** A captured run line as the CLI prints it: `<time> <stream> <line>`. */
export function runLogLine(line: TaskRunLogLine): string {
  return `${formatTime(line.time)} ${line.stream} ${line.line}`;
}
