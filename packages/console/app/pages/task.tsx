import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { TaskRun } from '@quoll/client';
import { Link, navigate, pageNumber, useLocation, withQuery } from '../router.js';
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

/** Runs per page as the URL's `per` gives it: one of {@link RUN_PAGE_SIZES}, else the first. */
function runPageSize(raw: string | null): number {
  const n = Number(raw);
  return RUN_PAGE_SIZES.find((size) => size === n) ?? RUN_PAGE_SIZES[0];
}

/**
 * Where the pages of a task's runs start, as far as known: `${task} ${runs a page}` → the
 * cursor of page 2, 3, … (page 1 needs none). A page of runs is found by cursor, so opening
 * page n cold (a shared link) reads the n − 1 pages before it once; kept for the tab's life
 * (sessionStorage), so moving between pages, back/forward and a reload read only the page shown.
 */
const RUN_CURSORS = 'quoll-run-cursors';
/**
 * How many lists (task × runs a page) keep their page starts: the ones seen last. A tab that
 * opens many tasks does not grow its storage (and this map) without bound.
 */
const RUN_CURSORS_KEPT = 50;
let runCursors: Record<string, string[]> | null = null;

function knownCursors(key: string): string[] {
  if (runCursors === null) {
    runCursors = {};
    try {
      const stored: unknown = JSON.parse(sessionStorage.getItem(RUN_CURSORS) ?? '{}');
      // Only what this page wrote: a list of cursors per key (anything else is not read).
      if (stored !== null && typeof stored === 'object' && !Array.isArray(stored))
        for (const [k, v] of Object.entries(stored))
          if (Array.isArray(v) && v.every((c) => typeof c === 'string')) runCursors[k] = v;
    } catch {
      // Unreadable: no page start is known.
    }
  }
  const known = runCursors[key] ?? [];
  // The list seen last moves to the end (the keys, never integers, keep their insertion order).
  delete runCursors[key];
  runCursors[key] = known;
  return known;
}

/**
 * Records that page `page` (2 or more) starts at `cursor`. A cursor that differs from the
 * known one (new runs moved page 1's end) makes the pages after it unknown: they were found
 * from the old one.
 */
function rememberCursor(key: string, page: number, cursor: string): void {
  const known = knownCursors(key);
  if (known[page - 2] === cursor) return;
  known.length = Math.min(known.length, page - 2);
  if (known.length === page - 2) known.push(cursor);
  // The lists seen longest ago make room.
  const keys = Object.keys(runCursors ?? {});
  for (const stale of keys.slice(0, Math.max(0, keys.length - RUN_CURSORS_KEPT))) delete runCursors?.[stale];
  try {
    sessionStorage.setItem(RUN_CURSORS, JSON.stringify(runCursors));
  } catch {
    // Storage full or refused: the cursors stay in memory for this page's life.
  }
}

/**
 * A task: its fields, kill, run history and one run's log followed live. The history is paged
 * on the server (newest first, by cursor): only one page of runs is ever fetched, and only the
 * first page is fetched again when the task is polled; older pages are stable and not re-read.
 */
export function TaskPage({ session, id }: { session: ConsoleSession; id: string }): JSX.Element {
  const loc = useLocation();
  const task = useAsync(() => sessionClient(session).getTask(id), [id], 3000);
  // The page of runs and runs a page are in the URL (`page`, `per`): reload, back/forward and a
  // shared link keep them.
  const wanted = pageNumber(loc.query.get('page'));
  const pageSize = runPageSize(loc.query.get('per'));
  const cursorsKey = `${id} ${pageSize}`;
  // The answer says which page it is (the one asked for, or the last when fewer pages exist)
  // and what was asked: while the next page loads, the rows shown are still the previous page's,
  // and their nextCursor must not be followed a second time.
  const runs = useAsync(
    async (signal) => {
      const t = task.data;
      if (!t) return null;
      const read = (cursor: string | undefined) =>
        t.lastRuns({ limit: pageSize, ...(cursor !== undefined ? { cursor } : {}) });
      // From the nearest page whose start is known, older page by older page.
      const known = knownCursors(cursorsKey);
      let page = Math.min(wanted, known.length + 1);
      let list = await read(page === 1 ? undefined : known[page - 2]);
      while (page < wanted && list.nextCursor !== null) {
        rememberCursor(cursorsKey, page + 1, list.nextCursor);
        // Another page was asked for, or the page was left: the rest of the walk is not wanted.
        if (signal.aborted) return null;
        page += 1;
        list = await read(list.nextCursor);
      }
      if (list.nextCursor !== null) rememberCursor(cursorsKey, page + 1, list.nextCursor);
      return { wanted, size: pageSize, page, list };
    },
    // The first page follows the task's poll (new runs arrive there); an older page does not change.
    [wanted === 1 ? task.data : task.data !== undefined, wanted, pageSize],
    undefined,
  );
  // The answer for what the URL asks (null while it loads).
  const settled = runs.data && runs.data.wanted === wanted && runs.data.size === pageSize ? runs.data : null;
  const shownPage = settled?.page ?? wanted;
  // A page past the last, a page or size that is not one: the URL says what is shown, in place.
  const rawPage = loc.query.get('page');
  const rawSize = loc.query.get('per');
  useEffect(() => {
    const fixes: Record<string, string | null> = {};
    const size = pageSize === RUN_PAGE_SIZES[0] ? null : String(pageSize);
    if (rawSize !== null && rawSize !== size) fixes.per = size;
    // The page only once its answer is in: which pages exist is known then.
    const page = settled ? (settled.page === 1 ? null : String(settled.page)) : rawPage;
    if (rawPage !== page) fixes.page = page;
    if (Object.keys(fixes).length > 0) navigate(withQuery(fixes), { replace: true, scroll: false });
  }, [rawPage, rawSize, settled]);
  const [picked, setPicked] = useState<TaskRun | null>(null);
  const [error, setError] = useState<string | null>(null);
  const selected = loc.query.get('run');
  const shown: TaskRun[] = runs.data ? [...runs.data.list] : [];
  // The nextCursor of the page asked for last, once it has arrived (null while it loads).
  const nextCursor = settled && settled.page === wanted ? settled.list.nextCursor : null;
  /** Shows page `page` of runs (a history entry: back returns to this one). */
  const goToPage = (page: number): void => {
    // A second press before this render (the URL moved already) is ignored.
    if (pageNumber(new URLSearchParams(window.location.search).get('page')) !== wanted) return;
    navigate(withQuery({ page: page === 1 ? null : String(page) }), { scroll: false });
  };
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
        <button type="button" onClick={() => goToPage(1)} disabled={shownPage === 1}>
          Newest runs
        </button>
        <button type="button" onClick={() => goToPage(shownPage - 1)} disabled={shownPage === 1}>
          Newer runs
        </button>
        <span aria-live="polite">
          Page {shownPage}
          {settled ? ` (${shown.length} ${shown.length === 1 ? 'run' : 'runs'})` : ''}
        </span>
        <button
          type="button"
          // Enabled once the page's answer is in: its nextCursor says where the older page starts.
          onClick={() => nextCursor && goToPage(shownPage + 1)}
          disabled={!nextCursor}
        >
          Older runs
        </button>
        <label>
          Runs per page{' '}
          <select
            value={String(pageSize)}
            onChange={(e) => {
              const size = Number(e.currentTarget.value);
              // Another size is another list: it opens on its newest page.
              navigate(withQuery({ per: size === RUN_PAGE_SIZES[0] ? null : String(size), page: null }), {
                replace: true,
                scroll: false,
              });
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
        empty={runs.loading ? 'Loading…' : shownPage > 1 ? 'No older run.' : 'No run yet.'}
        rowKey={(r) => r.id}
        // One page of the server's is one page of the table: the pager above is the runs'.
        pageParam={null}
        columns={[
          {
            label: 'Run',
            cell: (r) => (
              <a
                // The page of runs stays in the link (and the URL) beside the run.
                href={withQuery({ run: r.id }, loc)}
                aria-current={run?.id === r.id ? 'true' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  setPicked(r);
                  navigate(withQuery({ run: r.id }), { replace: true, scroll: false });
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
