import { LOG_DEFAULTS } from '@quoll/client/wire';
import type { RecordBatch } from 'apache-arrow';
import { ApiError } from '../errors/index.js';
import { decodeLogCursor } from './log-cursor.js';
import type { LogSegmentIndex, LogSegmentRecord } from './log-segment-index.js';
import { LogPageBuilder } from './log-page-builder.js';
import type { LogPage, LogQueryPlan } from './log-page-builder.js';
import { readBatchRange } from './segment-file.js';
import type { SegmentMirror } from './segment-mirror.js';
import type { SegmentReadCache, SegmentView } from './segment-read-cache.js';

export type { LogPage, LogQueryPlan } from './log-page-builder.js';

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

/** What a query needs from the store. */
export interface LogReadContext {
  index: LogSegmentIndex;
  cache: SegmentReadCache;
  /** The segment the writer is appending to for a pipeline, if any. */
  openSegment(pipelineId: number): SegmentMirror | undefined;
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
  if (open !== undefined && open.view.index.count > 0) {
    const u = open.update();
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
  const page = new LogPageBuilder(p);
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
      while (planRows < page.rowsWanted && planBytes < Math.min(page.bytesLeft, MAX_WINDOW_BYTES)) {
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
        const result = page.offer(
          batches[bi - lo] as RecordBatch,
          {
            seq: seg.seq,
            rowStart: idx.rowStart(bi),
            schemaId: seg.schemaId,
            firstTime: idx.firstTime(bi),
            lastTime: idx.lastTime(bi),
            bytes: idx.length(bi),
          },
          minRow,
          maxRow,
        );
        if (result === 'full') page.full((asc ? bi < bLast : bi > bFirst) || si < segments.length - 1);
        if (result === 'full' || result === 'stopped') {
          stopped = true;
          break;
        }
        if (result === 'range-end') {
          segDone = true;
          break;
        }
      }
      b = asc ? w + 1 : w - 1;
    }
  }
  return page.page();
}
