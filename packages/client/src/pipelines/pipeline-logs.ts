import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { checkArrowModule, type ArrowModule, type ArrowTableOf } from '../arrow-interop/index.js';
import { ValidationError } from '../errors/index.js';
import type { HttpTransport } from '../http/index.js';
import type { ClientPlatform, FileSink, SinkFile } from '../platform/index.js';
import { LOG_DEFAULTS, MEDIA_TYPES } from '../wire/index.js';
import { parseDataSize } from './data-size.js';

/** A time bound of a log query: a `Date`, epoch milliseconds, or a date string (RFC 3339; zone-less means local time). */
export type LogTime = Date | number | string;

/** One inference-log row as a record: `{ time: <epoch ms>, 'in.tensor': [...], 'out.variable': [...], check_failures: 0 }`. */
export type LogRecord = Record<string, unknown>;

/** Options of `Pipeline.logs()`. */
export interface LogsOptions {
  /**
   * Most rows to return.
   * @default 100 without a time range; no row limit (only the size cap) with one
   */
  limit?: number;
  /** Earliest time (inclusive). Give together with `end`; then rows come oldest first. */
  start?: LogTime;
  /** Latest time (inclusive). Give together with `start`. */
  end?: LogTime;
  /**
   * Return an Arrow `Table` instead of records: `true` for a Table of the SDK's apache-arrow, or
   * your own apache-arrow module (`import * as arrow from 'apache-arrow'`, ≥ 15) for a Table of
   * your copy.
   * @default false
   */
  arrow?: boolean | ArrowModule;
  /**
   * Size cap of the result in bytes of Arrow data; a bigger result is cut and flagged.
   * @default 10_000_000 (10 MB)
   */
  maxBytes?: number;
}

/** What a `logs()` result says about itself (non-enumerable properties of the returned array or Table). */
export interface LogsResultInfo {
  /** The size cap cut the result short (a warning naming `exportLogs` was printed). */
  readonly truncated: boolean;
  /** Rows of another schema follow in the requested order and are not included (a warning was printed). */
  readonly schemaChanged: boolean;
  /** More rows exist beyond `limit` (a warning was printed). */
  readonly moreAvailable: boolean;
}

/** `logs()` as records: an array with the {@link LogsResultInfo} flags as extra properties. */
export type LogRecords = LogRecord[] & LogsResultInfo;

/** `logs({ arrow: true })`: an Arrow `Table` with the {@link LogsResultInfo} flags as extra properties. */
export type LogsTable = Table & LogsResultInfo;

/** `logs({ arrow: yourArrow })`: a Table of your apache-arrow with the {@link LogsResultInfo} flags. */
export type LogsTableOf<A extends ArrowModule> = ArrowTableOf<A> & LogsResultInfo;

/** Options of `Pipeline.exportLogs()`. */
export interface ExportLogsOptions {
  /**
   * Directory the files go to (created if missing).
   * @default 'logs'
   */
  directory?: string;
  /**
   * File name prefix: files are `<prefix>-1.json`, `<prefix>-2.json`, … (one per schema).
   * @default the pipeline's name
   */
  filePrefix?: string;
  /**
   * Most bytes written over all files, e.g. `"1.5 MiB"`, `"10 MiB"`, `"1 GiB"`.
   * @default '100 MiB'
   */
  dataSizeLimit?: string;
  /** Earliest time (inclusive). Give together with `end`; then rows go oldest first. */
  start?: LogTime;
  /** Latest time (inclusive). Give together with `start`. */
  end?: LogTime;
  /**
   * Most rows to export.
   * @default 100 without a time range; no row limit with one
   */
  limit?: number;
  /**
   * Write Arrow IPC files (`.arrow`) instead of JSON Lines (`.json`).
   * @default false
   */
  arrow?: boolean;
}

/** What `exportLogs()` wrote. */
export interface ExportLogsSummary {
  /** Paths of the files written, in order (a new file at each schema change). */
  files: string[];
  /** Rows written over all files. */
  rows: number;
  /** Bytes written over all files. */
  bytes: number;
  /** The data size limit stopped the export early. */
  truncated: boolean;
  /** More rows exist beyond `limit`. */
  moreAvailable: boolean;
}

/** One page as the logs endpoint sends it. */
interface FetchedPage {
  rows: number;
  truncated: boolean;
  schemaChanged: boolean;
  nextCursor: string | null;
  schemaId: string | null;
  /** Bytes of the body as received. */
  bodyBytes: number;
  /** The body of an Arrow page. */
  bytes?: Uint8Array;
  table?: Table;
  records?: LogRecord[];
}

interface PageQuery {
  start?: number;
  end?: number;
  limit?: number;
  maxBytes?: number;
  cursor?: string;
}

const DEFAULT_LIMIT = LOG_DEFAULTS.limit;
const PAGE_BYTES = LOG_DEFAULTS.pageBytes;

const utf8 = new TextEncoder();

/** Turns a time bound into epoch ms; `ValidationError('invalid_time_range')` when it is not a time. */
export function toEpochMs(name: 'start' | 'end', value: LogTime): number {
  let ms: number;
  if (value instanceof Date) ms = value.getTime();
  else if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') ms = /^-?\d+$/.test(value.trim()) ? Number(value) : Date.parse(value);
  else ms = NaN;
  if (!Number.isFinite(ms)) {
    throw new ValidationError(
      'invalid_time_range',
      `Log ${name} ${JSON.stringify(value)} is not a time; give a Date, epoch milliseconds or an RFC 3339 string.`,
      0,
      { [name]: String(value) },
    );
  }
  return ms;
}

/** Checks start/end (both or neither, start ≤ end) before any request. */
function timeRange(options: { start?: LogTime; end?: LogTime }): { start: number; end: number } | null {
  const hasStart = options.start !== undefined && options.start !== null;
  const hasEnd = options.end !== undefined && options.end !== null;
  if (hasStart !== hasEnd) {
    throw new ValidationError(
      'invalid_time_range',
      `Please provide both start and end together (got only ${hasStart ? 'start' : 'end'}), or neither for the newest logs.`,
      0,
    );
  }
  if (!hasStart) return null;
  const start = toEpochMs('start', options.start as LogTime);
  const end = toEpochMs('end', options.end as LogTime);
  if (start > end) {
    throw new ValidationError(
      'invalid_time_range',
      `Log start (${new Date(start).toISOString()}) is after end (${new Date(end).toISOString()}); swap them.`,
      0,
    );
  }
  return { start, end };
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new ValidationError(
      'invalid_request',
      `limit must be a positive integer; got ${String(limit)}.`,
      0,
      { limit },
    );
  }
}

/** Fetches one page of the logs endpoint as Arrow or records. */
async function fetchPage(
  http: HttpTransport,
  path: string,
  q: PageQuery,
  arrow: boolean,
): Promise<FetchedPage> {
  const res = await http.send('GET', path, {
    query: { start: q.start, end: q.end, limit: q.limit, maxBytes: q.maxBytes, cursor: q.cursor },
    accept: arrow ? MEDIA_TYPES.arrowStream : MEDIA_TYPES.json,
    timeoutMs: 300_000,
  });
  if (arrow) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    return {
      rows: Number(res.headers.get('x-quoll-rows') ?? 0),
      truncated: res.headers.get('x-quoll-truncated') === 'true',
      schemaChanged: res.headers.get('x-quoll-schema-changed') === 'true',
      nextCursor: res.headers.get('x-quoll-next-cursor'),
      schemaId: res.headers.get('x-quoll-schema-id'),
      bodyBytes: bytes.byteLength,
      bytes,
      table: tableFromIPC(bytes),
    };
  }
  const text = await res.text();
  const body = JSON.parse(text) as Omit<FetchedPage, 'bodyBytes' | 'table'> & { records: LogRecord[] };
  return { ...body, bodyBytes: text.length };
}

function withInfo<T extends object>(value: T, info: LogsResultInfo): T & LogsResultInfo {
  // Non-enumerable: records print and serialise as a plain array, a Table as a Table.
  for (const [key, v] of Object.entries(info))
    Object.defineProperty(value, key, { value: v, enumerable: false });
  return value as T & LogsResultInfo;
}

/** `Pipeline.logs()`: one page of the logs endpoint, with the original's warnings. */
export async function fetchLogs(
  http: HttpTransport,
  platform: ClientPlatform,
  path: string,
  options: LogsOptions,
): Promise<LogRecords | LogsTable | (object & LogsResultInfo)> {
  const warn = (text: string): void => platform.warn(text);
  const userArrow =
    typeof options.arrow === 'object' && options.arrow !== null
      ? checkArrowModule(options.arrow, 'logs() option arrow')
      : undefined;
  const range = timeRange(options);
  checkLimit(options.limit);
  if (options.maxBytes !== undefined && !(options.maxBytes > 0)) {
    throw new ValidationError(
      'invalid_request',
      `maxBytes must be a positive number; got ${String(options.maxBytes)}.`,
      0,
    );
  }
  const arrow = options.arrow === true || userArrow !== undefined;
  const page = await fetchPage(
    http,
    path,
    { ...(range ?? {}), limit: options.limit, maxBytes: options.maxBytes ?? PAGE_BYTES },
    arrow,
  );
  const order = range === null ? 'newest' : 'oldest';
  // "More available" is only said when neither the size cap nor a schema change explains the cursor.
  const moreAvailable = page.nextCursor !== null && !page.truncated && !page.schemaChanged;
  if (page.truncated) {
    warn(
      `Warning: Pipeline log size limit exceeded. Only displaying ${page.rows} log messages. Please request logs using exportLogs.`,
    );
  }
  if (page.schemaChanged) {
    const times = arrow ? page.table?.getChild('time') : null;
    const lastTime = arrow
      ? Number(times?.get(page.rows - 1) ?? NaN)
      : Number(page.records?.at(-1)?.time ?? NaN);
    warn(
      `Warning: Pipeline log schema has changed over the logs requested. ${page.rows} ${order} records retrieved successfully, ` +
        `last record seen was at ${Number.isFinite(lastTime) ? new Date(lastTime).toISOString() : 'unknown'}. ` +
        'Please request additional records separately or use exportLogs.',
    );
  }
  if (moreAvailable && range === null) {
    warn(
      'Warning: There are more logs available. Please set a larger limit or request a file using exportLogs.',
    );
  }
  const info: LogsResultInfo = {
    truncated: page.truncated,
    schemaChanged: page.schemaChanged,
    moreAvailable,
  };
  if (userArrow !== undefined) {
    // Read with the caller's own apache-arrow, so the Table is of their copy.
    const table = page.bytes === undefined ? null : userArrow.tableFromIPC(page.bytes);
    return withInfo(table ?? {}, info);
  }
  return arrow ? withInfo(page.table ?? new Table(), info) : withInfo(page.records ?? [], info);
}

/** Writes the files of one schema, one after the other. */
class ExportFiles {
  readonly files: string[] = [];
  #file: SinkFile | null = null;
  #batches: Table[] = [];
  #current: string | null = null;

  constructor(
    readonly sink: FileSink,
    readonly prefix: string,
    readonly arrow: boolean,
  ) {}

  /** Starts file N+1 when the schema differs from the current file's. */
  async useSchema(schemaId: string | null): Promise<void> {
    if (this.files.length > 0 && schemaId === this.#current) return;
    await this.close();
    this.#current = schemaId;
    const name = `${this.prefix}-${this.files.length + 1}.${this.arrow ? 'arrow' : 'json'}`;
    this.files.push(this.sink.path(name));
    // An Arrow file is written whole at close (the IPC file footer needs every batch).
    this.#file = await this.sink.create(name);
  }

  async writeLines(text: string): Promise<void> {
    await this.#file?.write(text);
  }

  addTable(table: Table): void {
    this.#batches.push(table);
  }

  /** Finishes the current file. */
  async close(): Promise<void> {
    const file = this.#file;
    this.#file = null;
    if (file === null) return;
    try {
      if (this.arrow && this.#batches.length > 0) {
        const [first, ...rest] = this.#batches;
        await file.write(tableToIPC((first as Table).concat(...rest), 'file'));
      }
    } finally {
      this.#batches = [];
      await file.close();
    }
  }
}

/** `Pipeline.exportLogs()`: pages through the logs endpoint with the cursor and writes numbered files. */
export async function exportLogs(
  http: HttpTransport,
  platform: ClientPlatform,
  path: string,
  pipelineName: string,
  options: ExportLogsOptions,
): Promise<ExportLogsSummary> {
  const warn = (text: string): void => platform.warn(text);
  const sizeText = options.dataSizeLimit ?? '100 MiB';
  const budget = parseDataSize(sizeText);
  const range = timeRange(options);
  checkLimit(options.limit);
  const limit = options.limit ?? (range === null ? DEFAULT_LIMIT : Number.POSITIVE_INFINITY);
  const arrow = options.arrow === true;
  const sink = await platform.openDirectory(options.directory ?? 'logs');
  const out = new ExportFiles(sink, options.filePrefix ?? pipelineName, arrow);
  let rows = 0;
  let bytes = 0;
  let truncated = false;
  let moreAvailable = false;
  let cursor: string | undefined;
  try {
    for (;;) {
      const left = limit - rows;
      const page = await fetchPage(
        http,
        path,
        {
          ...(range ?? {}),
          limit: Number.isFinite(left) ? left : undefined,
          // Never fetch much more than the budget can still take (the server always sends ≥ 1 row).
          maxBytes: Math.max(1, Math.min(PAGE_BYTES, budget - bytes)),
          cursor,
        },
        arrow,
      );
      if (page.rows === 0) break;
      let taken: number;
      if (arrow) {
        const table = page.table as Table;
        const perRow = page.bodyBytes / Math.max(1, table.numRows);
        taken = Math.min(table.numRows, Math.floor((budget - bytes) / perRow));
        if (taken > 0) {
          await out.useSchema(page.schemaId);
          out.addTable(taken < table.numRows ? table.slice(0, taken) : table);
        }
        bytes += Math.round(taken * perRow);
      } else {
        let text = '';
        taken = 0;
        for (const record of page.records ?? []) {
          const line = `${JSON.stringify(record)}\n`;
          const size = utf8.encode(line).byteLength;
          if (bytes + size > budget) break;
          text += line;
          bytes += size;
          taken++;
        }
        if (taken > 0) {
          await out.useSchema(page.schemaId);
          await out.writeLines(text);
        }
      }
      rows += taken;
      if (taken < page.rows) {
        truncated = true;
        break;
      }
      cursor = page.nextCursor ?? undefined;
      if (cursor === undefined) break;
      if (rows >= limit) {
        moreAvailable = true;
        break;
      }
    }
  } finally {
    await out.close();
  }
  if (out.files.length > 1)
    warn('Note: The logs with different schemas are written to separate files in the provided directory.');
  if (truncated) {
    warn(
      `Warning: Pipeline log data size limit of ${sizeText} exceeded. ${rows} ${range === null ? 'newest' : 'oldest'} records exported successfully; ` +
        'set a larger dataSizeLimit or a narrower time range to export more.',
    );
  }
  if (moreAvailable)
    warn('Warning: There are more logs available. Please set a larger limit to export more data.');
  return { files: out.files, rows, bytes, truncated, moreAvailable };
}
