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

/** GET /v1/console/overview: the parts as their own routes answer them. */
interface Overview {
  health: Health;
  window: MetricsWindow;
  workspaces: WorkspaceDto[];
  pipelines: PipelineDto[];
  tasks: TaskDto[];
  /** `"<workspace id>/<name>"` → status, for each deployed pipeline. */
  statuses: Record<string, PipelineStatusDto>;
}

const OVERVIEW = '/v1/console/overview';

/** An overview request started before the page rendered, and when. */
let prefetched: { at: number; answer: Promise<Overview> } | null = null;

/**
 * Starts loading the overview now (the entry calls it as soon as the session exists, before the
 * page renders); the overview page's first load takes this request instead of making its own.
 */
export function prefetchOverview(): void {
  prefetched = { at: Date.now(), answer: api<Overview>(null, OVERVIEW) };
  // Unobserved if the page never shows (another page was opened): no unhandled rejection.
  prefetched.answer.catch(() => undefined);
}

/** Health, the log store, deployed pipelines with live rate and latency, running tasks, recent failures. */
export function OverviewPage({ session }: { session: ConsoleSession }): JSX.Element {
  // One call for the whole page (the server reads each part as its own route would).
  const overview = useAsync(
    () => {
      const early = prefetched !== null && Date.now() - prefetched.at < 5000 ? prefetched.answer : null;
      prefetched = null;
      return early ?? api<Overview>(session, OVERVIEW);
    },
    [],
    5000,
  );
  const o = overview.data;
  const pipelines = useMemo((): Deployed[] | undefined => {
    if (!o) return undefined;
    const names = new Map(o.workspaces.map((w) => [w.id, w.name]));
    return o.pipelines
      .filter((p) => p.deployed)
      .map((p) => ({
        workspaceId: p.workspaceId,
        workspaceName: names.get(p.workspaceId) ?? String(p.workspaceId),
        name: p.name,
      }));
  }, [o]);
  const latest = o?.window.samples[o.window.samples.length - 1];
  const statusOf = (p: Deployed): PipelineStatusDto | undefined => o?.statuses[`${p.workspaceId}/${p.name}`];
  const series = useMemo(
    () =>
      (pipelines ?? []).slice(0, 3).map((p) => ({ p, s: pipelineSeries(o?.window, p.workspaceId, p.name) })),
    [pipelines, o],
  );
  const h = o?.health;
  const running = (o?.tasks ?? []).filter((t) => !t.killed && t.lastRunStatus === 'running');
  const failures = (o?.tasks ?? []).filter(
    (t) => t.lastRunStatus === 'failure' || t.lastRunStatus === 'timed_out',
  );
  return (
    <div>
      <PageTitle>Overview</PageTitle>
      <ErrorBox error={overview.error} />
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
          <div class="value">{o ? running.length : '…'}</div>
          <div class="muted">{latest ? `${latest.runningRuns} runs in the runner` : 'runs: …'}</div>
        </div>
      </div>
      <h2>Deployed pipelines</h2>
      <DataTable
        label="Deployed pipelines"
        rows={pipelines ?? []}
        empty={pipelines === undefined ? 'Loading…' : 'No pipeline is deployed.'}
        pageParam="pipelines-page"
        loading={pipelines === undefined}
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
        pageParam="running-page"
        loading={o === undefined}
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
        pageParam="failures-page"
        loading={o === undefined}
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
