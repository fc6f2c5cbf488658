import { Table } from 'apache-arrow';
import type { RecordBatch } from 'apache-arrow';
import { encodeLogCursor } from './log-cursor.js';
import type { LogCursor } from './log-cursor.js';
import { reverseRecordBatch } from './reverse-record-batch.js';
import { timeValues } from './segment-file.js';

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

/** Where a stored batch sits, as a log store knows it without reading it. */
export interface StoredBatchPosition {
  /** The sequence number cursors name (a segment's, or a stored batch's). */
  seq: number;
  /** Row of `seq` where the batch starts (0 when `seq` names the batch itself). */
  rowStart: number;
  schemaId: string;
  /** `time` of the batch's first and last row, epoch ms. */
  firstTime: number;
  lastTime: number;
  /** Bytes of the stored batch (its Arrow message): the page's byte cap counts these per row. */
  bytes: number;
}

/**
 * What {@link LogPageBuilder.offer} found: `next` (offer the following batch), `range-end` (the
 * query's range ends in this batch: the page is complete), `stopped` (the page is complete and
 * its cursor set), `full` (exactly full: say with {@link LogPageBuilder.full} whether rows may follow).
 */
export type OfferResult = 'next' | 'range-end' | 'stopped' | 'full';

/** Fraction of a row by which a page may seem to fit one more row (floating-point rounding). */
const FIT_TOLERANCE_ROWS = 1e-9;

/** First index in `t` whose value is ≥ `x` (`gt`: > `x`). */
export function searchTimes(t: BigInt64Array, x: bigint, gt: boolean): number {
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

/**
 * Builds one page of a log query from stored batches offered in the query's order: cuts them to
 * the range, the cursor, the limit and the byte cap, keeps one schema per page, and makes the
 * next page's cursor. Every log store answers with it, so pages mean the same everywhere.
 */
export class LogPageBuilder {
  readonly #p: LogQueryPlan;
  readonly #asc: boolean;
  readonly #startT: bigint;
  readonly #endT: bigint;
  readonly #pieces: RecordBatch[] = [];
  #rowsOut = 0;
  #bytesLeft: number;
  #schemaId: string | null = null;
  #truncated = false;
  #schemaChanged = false;
  #next: LogCursor | null = null;
  /** The cursor an exactly full page gets when rows may follow. */
  #ifMore: LogCursor | null = null;

  constructor(plan: LogQueryPlan) {
    this.#p = plan;
    this.#asc = plan.order === 'asc';
    this.#startT = BigInt(Math.ceil(plan.start));
    this.#endT = BigInt(Math.floor(plan.end));
    this.#bytesLeft = plan.maxBytes;
  }

  /** Rows the page still takes. */
  get rowsWanted(): number {
    return this.#p.limit - this.#rowsOut;
  }

  /** Bytes the page still takes. */
  get bytesLeft(): number {
    return this.#bytesLeft;
  }

  /**
   * Offers a batch, with the rows of `at.seq` the cursor still allows (`[minRow, maxRow]`, in
   * `seq` row numbers).
   */
  offer(batch: RecordBatch, at: StoredBatchPosition, minRow: number, maxRow: number): OfferResult {
    const p = this.#p;
    const asc = this.#asc;
    const n = batch.numRows;
    const rs = at.rowStart;
    let from = 0;
    let to = n;
    let hitStart = false;
    let hitEnd = false;
    if (p.ranged && at.firstTime < p.start) {
      from = searchTimes(timeValues(batch), this.#startT, false);
      hitStart = from > 0;
    }
    if (p.ranged && at.lastTime > p.end) {
      to = searchTimes(timeValues(batch), this.#endT, true);
      hitEnd = true;
    }
    from = Math.max(from, minRow - rs);
    to = Math.min(to, maxRow - rs + 1);
    if (from < to) {
      if (this.#schemaId === null) {
        this.#schemaId = at.schemaId;
      } else if (at.schemaId !== this.#schemaId) {
        // Only one schema per page, like the original; the cursor resumes at the new schema.
        this.#schemaChanged = true;
        this.#next = { seq: at.seq, row: rs + (asc ? from : to - 1), order: p.order };
        return 'stopped';
      }
      const perRow = at.bytes / n;
      // Never below zero: a first row bigger than the cap leaves the budget negative, and a
      // negative take would move the cursor back onto rows already returned. The tolerance
      // absorbs the rounding of `rows × (bytes / rows)` on batches cut by the range or cursor.
      let fit = Math.max(0, Math.floor(this.#bytesLeft / perRow + FIT_TOLERANCE_ROWS));
      if (this.#rowsOut === 0) fit = Math.max(fit, 1);
      const avail = to - from;
      const room = p.limit - this.#rowsOut;
      const take = Math.min(avail, room, fit);
      const piece = asc ? batch.slice(from, from + take) : batch.slice(to - take, to);
      if (take > 0) this.#pieces.push(asc ? piece : reverseRecordBatch(piece));
      this.#rowsOut += take;
      // A whole batch costs its stored bytes exactly, so a cap reached at a batch's end is exact.
      this.#bytesLeft -= take === n ? at.bytes : take * perRow;
      if (take < avail) {
        // Cut inside this batch: by the byte cap when it, not the limit, was the tighter bound.
        this.#truncated = fit < Math.min(avail, room);
        this.#next = { seq: at.seq, row: asc ? rs + from + take : rs + to - take - 1, order: p.order };
        return 'stopped';
      }
    }
    // Time is non-decreasing along a pipeline: past the range's far end nothing else matches.
    const endHere = asc ? hitEnd : hitStart;
    if (this.#rowsOut >= p.limit) {
      if (endHere) return 'stopped';
      // Exactly full: point just past this batch's rows; the next page finds out whether any remain.
      this.#ifMore = { seq: at.seq, row: asc ? rs + to : rs + from - 1, order: p.order };
      return 'full';
    }
    return endHere ? 'range-end' : 'next';
  }

  /** After `full`: whether rows may follow (the page then gets a cursor past its last row). */
  full(more: boolean): void {
    this.#next = more ? this.#ifMore : null;
  }

  /** The page. */
  page(): LogPage {
    return {
      table: this.#pieces.length === 0 ? new Table() : new Table(this.#pieces),
      rows: this.#rowsOut,
      schemaId: this.#schemaId,
      truncated: this.#truncated,
      schemaChanged: this.#schemaChanged,
      nextCursor: this.#next === null ? null : encodeLogCursor(this.#next),
    };
  }
}
