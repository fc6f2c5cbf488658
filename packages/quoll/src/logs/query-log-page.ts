import { LOG_DEFAULTS } from '@quoll/client/wire';
import { Table } from 'apache-arrow';
import type { RecordBatch } from 'apache-arrow';
import { ApiError } from '../server/api-error.js';
import { decodeLogCursor, encodeLogCursor } from './log-cursor.js';
import type { LogCursor } from './log-cursor.js';
import type { LogSegmentIndex, LogSegmentRecord } from './log-segment-index.js';
import type { OpenSegment } from './open-segment.js';
import { reverseRecordBatch } from './reverse-record-batch.js';
import { readBatchRange, timeValues } from './segment-file.js';
import type { SegmentReadCache, SegmentView } from './segment-read-cache.js';

/** Rows a query without a time range returns when no limit is given (the original's default). */
export const DEFAULT_LOG_LIMIT = LOG_DEFAULTS.limit;
/** Size cap of one page, in bytes of Arrow data (the original's 10 MB). */
export const DEFAULT_LOG_PAGE_BYTES = LOG_DEFAULTS.pageBytes;
/** The most bytes one read of consecutive batches fetches; bigger pages take several reads. */
const MAX_WINDOW_BYTES = 16 * 1024 * 1024;

/** A read of a pipeline's inference log. */
export interface LogQuery {
  /** Earliest `time` to include, epoch ms (inclusive). Give with `end`, or neither. */
  start?: number;
  /** Latest `time` to include, epoch ms (inclusive). Give with `start`, or neither. */
  end?: number;
  /**
   * Most rows to return.
   * @default 100 without a time range; no limit (only the byte cap) with one
   */
  limit?: number;
  /**
   * Row order by time.
   * @default 'desc' (newest first) without a time range, 'asc' (oldest first) with one
   */
  order?: 'asc' | 'desc';
  /**
   * Size cap of the page in bytes of Arrow data; the page is cut at the last row that fits
   * (at least one row is always returned, so paging makes progress) and `truncated` is set.
   * @default 10_000_000
   */
  maxBytes?: number;
  /** `nextCursor` of the previous page, to continue the same query. */
  cursor?: string;
}

/** One page of a pipeline's inference log. */
export interface LogPage {
  /**
   * The rows, in the requested order, all of one schema (the first met in that order).
   * No rows: an empty table without columns, like the original's empty DataFrame.
   */
  table: Table;
  /** Number of rows in `table`. */
  rows: number;
  /** The schema id of the rows (`null` when there are none). */
  schemaId: string | null;
  /** Whether the byte cap cut the page short. */
  truncated: boolean;
  /** Whether rows of another schema follow in the requested order (not returned; see `nextCursor`). */
  schemaChanged: boolean;
  /** Pass as `cursor` to get the next page of the same query; `null` when no rows are left. */
  nextCursor: string | null;
}

/** What a query needs from the store. */
export interface LogReadContext {
  index: LogSegmentIndex;
  cache: SegmentReadCache;
  /** The segment the writer is appending to for a pipeline, if any. */
  openSegment(pipelineId: number): OpenSegment | undefined;
}

/** A log query checked and with its defaults filled in. */
export interface LogQueryPlan {
  ranged: boolean;
  start: number;
  end: number;
  order: 'asc' | 'desc';
  limit: number;
  maxBytes: number;
  cursor: LogCursor | null;
}

function invalid(
  code: 'invalid_time_range' | 'invalid_request',
  message: string,
  details: Record<string, unknown>,
): never {
  throw new ApiError(code, message, details);
}

/** Checks a query and fills in the defaults; throws `ApiError` naming the bad value. */
export function planLogQuery(q: LogQuery): LogQueryPlan {
  const hasStart = q.start !== undefined;
  const hasEnd = q.end !== undefined;
  if (hasStart !== hasEnd) {
    invalid(
      'invalid_time_range',
      `A log time range needs both start and end; got only ${hasStart ? 'start' : 'end'}. Give both, or neither for the newest rows.`,
      { start: q.start, end: q.end },
    );
  }
  const start = q.start ?? 0;
  const end = q.end ?? 0;
  if (hasStart && (!Number.isFinite(start) || !Number.isFinite(end))) {
    invalid(
      'invalid_time_range',
      `Log start and end must be epoch milliseconds; got start=${start}, end=${end}.`,
      { start, end },
    );
  }
  if (hasStart && start > end) {
    invalid('invalid_time_range', `Log start (${start}) is after end (${end}); swap them.`, { start, end });
  }
  if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') {
    invalid('invalid_request', `Log order must be "asc" or "desc"; got "${String(q.order)}".`, {
      order: q.order,
    });
  }
  if (q.limit !== undefined && (!Number.isSafeInteger(q.limit) || q.limit < 1)) {
    invalid('invalid_request', `Log limit must be a positive integer; got ${q.limit}.`, { limit: q.limit });
  }
  if (q.maxBytes !== undefined && (!Number.isFinite(q.maxBytes) || q.maxBytes <= 0)) {
    invalid('invalid_request', `Log maxBytes must be a positive number; got ${q.maxBytes}.`, {
      maxBytes: q.maxBytes,
    });
  }
  const order = q.order ?? (hasStart ? 'asc' : 'desc');
  return {
    ranged: hasStart,
    start,
    end,
    order,
    limit: q.limit ?? (hasStart ? Number.POSITIVE_INFINITY : DEFAULT_LOG_LIMIT),
    maxBytes: q.maxBytes ?? DEFAULT_LOG_PAGE_BYTES,
    cursor: q.cursor === undefined ? null : decodeLogCursor(q.cursor, order),
  };
}

/** First index in `t` whose value is ≥ `x` (`gt`: > `x`). */
function bound(t: BigInt64Array, x: bigint, gt: boolean): number {
  let lo = 0;
  let hi = t.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = t[mid] ?? 0n;
    if (gt ? v > x : v >= x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The segments to visit, in order, with the writer's open segment merged in (the index lags it). */
async function candidateSegments(
  ctx: LogReadContext,
  pipelineId: number,
  p: LogQueryPlan,
): Promise<LogSegmentRecord[]> {
  const listed = p.ranged
    ? await ctx.index.segmentsOverlapping(pipelineId, p.start, p.end, p.order)
    : await ctx.index.listSegments(pipelineId, p.order);
  const open = ctx.openSegment(pipelineId);
  const out = listed.filter((s) => s.seq !== open?.seq);
  if (open !== undefined && open.index.count > 0) {
    const u = open.update(false);
    if (!p.ranged || ((u.minTime ?? 0) <= p.end && (u.maxTime ?? 0) >= p.start)) {
      out.push({ ...u, schemaId: open.schemaId, createdAt: 0 });
      out.sort((a, b) => (p.order === 'asc' ? a.seq - b.seq : b.seq - a.seq));
    }
  }
  return out;
}

/**
 * Answers one page of a log query: opens only the segments whose time span meets the range,
 * binary-searches their batch index by time and reads only the batches the page needs.
 */
export async function queryLogPage(ctx: LogReadContext, pipelineId: number, q: LogQuery): Promise<LogPage> {
  const p = planLogQuery(q);
  const segments = await candidateSegments(ctx, pipelineId, p);
  const asc = p.order === 'asc';
  const startT = BigInt(Math.ceil(p.start));
  const endT = BigInt(Math.floor(p.end));
  const pieces: RecordBatch[] = [];
  let rowsOut = 0;
  let bytesLeft = p.maxBytes;
  let schemaId: string | null = null;
  let truncated = false;
  let schemaChanged = false;
  let next: LogCursor | null = null;
  let stopped = false;

  for (let si = 0; si < segments.length && !stopped; si++) {
    const seg = segments[si] as LogSegmentRecord;
    const c = p.cursor;
    if (c !== null && (asc ? seg.seq < c.seq : seg.seq > c.seq)) continue;
    const open = ctx.openSegment(pipelineId);
    const view: SegmentView | null =
      open?.seq === seg.seq ? open.view : await ctx.cache.get(pipelineId, seg.seq);
    if (view === null) continue;
    const idx = view.index;
    // Snapshot: the open segment's index grows while we read.
    const count = idx.count;
    if (count === 0) continue;
    // Rows of this segment that the cursor still allows: [minRow, maxRow].
    const minRow = c !== null && asc && seg.seq === c.seq ? c.row : 0;
    const maxRow = c !== null && !asc && seg.seq === c.seq ? c.row : Number.POSITIVE_INFINITY;
    if (maxRow < 0) continue;
    const bFirst = Math.max(
      p.ranged ? idx.firstBatchEndingAtOrAfter(p.start) : 0,
      minRow > 0 ? idx.batchOfRow(minRow) : 0,
    );
    const bLast = Math.min(
      p.ranged ? idx.lastBatchStartingAtOrBefore(p.end) : count - 1,
      Number.isFinite(maxRow) ? idx.batchOfRow(maxRow) : count - 1,
      count - 1,
    );
    if (bFirst > bLast) continue;
    let b = asc ? bFirst : bLast;
    let segDone = false;
    while (!segDone && !stopped && (asc ? b <= bLast : b >= bFirst)) {
      // Plan one read of consecutive batches: enough rows for the rest of the page, within the byte budget.
      let w = b;
      let planRows = idx.rowCount(b);
      let planBytes = idx.length(b);
      while (planRows < p.limit - rowsOut && planBytes < Math.min(bytesLeft, MAX_WINDOW_BYTES)) {
        const n = asc ? w + 1 : w - 1;
        if (asc ? n > bLast : n < bFirst) break;
        w = n;
        planRows += idx.rowCount(w);
        planBytes += idx.length(w);
      }
      let batches: RecordBatch[];
      try {
        batches = await readBatchRange(view.path, idx, view.schemaMessage, Math.min(b, w), Math.max(b, w));
      } catch (err) {
        // Retention may delete a sealed segment under a reader: its rows are gone, move on.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        throw err;
      }
      const lo = Math.min(b, w);
      for (let bi = b; asc ? bi <= w : bi >= w; bi += asc ? 1 : -1) {
        const batch = batches[bi - lo] as RecordBatch;
        const n = batch.numRows;
        const rs = idx.rowStart(bi);
        let from = 0;
        let to = n;
        let hitStart = false;
        let hitEnd = false;
        if (p.ranged && idx.firstTime(bi) < p.start) {
          from = bound(timeValues(batch), startT, false);
          hitStart = from > 0;
        }
        if (p.ranged && idx.lastTime(bi) > p.end) {
          to = bound(timeValues(batch), endT, true);
          hitEnd = true;
        }
        from = Math.max(from, minRow - rs);
        to = Math.min(to, maxRow - rs + 1);
        if (from < to) {
          if (schemaId === null) {
            schemaId = seg.schemaId;
          } else if (seg.schemaId !== schemaId) {
            // Only one schema per page, like the original; the cursor resumes at the new schema.
            schemaChanged = true;
            next = { seq: seg.seq, row: rs + (asc ? from : to - 1), order: p.order };
            stopped = true;
            break;
          }
          const perRow = idx.length(bi) / n;
          let fit = Math.floor(bytesLeft / perRow);
          if (rowsOut === 0) fit = Math.max(fit, 1);
          const avail = to - from;
          const room = p.limit - rowsOut;
          const take = Math.min(avail, room, fit);
          const piece = asc ? batch.slice(from, from + take) : batch.slice(to - take, to);
          if (take > 0) pieces.push(asc ? piece : reverseRecordBatch(piece));
          rowsOut += take;
          bytesLeft -= take * perRow;
          if (take < avail) {
            // Cut inside this batch: by the byte cap when it, not the limit, was the tighter bound.
            truncated = fit < Math.min(avail, room);
            next = { seq: seg.seq, row: asc ? rs + from + take : rs + to - take - 1, order: p.order };
            stopped = true;
            break;
          }
        }
        // Time is non-decreasing along a pipeline: past the range's far end nothing else matches.
        const endHere = asc ? hitEnd : hitStart;
        if (rowsOut >= p.limit) {
          // Exactly full: point just past this batch's rows; the next page finds out whether any remain.
          const more = !endHere && ((asc ? bi < bLast : bi > bFirst) || si < segments.length - 1);
          next = more ? { seq: seg.seq, row: asc ? rs + to : rs + from - 1, order: p.order } : null;
          stopped = true;
          break;
        }
        if (endHere) {
          segDone = true;
          break;
        }
      }
      b = asc ? w + 1 : w - 1;
    }
  }
  const table = pieces.length === 0 ? new Table() : new Table(pieces);
  return {
    table,
    rows: rowsOut,
    schemaId,
    truncated,
    schemaChanged,
    nextCursor: next === null ? null : encodeLogCursor(next),
  };
}
