import { describe, expect, it } from 'vitest';
import { LOG_T0, idRange, inferenceLogRows, logPageIds } from '../store/conformance/inference-log-rows.js';
import { decodeLogCursor } from './log-cursor.js';
import { LogPageBuilder } from './log-page-builder.js';
import type { LogQueryPlan, StoredBatchPosition } from './log-page-builder.js';

/** Stored batch `k` of `rows` rows and `bytes` bytes, in one segment (seq 1), ids from `k × rows`. */
function storedBatch(k: number, rows: number, bytes: number) {
  const ids = idRange(k * rows, rows);
  const at: StoredBatchPosition = {
    seq: 1,
    rowStart: k * rows,
    schemaId: 's',
    firstTime: LOG_T0 + k * rows * 10,
    lastTime: LOG_T0 + (k * rows + rows - 1) * 10,
    bytes,
  };
  return {
    batch: inferenceLogRows(
      ids,
      ids.map((id) => LOG_T0 + id * 10),
    ),
    at,
  };
}

const plan = (maxBytes: number, order: 'asc' | 'desc' = 'asc'): LogQueryPlan => ({
  ranged: false,
  start: 0,
  end: 0,
  order,
  limit: Number.POSITIVE_INFINITY,
  maxBytes,
  cursor: null,
});

describe('LogPageBuilder', () => {
  it('a cap reached exactly at a batch end cuts before the next batch, even when rows × (bytes / rows) rounds above bytes', () => {
    // 7 rows of 29 bytes: 7 × (29 / 7) is a hair over 29 in floating point, so two whole
    // batches used to leave -1.4e-14 bytes, a fit of -1 row, and a cursor one row back.
    const page = new LogPageBuilder(plan(58));
    for (const k of [0, 1]) {
      const { batch, at } = storedBatch(k, 7, 29);
      expect(page.offer(batch, at, 0, Number.POSITIVE_INFINITY)).toBe('next');
    }
    const { batch, at } = storedBatch(2, 7, 29);
    expect(page.offer(batch, at, 0, Number.POSITIVE_INFINITY)).toBe('stopped');
    const out = page.page();
    expect(out.rows).toBe(14);
    expect(logPageIds(out)).toEqual(idRange(0, 14));
    expect(out.truncated).toBe(true);
    expect(decodeLogCursor(out.nextCursor ?? '', 'asc')).toEqual({ seq: 1, row: 14, order: 'asc' });
  });

  it('a first row bigger than the cap is returned alone, and the next batch is cut before its first row', () => {
    for (const order of ['asc', 'desc'] as const) {
      const page = new LogPageBuilder(plan(10, order));
      const [first, second] = order === 'asc' ? [0, 1] : [1, 0];
      // The cursor allows only one row of the first batch: its last row in the query's order.
      const a = storedBatch(first, 3, 300);
      const lastRow = order === 'asc' ? a.at.rowStart + 2 : a.at.rowStart;
      expect(
        page.offer(a.batch, a.at, order === 'asc' ? lastRow : 0, order === 'asc' ? 1e9 : lastRow),
        order,
      ).toBe('next');
      const b = storedBatch(second, 3, 300);
      expect(page.offer(b.batch, b.at, 0, Number.POSITIVE_INFINITY), order).toBe('stopped');
      const out = page.page();
      expect(out.rows, order).toBe(1);
      expect(logPageIds(out), order).toEqual([lastRow]);
      expect(out.truncated, order).toBe(true);
      const next = order === 'asc' ? b.at.rowStart : b.at.rowStart + 2;
      expect(decodeLogCursor(out.nextCursor ?? '', order), order).toEqual({ seq: 1, row: next, order });
    }
  });
});
