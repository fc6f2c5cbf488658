import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { TaskRun } from '@quoll/client';
import { Link, navigate, useLocation } from '../router.js';
import { sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, ErrorBox, PageTitle, Status, formatTime, useAsync } from '../ui.js';

/** Lines kept in view; older lines scroll out (the full log stays on the server). */
const MAX_LINES = 5000;

/** A run's log, followed live until the run ends. */
function RunLog({ run, onEnded }: { run: TaskRun; onEnded: () => void }): JSX.Element {
  const [lines, setLines] = useState<string[]>([]);
  const [state, setState] = useState('following…');
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const stop = new AbortController();
    setLines([]);
    setState('following…');
    void (async () => {
      let batch: string[] = [];
      let timer: ReturnType<typeof setTimeout> | null = null;
      const flush = (): void => {
        timer = null;
        const add = batch;
        batch = [];
        setLines((l) => [...l, ...add].slice(-MAX_LINES));
      };
      try {
        for await (const line of run.followLogs({ signal: stop.signal })) {
          batch.push(String(line));
          timer ??= setTimeout(flush, 50);
        }
        if (timer !== null) clearTimeout(timer);
        flush();
        setState('run ended');
        onEnded();
      } catch (err) {
        if (!stop.signal.aborted) setState(`stream stopped: ${String(err)}`);
      }
    })();
    return () => stop.abort();
  }, [run.id]);
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <div>
      <p class="muted" aria-live="polite">
        Run {run.id}: {state}
      </p>
      <pre class="log" ref={box} aria-label={`Log of run ${run.id}`} tabIndex={0}>
        {lines.join('\n')}
      </pre>
    </div>
  );
}

/**
 * Waits (up to 5 s) until a run whose log has ended is recorded as ended too: its final line is
 * stored just before its status, so a page that reloads at once could still show it running.
 */
async function settle(run: TaskRun): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const now = await run.refresh().catch(() => null);
    if (now === null || now.status !== 'running') return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A task: its fields, kill, run history and one run's log followed live. */
export function TaskPage({ session, id }: { session: ConsoleSession; id: string }): JSX.Element {
  const loc = useLocation();
  const task = useAsync(() => sessionClient(session).getTask(id), [id], 3000);
  const runs = useAsync(
    async () => (task.data ? [...(await task.data.lastRuns({ limit: 10_000 }))] : []),
    [task.data],
    undefined,
  );
  const [error, setError] = useState<string | null>(null);
  const selected = loc.query.get('run');
  const run = (runs.data ?? []).find((r) => r.id === selected) ?? runs.data?.[0];
  const t = task.data?.toJSON();
  return (
    <div>
      <PageTitle>{`Task ${t?.name || id.slice(0, 8)}`}</PageTitle>
      <p class="muted">
        <Link href="/tasks">Tasks</Link> / {id}
      </p>
      <ErrorBox error={task.error ?? runs.error ?? error} />
      {t ? (
        <div class="grid">
          <div class="stat">
            <div class="label">Status</div>
            <div class="value">
              <Status value={t.status} />
            </div>
            <div class="muted">{t.statusReason ?? ' '}</div>
          </div>
          <div class="stat">
            <div class="label">Type</div>
            <div class="value">{t.type}</div>
            <div class="muted">{t.schedule ? `${t.schedule} (${t.timezone ?? 'UTC'})` : ' '}</div>
          </div>
          <div class="stat">
            <div class="label">Last run</div>
            <div class="value">
              <Status value={t.lastRunStatus} />
            </div>
            <div class="muted">workspace {t.workspaceName}</div>
          </div>
        </div>
      ) : null}
      <div class="row" style={{ marginBottom: '14px' }}>
        <button
          class="danger"
          type="button"
          disabled={!task.data || t?.killed || t?.status === 'pending_kill'}
          onClick={() => {
            task.data?.kill().then(
              () => task.reload(),
              (err: unknown) => setError(String(err)),
            );
          }}
        >
          Kill task
        </button>
        <button type="button" onClick={() => runs.reload()}>
          Refresh runs
        </button>
        {t ? <span class="mono muted">args {JSON.stringify(t.jsonArgs)}</span> : null}
      </div>
      <h2>Runs</h2>
      <DataTable<TaskRun>
        label="Runs"
        rows={runs.data ?? []}
        pageSize={20}
        empty={runs.loading ? 'Loading…' : 'No run yet.'}
        rowKey={(r) => r.id}
        columns={[
          {
            label: 'Run',
            cell: (r) => (
              <a
                href={`/tasks/${id}?run=${r.id}`}
                aria-current={run?.id === r.id ? 'true' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/tasks/${id}?run=${r.id}`, { replace: true });
                }}
              >
                {r.id.slice(0, 8)}
              </a>
            ),
          },
          { label: 'Status', cell: (r) => <Status value={r.status} /> },
          { label: 'Tick', cell: (r) => formatTime(r.tick) },
          { label: 'Started', cell: (r) => formatTime(r.createdAt) },
          { label: 'Exit', cell: (r) => (r.exitCode === null ? '-' : r.exitCode) },
          { label: 'Reason', cell: (r) => r.reason ?? '-' },
        ]}
      />
      <h2>Run log</h2>
      {run ? (
        <RunLog run={run} onEnded={() => void settle(run).then(() => task.reload())} />
      ) : (
        <p class="muted">No run to show yet.</p>
      )}
    </div>
  );
}
