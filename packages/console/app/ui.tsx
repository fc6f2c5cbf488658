import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { CHART_EXTRA_PX } from './chart-props.js';
import { navigate, pageNumber, useLocation, withQuery } from './router.js';
import type { TimeChartProps } from './chart-props.js';

/** The state of a value loaded asynchronously. */
export interface Async<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads `load()` when `deps` change (and on reload(); every `refreshMs` when given). `signal` is
 * aborted once the answer is no longer wanted (deps changed, reload, the page left): a load of
 * several requests stops there.
 */
export function useAsync<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  refreshMs?: number,
): Async<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  // A layout effect: the request leaves at once, not after the browser has painted this render.
  useLayoutEffect(() => {
    let live = true;
    const abort = new AbortController();
    setLoading(true);
    load(abort.signal).then(
      (value) => {
        if (!live) return;
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (!live) return;
        setError(err instanceof Error ? err.message : String(err));
        setLoading(false);
      },
    );
    return () => {
      live = false;
      abort.abort();
    };
  }, [...deps, tick]);
  useEffect(() => {
    if (refreshMs === undefined) return;
    const timer = setInterval(reload, refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs, reload]);
  return { data, error, loading, reload };
}

/** Shows an error message (role=alert, so screen readers announce it). */
export function ErrorBox({ error }: { error: string | null | undefined }): JSX.Element | null {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      {error}
    </div>
  );
}

/** A time as `YYYY-MM-DD HH:MM:SS` in the browser's zone. */
export function formatTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

const GOOD = new Set(['Running', 'ready', 'success', 'ok', 'open', 'started', 'up']);
const BAD = new Set(['Error', 'error', 'failure', 'timed_out', 'killed', 'degraded', 'unavailable', 'lost']);

/** A status word, coloured by what it means. */
export function Status({ value }: { value: string }): JSX.Element {
  const tone = GOOD.has(value) ? 'ok' : BAD.has(value) ? 'bad' : 'warn';
  return <span class={`badge ${tone}`}>{value}</span>;
}

/** One column of a {@link DataTable}. */
export interface Column<T> {
  label: string;
  cell: (row: T) => ComponentChildren;
}

/**
 * A table that shows `pageSize` rows at a time with a pager (lists of any length stay fast).
 * The page shown is in the URL's query (`pageParam`, 1-based, absent on the first page), so a
 * reload or a shared link opens it and back/forward move between pages; a page past the end
 * or not a number shows the nearest one and the URL is corrected in place (once the rows are
 * in: never while `loading`).
 */
export function DataTable<T>(props: {
  rows: readonly T[];
  columns: readonly Column<T>[];
  label: string;
  pageSize?: number;
  empty?: string;
  rowKey?: (row: T, index: number) => string;
  /**
   * The query parameter holding the page: one of its own for each paged table of a page
   * (`replicas-page`); null keeps it in memory only (rows that a reload would not bring back).
   * @default 'page'
   */
  pageParam?: string | null;
  /**
   * The rows are not in (still coming, or their load failed and none came before): a page number
   * in the URL is not corrected until they are (an outage does not lose the page).
   */
  loading?: boolean;
}): JSX.Element {
  const { rows, columns, label, pageSize = 25, empty = 'Nothing here yet.', loading = false } = props;
  const param = props.pageParam === undefined ? 'page' : props.pageParam;
  const loc = useLocation();
  const [inMemory, setInMemory] = useState(1);
  const raw = param === null ? null : loc.query.get(param);
  const pages = Math.max(1, Math.ceil(rows.length / pageSize));
  // 0-based from here on.
  const at = (param === null ? Math.min(inMemory, pages) : pageNumber(raw, pages)) - 1;
  // A page number the rows do not have (or not one at all): the URL says the page shown.
  useEffect(() => {
    if (param === null || loading || raw === null) return;
    const shown = at === 0 ? null : String(at + 1);
    if (raw !== shown) navigate(withQuery({ [param]: shown }), { replace: true, scroll: false });
  }, [param, raw, at, loading]);
  const go = (page: number): void => {
    if (param === null) setInMemory(page + 1);
    else navigate(withQuery({ [param]: page === 0 ? null : String(page + 1) }), { scroll: false });
  };
  const shown = rows.slice(at * pageSize, at * pageSize + pageSize);
  return (
    <div class="data-table">
      <div class="table-wrap">
        <table aria-label={label}>
          <thead>
            <tr>
              {columns.map((c) => (
                <th scope="col" key={c.label}>
                  {c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 ? (
              <tr>
                <td colSpan={columns.length} class="muted">
                  {empty}
                </td>
              </tr>
            ) : (
              shown.map((row, i) => (
                <tr key={props.rowKey ? props.rowKey(row, at * pageSize + i) : String(at * pageSize + i)}>
                  {columns.map((c) => (
                    <td key={c.label}>{c.cell(row)}</td>
                  ))}
                </tr>
              ))
            )}
          </tbody>
        </table>
      </div>
      {rows.length > pageSize ? (
        <nav class="pager" aria-label={`${label} pages`}>
          <button type="button" onClick={() => go(at - 1)} disabled={at === 0}>
            Previous
          </button>
          <span aria-live="polite">
            Page {at + 1} of {pages} ({countOf(rows.length, 'row')})
          </span>
          <button type="button" onClick={() => go(at + 1)} disabled={at >= pages - 1}>
            Next
          </button>
        </nav>
      ) : null}
    </div>
  );
}

/** The props of {@link VirtualTable}. */
export interface VirtualTableProps {
  label: string;
  /** Rows in all. */
  count: number;
  /** Column names. */
  columns: readonly string[];
  /** The cells' text of row `index` (called only for the rows on screen). */
  row: (index: number) => readonly string[];
  /** Most height of the scrolling box, px (fewer rows take less). @default 520 */
  height?: number;
}

/** Row height in px (fixed: the table knows every row's place without measuring any). */
const ROW_PX = 32;
/** Most characters of a cell's text laid out (420 px holds fewer). */
const CELL_CHARS = 100;
/** Rows drawn beyond each edge of the visible ones. */
const OVERSCAN = 8;

/**
 * A table of any number of rows that draws only those on screen (plus a few): one scrolling box
 * (focusable, so the keyboard scrolls it), spacer rows above and below, `aria-rowcount` and
 * `aria-rowindex` so assistive technology knows where a row is in the whole.
 */
export function VirtualTable(props: VirtualTableProps): JSX.Element {
  const { label, count, columns, row } = props;
  // At most `height`; less for a few rows (the header, the rows, the border).
  const height = Math.min(props.height ?? 520, (Math.max(count, 1) + 1) * ROW_PX + 2);
  const [top, setTop] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const frame = useRef<number | null>(null);
  // Where the box was last scrolled to (from its scroll events: reading scrollTop, or setting
  // it, would force a layout in the middle of a render).
  const scrolled = useRef(0);
  // A new data set starts at the top.
  useLayoutEffect(() => {
    if (box.current && scrolled.current !== 0) box.current.scrollTop = 0;
    scrolled.current = 0;
    setTop(0);
  }, [count, row]);
  const visible = Math.ceil(height / ROW_PX);
  const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN);
  const last = Math.min(count, Math.floor(top / ROW_PX) + visible + OVERSCAN);
  const rows: JSX.Element[] = [];
  for (let i = first; i < last; i++) {
    const cells = row(i);
    rows.push(
      <tr key={i} aria-rowindex={i + 2}>
        {cells.map((text, c) => (
          // The cell shows what fits (at most 420 px); the text laid out is capped likewise, so a
          // long list does not cost its whole width in text layout. The title has it all.
          <td key={c} title={text.length > 40 ? text : undefined}>
            {text.length > CELL_CHARS ? `${text.slice(0, CELL_CHARS)}…` : text}
          </td>
        ))}
      </tr>,
    );
  }
  return (
    <div
      class="virtual"
      ref={box}
      tabIndex={0}
      role="region"
      aria-label={`${label} (scrolls)`}
      style={{ height: `${height}px` }}
      onScroll={(e) => {
        const el = e.currentTarget;
        scrolled.current = el.scrollTop;
        if (frame.current !== null) return;
        frame.current = requestAnimationFrame(() => {
          frame.current = null;
          setTop(el.scrollTop);
        });
      }}
    >
      <table aria-label={label} aria-rowcount={count + 1}>
        <thead>
          {/* The header keeps its height before the columns are known: the rows do not move down when they come. */}
          <tr aria-rowindex={1} style={{ height: `${ROW_PX}px` }}>
            {columns.map((c) => (
              <th scope="col" key={c}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {count === 0 ? (
            <tr>
              <td colSpan={Math.max(1, columns.length)} class="muted">
                No rows in this range.
              </td>
            </tr>
          ) : null}
          {first > 0 ? (
            <tr class="spacer" aria-hidden="true">
              <td colSpan={columns.length} style={{ height: `${first * ROW_PX}px` }} />
            </tr>
          ) : null}
          {rows}
          {last < count ? (
            <tr class="spacer" aria-hidden="true">
              <td colSpan={columns.length} style={{ height: `${(count - last) * ROW_PX}px` }} />
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}

/**
 * A component whose code loads on first use (its own chunk): `fallback` (or "Loading…") until
 * then. The load starts on first render, not after a paint.
 */
export function lazyComponent<P extends object>(
  load: () => Promise<(props: P) => JSX.Element>,
  fallback?: (props: P) => JSX.Element,
): (props: P) => JSX.Element {
  let loaded: ((props: P) => JSX.Element) | null = null;
  let failed: string | null = null;
  let pending: Promise<void> | null = null;
  const start = (): Promise<void> =>
    (pending ??= load().then(
      (component) => {
        loaded = component;
      },
      (err: unknown) => {
        failed = `This part of the console did not load (${String(err)}); reload the page.`;
      },
    ));
  return function Lazy(props: P): JSX.Element {
    const [ready, setReady] = useState(loaded !== null || failed !== null);
    if (!ready) void start();
    useEffect(() => {
      let live = true;
      // Even when the chunk arrived between the render and this effect: render again with it.
      if (!ready) void start().then(() => live && setReady(true));
      return () => {
        live = false;
      };
    }, []);
    if (failed !== null) return <ErrorBox error={failed} />;
    if (loaded !== null) {
      const Component = loaded;
      return <Component {...props} />;
    }
    return fallback ? fallback(props) : <p class="muted">Loading…</p>;
  };
}

/** When the person last clicked or typed (performance.now()), for {@link prefetchWhenIdle}. */
let lastInput = -Infinity;
/** How long after a click or key press the prefetch keeps out of the way. */
const QUIET_AFTER_INPUT_MS = 2000;

/**
 * Loads chunks when the browser is idle (after what is on screen has been drawn), and not in
 * the two seconds after a click or key press: the browser is "idle" while the page waits for
 * what that input asked for, and compiling a chunk then (~150 ms under load) held the answer
 * back (a log page's rows waited behind it).
 */
export function prefetchWhenIdle(loads: ReadonlyArray<() => Promise<unknown>>): void {
  const noteInput = (): void => {
    lastInput = performance.now();
  };
  addEventListener('pointerdown', noteInput, { capture: true, passive: true });
  addEventListener('keydown', noteInput, { capture: true, passive: true });
  const idle =
    typeof requestIdleCallback === 'function'
      ? (run: () => void) => requestIdleCallback(run, { timeout: 5000 })
      : (run: () => void) => setTimeout(run, 1000);
  const quietly = (run: () => void): void => {
    idle(() => {
      const wait = lastInput + QUIET_AFTER_INPUT_MS - performance.now();
      if (wait > 0) setTimeout(() => quietly(run), wait);
      else run();
    });
  };
  setTimeout(() => {
    const next = (i: number): void => {
      if (i >= loads.length) {
        removeEventListener('pointerdown', noteInput, { capture: true });
        removeEventListener('keydown', noteInput, { capture: true });
        return;
      }
      quietly(() => {
        void loads[i]!().catch(() => undefined);
        next(i + 1);
      });
    };
    next(0);
  }, 1000);
}

/** A labelled form control. */
export function Field(props: { label: string; children: ComponentChildren }): JSX.Element {
  return (
    <label class="field">
      {props.label}
      {props.children}
    </label>
  );
}

const LazyChart = lazyComponent<TimeChartProps>(
  () => import('./chart.js').then((m): ((props: TimeChartProps) => JSX.Element) => m.UPlotChart),
  // While uPlot loads: the same box (so nothing shifts when the chart appears).
  (props: TimeChartProps) => (
    <div
      class="chart"
      role="img"
      aria-label={props.title}
      style={{ minHeight: `${(props.height ?? 200) + CHART_EXTRA_PX}px` }}
    >
      <div class="chart-title">{props.title}</div>
    </div>
  ),
);

/**
 * A line chart of series over time (seconds since the epoch), drawn by uPlot (its own chunk,
 * loaded with the first chart); the box keeps its height while data arrives, so the page does
 * not shift.
 */
export function TimeChart(props: TimeChartProps): JSX.Element {
  return <LazyChart {...props} />;
}

/** A drop area for one file that is also a keyboard-usable file picker. */
export function DropZone(props: {
  label: string;
  accept?: string;
  onFile: (file: File) => void;
}): JSX.Element {
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  return (
    <div
      class={over ? 'dropzone over' : 'dropzone'}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const file = e.dataTransfer?.files[0];
        if (file) props.onFile(file);
      }}
    >
      <p>Drop a file here, or</p>
      <label class="field" style={{ alignItems: 'center' }}>
        {props.label}
        <input
          ref={input}
          type="file"
          accept={props.accept}
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            if (file) props.onFile(file);
          }}
        />
      </label>
    </div>
  );
}

/** A page heading plus the page's title in the tab. */
export function PageTitle({ children }: { children: string }): JSX.Element {
  useEffect(() => {
    document.title = `${children} · Quoll`;
  }, [children]);
  return <h1>{children}</h1>;
}

/** `1 row`, `2 rows`, `0 rows`. */
export function countOf(n: number, noun: string): string {
  return `${n} ${n === 1 ? noun : `${noun}s`}`;
}
