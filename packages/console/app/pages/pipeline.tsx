import type { JSX } from 'preact';
import { useLayoutEffect, useMemo, useState } from 'preact/hooks';
import { arrow, type Pipeline } from '@quoll/client';
import { Link, navigate, useLocation } from '../router.js';
import { clientIn, sessionClient } from '../session-client.js';
import { apiHeaders, type ConsoleSession } from '../session.js';
import {
  DataTable,
  DropZone,
  VirtualTable,
  ErrorBox,
  Field,
  PageTitle,
  Status,
  TimeChart,
  countOf,
  formatTime,
  useAsync,
} from '../ui.js';
import { loadWindow, pipelineSeries } from './overview.js';

type Row = Record<string, unknown>;

/** A pipeline by workspace id and name, through the SDK. */
async function pipelineOf(session: ConsoleSession, workspaceId: number, name: string): Promise<Pipeline> {
  const workspaces = await sessionClient(session).listWorkspaces();
  const workspace = workspaces.find((w) => w.id === workspaceId);
  if (!workspace) throw new Error(`No workspace with id ${workspaceId} is visible to this session.`);
  return clientIn(session, workspace).getPipeline(name);
}

/** A cell's text: numbers kept short, lists as `[a, b]`. */
function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number')
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(10)));
  if (Array.isArray(value)) return `[${value.map(cellText).join(', ')}]`;
  if (typeof value === 'object') return JSON.stringify(value);
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A table of records with every column they have (time first). */
function RecordsTable({
  rows,
  label,
  pageSize,
}: {
  rows: readonly Row[];
  label: string;
  pageSize?: number;
}): JSX.Element {
  const columns = useMemo(() => {
    const names: string[] = [];
    for (const r of rows.slice(0, 50)) for (const k of Object.keys(r)) if (!names.includes(k)) names.push(k);
    return names.map((n) => ({
      label: n,
      cell: (r: Row) => (n === 'time' && typeof r[n] === 'number' ? formatTime(r[n]) : cellText(r[n])),
    }));
  }, [rows]);
  // A result is gone after a reload: its page is not put in the URL.
  return <DataTable label={label} rows={rows} columns={columns} pageSize={pageSize ?? 50} pageParam={null} />;
}

/** A pipeline: status and deploy/undeploy, steps and versions, charts, "try it" and the inference-log explorer. */
export function PipelinePage(props: {
  session: ConsoleSession;
  workspaceId: number;
  name: string;
}): JSX.Element {
  const { session, workspaceId, name } = props;
  const loc = useLocation();
  const tab = loc.query.get('tab') ?? 'overview';
  const base = `/pipelines/${workspaceId}/${encodeURIComponent(name)}`;
  const pipeline = useAsync(() => pipelineOf(session, workspaceId, name), [workspaceId, name]);
  return (
    <div>
      <PageTitle>{`Pipeline ${name}`}</PageTitle>
      <p class="muted">
        <Link href="/pipelines">Pipelines</Link> / workspace {workspaceId} / {name}
      </p>
      <nav class="tabs" aria-label="Pipeline sections">
        {[
          ['overview', 'Overview'],
          ['try', 'Try it'],
          ['logs', 'Inference logs'],
        ].map(([id, label]) => (
          <Link key={id} href={`${base}?tab=${id!}`} aria-current={tab === id ? 'page' : undefined}>
            {label!}
          </Link>
        ))}
      </nav>
      <ErrorBox error={pipeline.error} />
      {pipeline.data === undefined ? (
        <p class="muted">Loading…</p>
      ) : tab === 'try' ? (
        <TryIt pipeline={pipeline.data} />
      ) : tab === 'logs' ? (
        <LogExplorer session={session} workspaceId={workspaceId} name={name} />
      ) : (
        <PipelineOverview session={session} pipeline={pipeline.data} />
      )}
    </div>
  );
}

function PipelineOverview({
  session,
  pipeline,
}: {
  session: ConsoleSession;
  pipeline: Pipeline;
}): JSX.Element {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const status = useAsync(() => pipeline.status(), [pipeline], busy ? 1000 : 5000);
  const steps = useAsync(() => pipeline.steps(), [pipeline]);
  const versions = useAsync(() => pipeline.versions(), [pipeline]);
  const window = useAsync(() => loadWindow(session), [], 5000);
  const s = pipelineSeries(window.data, pipeline.workspaceId, pipeline.name);
  const act = (what: string, run: () => Promise<unknown>): void => {
    setBusy(what);
    setError(null);
    run().then(
      () => {
        setBusy(null);
        status.reload();
        versions.reload();
      },
      (err: unknown) => {
        setBusy(null);
        setError(String(err));
        status.reload();
      },
    );
  };
  const st = status.data;
  return (
    <div>
      <ErrorBox error={error ?? status.error ?? steps.error} />
      <div class="grid">
        <div class="stat">
          <div class="label">Status</div>
          <div class="value">{st ? <Status value={st.status} /> : '…'}</div>
          <div class="muted">{st?.details.join('; ') || ' '}</div>
        </div>
        <div class="stat">
          <div class="label">Deployed version</div>
          <div class="value mono">{st?.version?.slice(0, 12) ?? '-'}</div>
          <div class="muted">{st?.deployedAt ? `since ${formatTime(st.deployedAt)}` : 'not deployed'}</div>
        </div>
        <div class="stat">
          <div class="label">Workers</div>
          <div class="value">{st?.workers ?? '…'}</div>
          <div class="muted">
            {st ? st.models.map((m) => `${m.name}: ${m.status}`).join(', ') || ' ' : ' '}
          </div>
        </div>
      </div>
      <div class="row" style={{ marginBottom: '14px' }}>
        <button
          class="primary"
          type="button"
          disabled={busy !== null}
          onClick={() => act('Deploying…', () => pipeline.deploy())}
        >
          Deploy
        </button>
        <button
          class="danger"
          type="button"
          disabled={busy !== null || st?.status === 'Undeployed'}
          onClick={() => act('Undeploying…', () => pipeline.undeploy())}
        >
          Undeploy
        </button>
        <span aria-live="polite">{busy}</span>
      </div>
      <h2>Workers</h2>
      <p class="muted" id="workers-summary">
        {st
          ? st.workers > 0
            ? `${st.workers} worker${st.workers === 1 ? '' : 's'} serve${st.workers === 1 ? 's' : ''} version ${st.version?.slice(0, 12) ?? '-'}. Each node's replica, then the models every worker runs (in step order):`
            : 'No worker serves this pipeline.'
          : 'Loading…'}
      </p>
      <DataTable
        label="Replicas"
        rows={st?.replicas ?? []}
        empty={st ? 'No node holds a replica (not deployed).' : 'Loading…'}
        pageParam="replicas-page"
        loading={st === undefined}
        rowKey={(r) => r.node}
        columns={[
          { label: 'Node', cell: (r) => <span class="mono">{r.node}</span> },
          { label: 'Node state', cell: (r) => <Status value={r.nodeStatus} /> },
          { label: 'Replica', cell: (r) => <Status value={r.status} /> },
          { label: 'Workers', cell: (r) => r.workers },
          { label: 'Version', cell: (r) => <span class="mono">{r.version?.slice(0, 12) ?? '-'}</span> },
          { label: 'Details', cell: (r) => r.details.join('; ') || '-' },
          { label: 'Reported', cell: (r) => formatTime(r.updatedAt) },
        ]}
      />
      <DataTable
        label="Models on the workers"
        rows={st?.models ?? []}
        empty={st ? 'No model is loaded.' : 'Loading…'}
        pageParam="models-page"
        loading={st === undefined}
        rowKey={(m) => `${m.name}@${m.version}`}
        columns={[
          { label: 'Model', cell: (m) => m.name },
          { label: 'Version', cell: (m) => <span class="mono">{m.version}</span> },
          { label: 'SHA', cell: (m) => <span class="mono">{m.sha.slice(0, 12)}…</span> },
          { label: 'Status', cell: (m) => <Status value={m.status} /> },
        ]}
      />
      <div class="panel">
        <TimeChart
          title="Requests per second"
          times={s.times}
          series={[{ label: 'requests/s', values: s.rps }]}
          height={160}
        />
      </div>
      <div class="panel">
        <TimeChart
          title="Latency (ms)"
          times={s.times}
          series={[
            { label: 'p50 ms', values: s.p50 },
            { label: 'p99 ms', values: s.p99 },
          ]}
          height={160}
        />
      </div>
      <h2>Steps</h2>
      <DataTable
        label="Steps"
        rows={steps.data ?? []}
        pageParam="steps-page"
        loading={steps.loading || steps.data === undefined}
        columns={[
          { label: '#', cell: (step) => (steps.data ?? []).indexOf(step) },
          { label: 'Model', cell: (step) => step.model.name },
          { label: 'Version', cell: (step) => <span class="mono">{step.model.version}</span> },
          { label: 'SHA', cell: (step) => <span class="mono">{step.model.sha.slice(0, 12)}…</span> },
        ]}
      />
      <h2>Versions</h2>
      <DataTable
        label="Versions"
        rows={versions.data ?? []}
        pageSize={10}
        pageParam="versions-page"
        loading={versions.loading || versions.data === undefined}
        rowKey={(v) => v.version}
        columns={[
          { label: 'Version', cell: (v) => <span class="mono">{v.version}</span> },
          { label: 'Created', cell: (v) => formatTime(v.createdAt) },
          { label: 'Steps', cell: (v) => v.steps.map((x) => x.model.name).join(' → ') },
        ]}
      />
    </div>
  );
}

/** Arrow IPC file or stream bytes → records. */
function arrowRecords(bytes: Uint8Array): Row[] {
  const table = arrow.tableFromIPC(bytes);
  return table.toArray().map((r: { toJSON(): Row }) => {
    const row = r.toJSON();
    for (const [k, v] of Object.entries(row)) {
      if (v !== null && typeof v === 'object' && 'toArray' in v)
        row[k] = Array.from((v as { toArray(): ArrayLike<unknown> }).toArray());
    }
    return row;
  });
}

function TryIt({ pipeline }: { pipeline: Pipeline }): JSX.Element {
  const [text, setText] = useState('[\n  {"tensor": [1, 2]}\n]');
  const [result, setResult] = useState<Row[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = (input: () => Promise<Row[]>): void => {
    setBusy(true);
    setError(null);
    input().then(
      (rows) => {
        setResult(rows);
        setBusy(false);
      },
      (err: unknown) => {
        setError(String(err));
        setBusy(false);
      },
    );
  };
  return (
    <div>
      <form
        class="panel"
        aria-label="Try the pipeline"
        onSubmit={(e) => {
          e.preventDefault();
          run(async () => {
            let records: unknown;
            try {
              records = JSON.parse(text);
            } catch (err) {
              throw new Error(`The input is not JSON: ${String(err)}`);
            }
            if (!Array.isArray(records))
              throw new Error('Give a JSON array of records, e.g. [{"tensor": [1, 2]}].');
            return await pipeline.infer(records as Row[]);
          });
        }}
      >
        <Field label="Input records (JSON)">
          <textarea value={text} onInput={(e) => setText(e.currentTarget.value)} spellcheck={false} />
        </Field>
        <div class="row" style={{ margin: '10px 0' }}>
          <button class="primary" type="submit" disabled={busy}>
            Infer
          </button>
          <span aria-live="polite">{busy ? 'Running…' : result ? countOf(result.length, 'row') : ''}</span>
        </div>
        <DropZone
          label="JSON or Arrow file"
          accept=".json,.arrow,.arrows,.feather,application/json"
          onFile={(file) =>
            run(async () => {
              const bytes = new Uint8Array(await file.arrayBuffer());
              if (file.name.endsWith('.json') || bytes[0] === 0x5b) {
                return await pipeline.infer(JSON.parse(new TextDecoder().decode(bytes)) as Row[]);
              }
              return arrowRecords(await pipeline.infer(bytes));
            })
          }
        />
      </form>
      <ErrorBox error={error} />
      {result ? <RecordsTable label="Result" rows={result} /> : null}
    </div>
  );
}

/** GET …/logs as JSON. */
interface LogPage {
  records: Row[];
  rows: number;
  truncated: boolean;
  schemaChanged: boolean;
  nextCursor: string | null;
}

const NO_TABLES: arrow.Table[] = [];

/** Whether an Arrow type is a number or a list of numbers (chartable). */
function isNumericType(type: arrow.DataType): boolean {
  // Lists of numbers chart by their first element (the tutorial's out.variable is [price]).
  if (arrow.DataType.isInt(type) || arrow.DataType.isFloat(type)) return true;
  if (arrow.DataType.isList(type) || arrow.DataType.isFixedSizeList(type)) {
    const child: arrow.DataType | undefined = type.children[0]?.type as arrow.DataType | undefined;
    return child !== undefined && (arrow.DataType.isInt(child) || arrow.DataType.isFloat(child));
  }
  return false;
}

/** Seconds per unit of an Arrow Timestamp's TimeUnit (SECOND, MILLISECOND, MICROSECOND, NANOSECOND). */
const PER_SECOND = [1, 1e3, 1e6, 1e9];

/**
 * A column's numbers (a list's first element) written into `out` from `at` on, read straight
 * from the Arrow buffers (no per-row get(), and nothing allocated per row: a boxed number or a
 * BigInt per row made the young-generation GC the largest cost of a 10 000-row page); NaN where
 * a row has no value. The general path only for types this does not know. Returns whether any
 * row had no value.
 */
function columnNumbers(vector: arrow.Vector | null, out: Float64Array, at: number): boolean {
  if (vector === null) {
    out.fill(NaN, at);
    return true;
  }
  let missing = false;
  let k = at;
  for (const data of vector.data as arrow.Data[]) {
    const type = data.type;
    const nulls = data.nullCount > 0;
    const n = data.length;
    if (arrow.DataType.isFloat(type) && !isHalf(type)) {
      const values = data.values as Float32Array | Float64Array;
      for (let i = 0; i < n; i++) out[k++] = nulls && !data.getValid(i) ? NaN : values[i]!;
    } else if (arrow.DataType.isInt(type)) {
      readIntegers(data, out, k);
      k += n;
    } else if (arrow.DataType.isList(type) && listOfNumbers(data.children[0])) {
      const offsets = data.valueOffsets as ArrayLike<number>;
      const child = data.children[0]!;
      const childNulls = child.nullCount > 0;
      const values = childValues(child);
      for (let i = 0; i < n; i++) {
        const first = offsets[i]!;
        out[k++] =
          (nulls && !data.getValid(i)) || offsets[i + 1]! <= first || (childNulls && !child.getValid(first))
            ? NaN
            : values(first);
      }
    } else if (arrow.DataType.isFixedSizeList(type) && listOfNumbers(data.children[0])) {
      const size = type.listSize;
      const child = data.children[0]!;
      const childNulls = child.nullCount > 0;
      const values = childValues(child);
      for (let i = 0; i < n; i++) {
        const first = i * size;
        out[k++] =
          (nulls && !data.getValid(i)) || size === 0 || (childNulls && !child.getValid(first))
            ? NaN
            : values(first);
      }
    } else {
      const v = new arrow.Vector([data]);
      for (let i = 0; i < n; i++) out[k++] = firstNumber(v.get(i)) ?? NaN;
    }
  }
  for (let i = at; i < k; i++) if (Number.isNaN(out[i])) missing = true;
  return missing;
}

/** 2^32, to join a 64-bit integer's two 32-bit halves without making a BigInt. */
const TWO_32 = 4_294_967_296;

/**
 * An integer column into `out` from `at` on; 64-bit ones from their two 32-bit halves (exact
 * up to 2^53, the nearest double beyond), so no BigInt is made per row.
 */
function readIntegers(data: arrow.Data, out: Float64Array, at: number): void {
  const nulls = data.nullCount > 0;
  const values = data.values as ArrayLike<number> | BigInt64Array | BigUint64Array;
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    const halves = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
    const signed = values instanceof BigInt64Array;
    for (let i = 0; i < data.length; i++) {
      const lo = halves[2 * i]! >>> 0;
      const hi = halves[2 * i + 1]!;
      out[at + i] = nulls && !data.getValid(i) ? NaN : (signed ? hi : hi >>> 0) * TWO_32 + lo;
    }
  } else {
    for (let i = 0; i < data.length; i++) out[at + i] = nulls && !data.getValid(i) ? NaN : values[i]!;
  }
}

/** A list child's value at an index, as a double (64-bit integers from their halves). */
function childValues(child: arrow.Data): (index: number) => number {
  const values = child.values as ArrayLike<number> | BigInt64Array | BigUint64Array;
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    const halves = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
    const signed = values instanceof BigInt64Array;
    return (i) => {
      const hi = halves[2 * i + 1]!;
      return (signed ? hi : hi >>> 0) * TWO_32 + (halves[2 * i]! >>> 0);
    };
  }
  return (i) => values[i]!;
}

function isHalf(type: arrow.DataType): boolean {
  return arrow.DataType.isFloat(type) && type.precision === arrow.Precision.HALF;
}

function listOfNumbers(child: arrow.Data | undefined): boolean {
  const t = child?.type;
  return t !== undefined && (arrow.DataType.isInt(t) || arrow.DataType.isFloat(t)) && !isHalf(t);
}

/** The `time` column in seconds since the epoch into `out` from `at` on, from the Timestamp buffer. */
function timeSeconds(vector: arrow.Vector | null, out: Float64Array, at: number): void {
  if (vector === null) return;
  let k = at;
  for (const data of vector.data as arrow.Data[]) {
    const type = data.type;
    if (arrow.DataType.isTimestamp(type) && data.values instanceof BigInt64Array) {
      const per = PER_SECOND[type.unit] ?? 1e3;
      readIntegers(data, out, k);
      for (let i = k; i < k + data.length; i++) out[i] = out[i]! / per;
    } else {
      const v = new arrow.Vector([data]);
      for (let i = 0; i < data.length; i++) out[k + i] = Number(v.get(i)) / 1000;
    }
    k += data.length;
  }
}

/** A cell's number: itself, or the first element of a list. */
function firstNumber(value: unknown): number | null {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value !== null && typeof value === 'object' && 'get' in value) {
    return firstNumber((value as { get(i: number): unknown }).get(0));
  }
  return null;
}

/** One cell of an Arrow row as text (lists as `[a, b]`, times as local times). */
function arrowCellText(name: string, value: unknown): string {
  if (name === 'time' && typeof value === 'number') return formatTime(value);
  if (value !== null && typeof value === 'object' && 'toArray' in value)
    return cellText(Array.from((value as { toArray(): ArrayLike<unknown> }).toArray()));
  return cellText(typeof value === 'bigint' ? Number(value) : value);
}

/**
 * The rows of Arrow pages in one scrolling table that draws only the rows on screen: cells are
 * read from the Arrow columns for those rows only, however many rows the pages hold.
 */
function ArrowRowsTable(props: {
  label: string;
  tables: readonly arrow.Table[];
  total: number;
}): JSX.Element {
  const { tables, total, label } = props;
  const columns = useMemo(() => (tables[0]?.schema.fields ?? []).map((f: arrow.Field) => f.name), [tables]);
  const row = useMemo(() => {
    // Where each page starts, to find a row's page by binary search.
    const starts: number[] = [];
    let at = 0;
    for (const t of tables) {
      starts.push(at);
      at += t.numRows;
    }
    const vectors = tables.map((t) => columns.map((c) => t.getChild(c)));
    return (index: number): string[] => {
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid]! <= index) lo = mid;
        else hi = mid - 1;
      }
      const local = index - (starts[lo] ?? 0);
      return columns.map((c, k) => arrowCellText(c, vectors[lo]?.[k]?.get(local)));
    };
  }, [tables, columns]);
  return <VirtualTable label={label} count={total} columns={columns} row={row} />;
}

/** Inference-log pages as Arrow tables, oldest first. */
interface LogTables {
  tables: arrow.Table[];
  total: number;
  /** More rows in the range than the view loads. */
  more: boolean;
}

/**
 * What the explorer asks for unless the input columns are shown: the time, the outputs and the
 * check failures. The inputs (`in.*`, e.g. 18 numbers a row) are most of a page's bytes.
 */
const SHOWN_WITHOUT_INPUTS = 'time,out.*,check_failures';

/**
 * Arrow pages of at most 10 000 rows, oldest first, up to 50 000 rows for the view: the chart
 * reads two columns straight from them, cells are read only for the rows on screen. `columns`
 * (the log API's list) narrows what the server sends; null = every column.
 */
async function loadLogTables(
  session: ConsoleSession,
  path: string,
  start: number,
  end: number,
  columns: string | null,
): Promise<LogTables> {
  const tables: arrow.Table[] = [];
  let total = 0;
  let cursor: string | null = null;
  // Marks for the bench (performance timeline): request sent, bytes in, Arrow parsed.
  performance.mark('quoll:logs:request');
  do {
    const q = new URLSearchParams({ start: String(start), end: String(end), limit: '10000' });
    if (columns !== null) q.set('columns', columns);
    if (cursor) q.set('cursor', cursor);
    const res = await fetch(`${path}?${q.toString()}`, {
      credentials: 'same-origin',
      headers: { ...apiHeaders(session), accept: 'application/vnd.apache.arrow.stream' },
    });
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    performance.mark('quoll:logs:bytes');
    cursor = res.headers.get('x-quoll-next-cursor');
    if (bytes.length > 0) {
      const table = arrow.tableFromIPC(bytes);
      if (table.numRows > 0) tables.push(table);
      total += table.numRows;
    }
    performance.mark('quoll:logs:parsed');
  } while (cursor !== null && total < 50_000);
  return { tables, total, more: cursor !== null };
}

const RANGES: ReadonlyArray<[string, number]> = [
  ['Last 15 minutes', 15 * 60_000],
  ['Last hour', 3_600_000],
  ['Last 24 hours', 86_400_000],
  ['Last 7 days', 7 * 86_400_000],
];

function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** The inference-log explorer: a time range, the rows (paged), a chart of an output column, export. */
function LogExplorer(props: { session: ConsoleSession; workspaceId: number; name: string }): JSX.Element {
  const { session, workspaceId, name } = props;
  const loc = useLocation();
  // Without a range in the URL: the last hour as of opening the page (fixed, so it loads once).
  const [opened] = useState(() => Date.now());
  const start = Number(loc.query.get('start') ?? opened - 3_600_000);
  const end = Number(loc.query.get('end') ?? opened + 60_000);
  // The input columns are loaded only when asked for (`&inputs=1`): they are most of the bytes.
  const inputs = loc.query.get('inputs') === '1';
  const base = `/pipelines/${workspaceId}/${encodeURIComponent(name)}?tab=logs`;
  const path = `/v1/workspaces/${workspaceId}/pipelines/${encodeURIComponent(name)}/logs`;
  const [column, setColumn] = useState<string | null>(null);
  const [refreshed, setRefreshed] = useState(0);
  // The request leaves while this renders (not in an effect): before the chart below is laid
  // out and made, which would otherwise delay it by a layout and a paint.
  const request = useMemo(
    () => loadLogTables(session, path, start, end, inputs ? null : SHOWN_WITHOUT_INPUTS),
    [path, start, end, inputs, refreshed],
  );
  const page = useAsync(() => request, [request]);
  const [info, setInfo] = useState<string>('');
  const tables = page.data?.tables ?? NO_TABLES;
  const total = page.data?.total ?? 0;
  const summary = page.data
    ? `${countOf(total, 'row')}${page.data.more ? ' (the first 50 000; narrow the range, or export for all)' : ''}`
    : '';
  const numeric = useMemo(() => {
    const first = tables[0];
    if (!first) return [];
    const fields: arrow.Field[] = first.schema.fields;
    return fields
      .filter((f) => f.name !== 'time' && isNumericType(f.type as arrow.DataType))
      .map((f) => f.name);
  }, [tables]);
  const chosen =
    column && numeric.includes(column)
      ? column
      : (numeric.find((c) => c.startsWith('out.')) ?? numeric[0] ?? null);
  const series = useMemo(() => {
    // Typed arrays filled in place: no boxed number per row (see columnNumbers).
    const times = new Float64Array(chosen ? total : 0);
    let values: Float64Array | (number | null)[] = new Float64Array(times.length);
    if (chosen) {
      let at = 0;
      let missing = false;
      for (const table of tables) {
        timeSeconds(table.getChild('time'), times, at);
        if (columnNumbers(table.getChild(chosen), values, at)) missing = true;
        at += table.numRows;
      }
      // Rows without a value are gaps in the chart (uPlot draws null as a gap, NaN not).
      if (missing) values = Array.from(values, (v) => (Number.isNaN(v) ? null : v));
    }
    if (tables.length > 0) performance.mark('quoll:logs:series');
    return { times, values };
  }, [tables, chosen, total]);
  // For the bench: the rows and the chart's data are in the DOM (before style, layout and paint).
  useLayoutEffect(() => {
    if (tables.length > 0) performance.mark('quoll:logs:committed');
  }, [tables]);
  const go = (s: number, e: number, withInputs: boolean): void =>
    navigate(`${base}&start=${s}&end=${e}${withInputs ? '&inputs=1' : ''}`);
  const setRange = (s: number, e: number): void => go(s, e, inputs);
  const download = (format: 'json' | 'arrow'): void => {
    const q = new URLSearchParams({ start: String(start), end: String(end), maxBytes: '67108864' });
    void (async () => {
      const res = await fetch(`${path}?${q.toString()}`, {
        credentials: 'same-origin',
        headers: { accept: format === 'json' ? 'application/json' : 'application/vnd.apache.arrow.file' },
      });
      if (!res.ok) throw new Error(`export failed: ${res.status}`);
      const blob =
        format === 'json'
          ? new Blob([JSON.stringify(((await res.json()) as LogPage).records)], { type: 'application/json' })
          : await res.blob();
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `${name}-logs-${new Date(start).toISOString()}.${format === 'json' ? 'json' : 'arrow'}`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    })().catch((err: unknown) => setInfo(String(err)));
  };
  return (
    <div>
      <div class="panel row" role="group" aria-label="Time range">
        {RANGES.map(([label, ms]) => (
          <button key={label} type="button" onClick={() => setRange(Date.now() - ms, Date.now() + 60_000)}>
            {label}
          </button>
        ))}
        <Field label="From">
          <input
            type="datetime-local"
            value={localInput(start)}
            onChange={(e) => setRange(new Date(e.currentTarget.value).getTime(), end)}
          />
        </Field>
        <Field label="To">
          <input
            type="datetime-local"
            value={localInput(end)}
            onChange={(e) => setRange(start, new Date(e.currentTarget.value).getTime())}
          />
        </Field>
        <button type="button" onClick={() => setRefreshed((n) => n + 1)}>
          Refresh
        </button>
      </div>
      <ErrorBox error={page.error} />
      <p aria-live="polite" class="muted" id="log-summary">
        {page.loading ? 'Loading…' : info || summary}
      </p>
      <div class="panel">
        <div class="row">
          <Field label="Chart column">
            <select value={chosen ?? ''} onChange={(e) => setColumn(e.currentTarget.value)}>
              {numeric.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <TimeChart
          range={[start / 1000, end / 1000]}
          // No title while the first rows load: the column's name then comes into an empty line
          // (a centred "No numeric column" replaced by it would move).
          title={chosen ? `${chosen} over time` : page.data ? 'No numeric column' : ''}
          times={series.times}
          series={[{ label: chosen ?? '-', values: series.values }]}
          height={200}
        />
      </div>
      <div class="row table-tools" role="group" aria-label="Rows">
        <label class="check">
          <input type="checkbox" checked={inputs} onChange={(e) => go(start, end, e.currentTarget.checked)} />
          Show input columns (in.*)
        </label>
        <span class="spacer" />
        {/* Exports hold every column of the range, whatever the table shows. */}
        <button type="button" onClick={() => download('json')}>
          Export JSON
        </button>
        <button type="button" onClick={() => download('arrow')}>
          Export Arrow
        </button>
      </div>
      <ArrowRowsTable label="Inference log rows" tables={tables} total={total} />
    </div>
  );
}
