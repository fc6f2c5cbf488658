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

/** Runs per page the run history offers; the first is the default. */
export const RUN_PAGE_SIZES = [50, 200, 1000] as const;

/**
 * A task: its fields, kill, run history and one run's log followed live. The history is paged
 * on the server (newest first, by cursor): only one page of runs is ever fetched, and only the
 * first page is fetched again when the task is polled; older pages are stable and not re-read.
 */
export function TaskPage({ session, id }: { session: ConsoleSession; id: string }): JSX.Element {
  const loc = useLocation();
  const task = useAsync(() => sessionClient(session).getTask(id), [id], 3000);
  const [pageSize, setPageSize] = useState<number>(RUN_PAGE_SIZES[0]);
  // Cursors of the pages shown before this one: [] = the newest page.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  // The page keeps the cursor it was asked with: while the next page loads, the rows shown are
  // still the previous page's, and their nextCursor must not be pushed a second time.
  const runs = useAsync(
    async () =>
      task.data
        ? {
            from: cursor,
            size: pageSize,
            list: await task.data.lastRuns({ limit: pageSize, ...(cursor !== undefined ? { cursor } : {}) }),
          }
        : null,
    // The first page follows the task's poll (new runs arrive there); an older page does not change.
    [cursor === undefined ? task.data : task.data !== undefined, cursor, pageSize],
    undefined,
  );
  const [picked, setPicked] = useState<TaskRun | null>(null);
  const [error, setError] = useState<string | null>(null);
  const selected = loc.query.get('run');
  const shown: TaskRun[] = runs.data ? [...runs.data.list] : [];
  // The nextCursor of the page asked for last, once it has arrived (null while it loads).
  const nextCursor =
    runs.data && runs.data.from === cursor && runs.data.size === pageSize ? runs.data.list.nextCursor : null;
  const inPage = shown.find((r) => r.id === selected);
  // A run named in the URL but not on this page (a link to an older run): read it by id.
  const linked = useAsync(
    async () =>
      selected !== null && task.data && runs.data && inPage === undefined && picked?.id !== selected
        ? await task.data.getRun(selected)
        : null,
    // Asked once the first page is in (most links name a recent run, found there), not on each poll.
    [selected, Boolean(task.data && runs.data)],
  );
  const run =
    selected === null
      ? shown[0]
      : (inPage ??
        (picked?.id === selected ? picked : undefined) ??
        (linked.data?.id === selected ? linked.data : undefined));
  const t = task.data?.toJSON();
  return (
    <div>
      <PageTitle>{`Task ${t?.name || id.slice(0, 8)}`}</PageTitle>
      <p class="muted">
        <Link href="/tasks">Tasks</Link> / {id}
      </p>
      <ErrorBox error={task.error ?? runs.error ?? linked.error ?? error} />
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
      {/* Above the table: the keyboard reaches it without tabbing through a page of run links. */}
      <nav class="pager" aria-label="Runs pages">
        <button type="button" onClick={() => setCursors([])} disabled={cursors.length === 0}>
          Newest runs
        </button>
        <button
          type="button"
          onClick={() => setCursors((c) => c.slice(0, -1))}
          disabled={cursors.length === 0}
        >
          Newer runs
        </button>
        <span aria-live="polite">
          Page {cursors.length + 1}
          {runs.data ? ` (${shown.length} ${shown.length === 1 ? 'run' : 'runs'})` : ''}
        </span>
        <button
          type="button"
          onClick={() => {
            const from = cursor;
            const next = nextCursor;
            // A second press before the older page arrives (or before this render) is ignored.
            if (next) setCursors((c) => (c.at(-1) === from ? [...c, next] : c));
          }}
          disabled={!nextCursor}
        >
          Older runs
        </button>
        <label>
          Runs per page{' '}
          <select
            value={String(pageSize)}
            onChange={(e) => {
              setPageSize(Number(e.currentTarget.value));
              setCursors([]);
            }}
          >
            {RUN_PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </nav>
      <DataTable<TaskRun>
        label="Runs"
        rows={shown}
        pageSize={pageSize}
        empty={runs.loading ? 'Loading…' : cursors.length > 0 ? 'No older run.' : 'No run yet.'}
        rowKey={(r) => r.id}
        // One page of the server's is one page of the table: the pager above is the runs'.
        pageParam={null}
        columns={[
          {
            label: 'Run',
            cell: (r) => (
              <a
                href={`/tasks/${id}?run=${r.id}`}
                aria-current={run?.id === r.id ? 'true' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  setPicked(r);
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
        <p class="muted">
          {selected !== null
            ? linked.error
              ? `Run ${selected} is not a run of this task.`
              : `Loading run ${selected}…`
            : 'No run to show yet.'}
        </p>
      )}
    </div>
  );
}
