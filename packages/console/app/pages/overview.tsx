import type { JSX } from 'preact';
import { useMemo } from 'preact/hooks';
import type { PipelineDto, PipelineStatusDto, TaskDto, WorkspaceDto } from '@quoll/client';
import { Link } from '../router.js';
import { api, type ConsoleSession } from '../session.js';
import { DataTable, ErrorBox, PageTitle, Status, TimeChart, formatTime, useAsync } from '../ui.js';

/** GET /v1/health. */
interface Health {
  status: string;
  inferenceLogs: string;
  database: string;
  node: string;
  runs: { launcher: string; sandboxed: boolean; reason: string | null; network: string };
}

/** One pipeline point of GET /v1/metrics/window. */
export interface WindowPoint {
  workspaceId: number;
  pipeline: string;
  requestsPerSecond: number;
  rowsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
}

/** GET /v1/metrics/window. */
export interface MetricsWindow {
  intervalSeconds: number;
  samples: Array<{ time: string; pipelines: WindowPoint[]; runningRuns: number }>;
}

/** Loads the metrics window (refreshed by the caller). */
export function loadWindow(session: ConsoleSession): Promise<MetricsWindow> {
  return api<MetricsWindow>(session, '/v1/metrics/window');
}

/** A pipeline's series out of the window: times (s), requests/s, p50 and p99 (ms). */
export function pipelineSeries(
  window: MetricsWindow | undefined,
  workspaceId: number,
  name: string,
): { times: number[]; rps: (number | null)[]; p50: (number | null)[]; p99: (number | null)[] } {
  const times: number[] = [];
  const rps: (number | null)[] = [];
  const p50: (number | null)[] = [];
  const p99: (number | null)[] = [];
  for (const s of window?.samples ?? []) {
    const p = s.pipelines.find((x) => x.workspaceId === workspaceId && x.pipeline === name);
    times.push(Date.parse(s.time) / 1000);
    rps.push(p ? p.requestsPerSecond : 0);
    p50.push(p?.p50Ms ?? null);
    p99.push(p?.p99Ms ?? null);
  }
  return { times, rps, p50, p99 };
}

interface Deployed {
  workspaceId: number;
  workspaceName: string;
  name: string;
}

/** A pipeline's API path. */
function pipelinePath(p: { workspaceId: number; name: string }): string {
  return `/v1/workspaces/${p.workspaceId}/pipelines/${encodeURIComponent(p.name)}`;
}

/** Health, the log store, deployed pipelines with live rate and latency, running tasks, recent failures. */
export function OverviewPage({ session }: { session: ConsoleSession }): JSX.Element {
  const health = useAsync(() => api<Health>(session, '/v1/health'), [], 5000);
  const window = useAsync(() => loadWindow(session), [], 5000);
  // The first page: plain JSON calls (no SDK, no Arrow in the entry chunk), all at once. The
  // deployed pipelines show as soon as the list arrives; their statuses fill in after.
  const pipelines = useAsync(
    async (): Promise<Deployed[]> => {
      const [list, workspaces] = await Promise.all([
        api<PipelineDto[]>(session, '/v1/pipelines'),
        api<WorkspaceDto[]>(session, '/v1/workspaces'),
      ]);
      const names = new Map(workspaces.map((w) => [w.id, w.name]));
      return list
        .filter((p) => p.deployed)
        .map((p) => ({
          workspaceId: p.workspaceId,
          workspaceName: names.get(p.workspaceId) ?? String(p.workspaceId),
          name: p.name,
        }));
    },
    [],
    10000,
  );
  const statuses = useAsync(async (): Promise<Map<string, PipelineStatusDto>> => {
    const list = pipelines.data ?? [];
    const answers = await Promise.all(
      list.map((p) => api<PipelineStatusDto>(session, `${pipelinePath(p)}/status`)),
    );
    return new Map(list.map((p, i) => [`${p.workspaceId}/${p.name}`, answers[i]!]));
  }, [pipelines.data]);
  const tasks = useAsync(() => api<TaskDto[]>(session, '/v1/tasks'), [], 5000);
  const latest = window.data?.samples[window.data.samples.length - 1];
  const statusOf = (p: Deployed): PipelineStatusDto | undefined =>
    statuses.data?.get(`${p.workspaceId}/${p.name}`);
  const series = useMemo(
    () =>
      (pipelines.data ?? [])
        .slice(0, 3)
        .map((p) => ({ p, s: pipelineSeries(window.data, p.workspaceId, p.name) })),
    [pipelines.data, window.data],
  );
  const h = health.data;
  const running = (tasks.data ?? []).filter((t) => !t.killed && t.lastRunStatus === 'running');
  const failures = (tasks.data ?? []).filter(
    (t) => t.lastRunStatus === 'failure' || t.lastRunStatus === 'timed_out',
  );
  return (
    <div>
      <PageTitle>Overview</PageTitle>
      <ErrorBox error={health.error ?? pipelines.error ?? statuses.error ?? tasks.error ?? window.error} />
      <div class="grid">
        <div class="stat">
          <div class="label">Server</div>
          <div class="value">{h ? <Status value={h.status} /> : '…'}</div>
          <div class="muted">node {h?.node ?? '…'}</div>
        </div>
        <div class="stat">
          <div class="label">Inference log store</div>
          <div class="value">{h ? <Status value={h.inferenceLogs} /> : '…'}</div>
          <div class="muted">database {h?.database ?? '…'}</div>
        </div>
        <div class="stat">
          <div class="label">Task runs</div>
          <div class="value">{h ? (h.runs.sandboxed ? 'sandboxed' : 'not sandboxed') : '…'}</div>
          <div class="muted">{h ? `${h.runs.launcher}, network ${h.runs.network}` : '…'}</div>
        </div>
        <div class="stat">
          <div class="label">Running tasks</div>
          <div class="value">{tasks.data ? running.length : '…'}</div>
          <div class="muted">{latest ? `${latest.runningRuns} runs in the runner` : 'runs: …'}</div>
        </div>
      </div>
      <h2>Deployed pipelines</h2>
      <DataTable
        label="Deployed pipelines"
        rows={pipelines.data ?? []}
        empty={pipelines.loading ? 'Loading…' : 'No pipeline is deployed.'}
        rowKey={(p) => `${p.workspaceId}/${p.name}`}
        columns={[
          {
            label: 'Pipeline',
            cell: (p) => (
              <Link href={`/pipelines/${p.workspaceId}/${encodeURIComponent(p.name)}`}>{p.name}</Link>
            ),
          },
          { label: 'Workspace', cell: (p) => p.workspaceName },
          {
            label: 'Status',
            cell: (p) => {
              const st = statusOf(p);
              return st ? <Status value={st.status} /> : '…';
            },
          },
          { label: 'Workers', cell: (p) => statusOf(p)?.workers ?? '…' },
          {
            label: 'Requests/s',
            cell: (p) => {
              const point = latest?.pipelines.find(
                (x) => x.workspaceId === p.workspaceId && x.pipeline === p.name,
              );
              return point ? point.requestsPerSecond.toFixed(1) : '0.0';
            },
          },
          {
            label: 'p50 / p99 (ms)',
            cell: (p) => {
              const point = latest?.pipelines.find(
                (x) => x.workspaceId === p.workspaceId && x.pipeline === p.name,
              );
              return point?.p50Ms != null
                ? `${point.p50Ms.toFixed(2)} / ${(point.p99Ms ?? 0).toFixed(2)}`
                : '-';
            },
          },
        ]}
      />
      {series.map(({ p, s }) => {
        return (
          <div class="panel" key={`${p.workspaceId}/${p.name}`}>
            <TimeChart
              title={`${p.name}: requests/s`}
              times={s.times}
              series={[{ label: 'requests/s', values: s.rps }]}
              height={140}
            />
          </div>
        );
      })}
      <h2>Running tasks</h2>
      <DataTable
        label="Running tasks"
        rows={running}
        empty="No task is running."
        rowKey={(t) => t.id}
        columns={[
          { label: 'Task', cell: (t) => <Link href={`/tasks/${t.id}`}>{t.name}</Link> },
          { label: 'Type', cell: (t) => t.type },
          { label: 'Workspace', cell: (t) => t.workspaceName },
        ]}
      />
      <h2>Recent failures</h2>
      <DataTable
        label="Recent failures"
        rows={failures}
        empty="No task's last run failed."
        rowKey={(t) => t.id}
        columns={[
          { label: 'Task', cell: (t) => <Link href={`/tasks/${t.id}`}>{t.name}</Link> },
          { label: 'Last run', cell: (t) => <Status value={t.lastRunStatus} /> },
          { label: 'Reason', cell: (t) => t.statusReason ?? '-' },
          { label: 'Updated', cell: (t) => formatTime(t.updatedAt) },
        ]}
      />
    </div>
  );
}
