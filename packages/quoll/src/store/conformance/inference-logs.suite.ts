import {
  Bool,
  Field,
  FixedSizeList,
  Float32,
  Table,
  makeData,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { InferenceResult } from '../../inference/inference-result.js';
import type { RecordBatch } from 'apache-arrow';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeLogPage, isLogRowSource, logPageRecords } from '../../logs/index.js';
import type { InferenceLogs } from '../../logs/index.js';
import {
  LOG_T0 as T0,
  appendLogRows as appendRows,
  idRange as range,
  inferenceLogRows as rows,
  logPageIds as ids,
  pageAllLogIds as pageAll,
} from './inference-log-rows.js';
import { recordsLogCases } from './records-log-cases.js';
import { BAD_LOG_APPENDS } from './bad-log-rows.js';

/**
 * Opens a fresh, empty inference log on the backend under test. `smallPieces`: store rows in
 * small pieces (segments of a few dozen rows on files), so that pages cross them.
 * `queueCapacityRows`: the append queue's bound. `close` stops the log and frees its storage.
 */
export type MakeInferenceLogs = (options: {
  smallPieces?: boolean;
  queueCapacityRows?: number;
}) => Promise<{ logs: InferenceLogs; close: () => Promise<void> }>;

/**
 * The {@link InferenceLogs} contract (paging, ordering, time ranges, byte caps, schema changes,
 * read-your-writes, backpressure, stop), run against one backend: segment files indexed in
 * SQLite, or record batches in PostgreSQL.
 */
export function inferenceLogsSuite(backend: string, make: MakeInferenceLogs): void {
  describe(`${backend}: InferenceLogs`, () => {
    const closers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const close of closers.splice(0)) await close();
    });

    async function open(options: Parameters<MakeInferenceLogs>[0] = {}): Promise<InferenceLogs> {
      const { logs, close } = await make(options);
      closers.push(close);
      return logs;
    }

    it('stores the rows of a JSON result written straight into the staging as its Arrow table, byte for byte', async () => {
      const store = await open();
      const cases = recordsLogCases();
      for (const [i, c] of cases.entries()) {
        // Pipeline 10 + i by the table (the old path), 30 + i by `logRows()`; twice each, so
        // the second append merges with the first.
        for (let k = 0; k < 2; k++) {
          await store.append(10 + i, c.make().toLogTable());
          const rows = c.make().logRows();
          expect(isLogRowSource(rows), c.name).toBe(true);
          await store.append(30 + i, rows);
        }
      }
      await store.flush();
      for (const [i, c] of cases.entries()) {
        const byTable = await store.query(10 + i, { limit: 2000 });
        const bySource = await store.query(30 + i, { limit: 2000 });
        const expected = c.make().toLogTable();
        expect(bySource.rows, c.name).toBe(expected.numRows * 2);
        expect(bySource.schemaId, c.name).toBe(byTable.schemaId);
        expect(
          Buffer.from(tableToIPC(bySource.table, 'stream')).equals(
            Buffer.from(tableToIPC(byTable.table, 'stream')),
          ),
          c.name,
        ).toBe(true);
        expect(encodeLogPage(bySource, 'json'), c.name).toEqual(encodeLogPage(byTable, 'json'));
      }
    });

    it('stores the Bool in.* columns of an Arrow input (flat and FixedSizeList<Bool>, two batches) and reads them back in both orders', async () => {
      // Arrow Bool request columns feed bool inputs and are echoed and logged as Bool: a
      // bitmap, a bit per value, which every backend must store and read back as it came.
      const store = await open();
      const flagsOf = (rows: number, seed: number): boolean[] =>
        Array.from({ length: rows }, (_, i) => ((i * 7 + seed) >> 1) % 3 === 0);
      const pairs = new FixedSizeList(2, new Field('item', new Bool(), false));
      const batch = (rows: number, seed: number): Table =>
        new Table({
          flag: vectorFromArray(flagsOf(rows, seed), new Bool()),
          pair: vectorFromArray(
            flagsOf(rows, seed + 1).map((flag, i) => [flag, i % 3 === 0]),
            pairs,
          ),
        });
      const table = new Table([...batch(13, 1).batches, ...batch(21, 2).batches]);
      const result = new InferenceResult(
        { kind: 'arrow', table },
        ['flag', 'pair'],
        [{ name: 'y', type: 'float32', dims: [34, 1], data: Float32Array.from({ length: 34 }, (_, i) => i) }],
        34,
        T0,
      );
      await store.append(1, result.logRows());
      await store.flush();
      const expected = Array.from({ length: 34 }, (_, row) => ({
        flag: table.getChild('flag')!.get(row) as boolean,
        pair: Array.from(table.getChild('pair')!.get(row) as Iterable<boolean>),
        y: [row],
      }));
      for (const order of ['asc', 'desc'] as const) {
        const page = await store.query(1, { start: T0 - 1, end: T0 + 1, order, limit: 100 });
        expect(page.rows, order).toBe(34);
        const records = JSON.parse(encodeLogPage(page, 'json')) as Record<string, unknown>[];
        const back = records.map((record) => ({
          flag: record['in.flag'],
          pair: record['in.pair'],
          y: record['out.y'],
        }));
        expect(String(page.table.schema.fields.find((f) => f.name === 'in.flag')?.type), order).toBe('Bool');
        expect(back, order).toEqual(order === 'asc' ? expected : [...expected].reverse());
      }
    });

    it('query() without a range returns the newest 100, newest first', async () => {
      const store = await open();
      await appendRows(store, 1, 0, 250);
      const page = await store.query(1);
      expect(page.rows).toBe(100);
      expect(ids(page)).toEqual(range(150, 100).reverse());
      const times = page.table.getChild('time')?.toArray() as unknown as ArrayLike<number>;
      expect(Number(times[0])).toBe(T0 + 2490);
      expect(page.truncated).toBe(false);
      expect(page.schemaChanged).toBe(false);
      expect(page.nextCursor).not.toBeNull();
    });

    it('query({ limit }) without a range changes the count', async () => {
      const store = await open();
      await appendRows(store, 1, 0, 30);
      expect(ids(await store.query(1, { limit: 7 }))).toEqual([29, 28, 27, 26, 25, 24, 23]);
      expect(ids(await store.query(1, { limit: 1000 }))).toEqual(range(0, 30).reverse());
    });

    it('a time range includes rows at both ends and returns them oldest first', async () => {
      const store = await open({ smallPieces: true });
      await appendRows(store, 1, 0, 200, 25);
      const page = await store.query(1, { start: T0 + 500, end: T0 + 1500 });
      expect(ids(page)).toEqual(range(50, 101));
      expect(page.nextCursor).toBeNull();
      // Boundaries falling between rows.
      expect(ids(await store.query(1, { start: T0 + 505, end: T0 + 525 }))).toEqual([51, 52]);
      // Empty window: no rows, no columns.
      const empty = await store.query(1, { start: T0 + 5000, end: T0 + 6000 });
      expect(empty.rows).toBe(0);
      expect(empty.table.numCols).toBe(0);
      expect(empty.nextCursor).toBeNull();
    });

    it('a range with a limit takes the oldest rows; order desc takes the newest, newest first', async () => {
      const store = await open({ smallPieces: true });
      await appendRows(store, 1, 0, 200, 25);
      expect(ids(await store.query(1, { start: T0 + 500, end: T0 + 1500, limit: 5 }))).toEqual([
        50, 51, 52, 53, 54,
      ]);
      expect(ids(await store.query(1, { start: T0 + 500, end: T0 + 1500, limit: 5, order: 'desc' }))).toEqual(
        [150, 149, 148, 147, 146],
      );
      expect(ids(await store.query(1, { start: T0, end: T0 + 30, order: 'desc' }))).toEqual([3, 2, 1, 0]);
    });

    it('rows of one pipeline never show up in another', async () => {
      const store = await open();
      await appendRows(store, 1, 0, 10);
      await appendRows(store, 2, 1000, 5);
      expect(ids(await store.query(2))).toEqual([1004, 1003, 1002, 1001, 1000]);
      expect((await store.query(3)).rows).toBe(0);
      expect(await store.storedBytes(3)).toBe(0);
      expect(await store.storedBytes()).toBeGreaterThanOrEqual(
        (await store.storedBytes(1)) + (await store.storedBytes(2)),
      );
    });

    it('cuts a page at the byte cap, says so, and the cursor resumes right after the cut', async () => {
      const store = await open();
      await appendRows(store, 1, 0, 100, 100);
      const full = await store.query(1, { start: T0, end: T0 + 10_000 });
      expect(full.rows).toBe(100);
      expect(full.truncated).toBe(false);
      const cut = await store.query(1, { start: T0, end: T0 + 10_000, maxBytes: 1000 });
      expect(cut.truncated).toBe(true);
      expect(cut.rows).toBeGreaterThan(0);
      expect(cut.rows).toBeLessThan(100);
      const rest = await store.query(1, { start: T0, end: T0 + 10_000, cursor: cut.nextCursor ?? '' });
      expect([...ids(cut), ...ids(rest)]).toEqual(range(0, 100));
      // A cap below one row still returns one row, so paging always moves on.
      expect((await store.query(1, { maxBytes: 1 })).rows).toBe(1);
    });

    /**
     * Follows a query's cursor to the end, recording each page's ids and flags; fails (instead of
     * looping) once it has read more pages than there are rows.
     */
    async function pageWithFlags(
      store: InferenceLogs,
      q: Parameters<InferenceLogs['query']>[1],
      rowCount: number,
    ): Promise<{ ids: number[]; truncated: boolean; last: boolean }[]> {
      const pages: { ids: number[]; truncated: boolean; last: boolean }[] = [];
      let cursor: string | undefined;
      while (pages.length <= rowCount) {
        const page = await store.query(1, { ...q, ...(cursor === undefined ? {} : { cursor }) });
        pages.push({ ids: ids(page), truncated: page.truncated, last: page.nextCursor === null });
        if (page.nextCursor === null) return pages;
        cursor = page.nextCursor;
      }
      throw new Error(`paging did not end after ${pages.length} pages: ${JSON.stringify(pages)}`);
    }

    /** Four stored batches of three rows each (ids 0–11, time T0 + id × 10), each appended and flushed alone. */
    async function fourBatchesOfThree(store: InferenceLogs): Promise<void> {
      for (let b = 0; b < 4; b++) await appendRows(store, 1, b * 3, 3, 3);
    }

    const PAGINGS = [
      { name: 'a time range, oldest first', q: { start: T0, end: T0 + 10_000 }, order: range(0, 12) },
      { name: 'no range, newest first', q: { limit: 1000 }, order: range(0, 12).reverse() },
      {
        name: 'a time range, newest first',
        q: { start: T0, end: T0 + 10_000, order: 'desc' as const },
        order: range(0, 12).reverse(),
      },
    ];

    for (const { name, q, order } of PAGINGS) {
      it(`a cap below one row pages one row at a time, also across a stored batch's last row, to the end (${name})`, async () => {
        const store = await open();
        await fourBatchesOfThree(store);
        const pages = await pageWithFlags(store, { ...q, maxBytes: 1 }, 12);
        expect(pages.map((p) => p.ids)).toEqual(order.map((id) => [id]));
        // Every page but the last left rows out because of the cap; the last left none out.
        expect(pages.map((p) => p.truncated)).toEqual(order.map((_, i) => i < order.length - 1));
      });

      it(`a cap reached exactly at a stored batch's end gives a cursor to the next batch (${name})`, async () => {
        const store = await open();
        await appendRows(store, 2, 0, 3, 3);
        const one = await store.storedBytes(2);
        await appendRows(store, 2, 3, 3, 3);
        const batchBytes = (await store.storedBytes(2)) - one;
        expect(batchBytes).toBeGreaterThan(0);
        await fourBatchesOfThree(store);
        for (const batches of [1, 2]) {
          const pages = await pageWithFlags(store, { ...q, maxBytes: batches * batchBytes }, 12);
          expect(
            pages.flatMap((p) => p.ids),
            `${batches} batch(es) a page`,
          ).toEqual(order);
          expect(
            pages.slice(0, -1).every((p) => p.ids.length === batches * 3 && p.truncated),
            `${batches} batch(es) a page: ${JSON.stringify(pages)}`,
          ).toBe(true);
        }
      });
    }

    it('returns only the first schema a page meets, says so, and the next page carries on in the other', async () => {
      const store = await open();
      for (const i of range(0, 3)) await store.append(1, rows([i], [T0 + i], 'json'));
      await store.append(1, rows([3, 4], [T0 + 3, T0 + 4], 'arrow'));
      await store.flush();

      const newest = await store.query(1, { limit: 10 });
      expect(ids(newest)).toEqual([4, 3]);
      expect(newest.schemaChanged).toBe(true);
      expect(String(newest.table.schema.fields[1]?.type)).toContain('FixedSizeList');
      const older = await store.query(1, { limit: 10, cursor: newest.nextCursor ?? '' });
      expect(ids(older)).toEqual([2, 1, 0]);
      // Variable-length list columns come back reversed row by row too.
      expect(logPageRecords(older.table).map((r) => r['in.tensor'])).toEqual([
        [2, 7, 8],
        [1, 7, 8],
        [0, 7, 8],
      ]);
      expect(older.schemaChanged).toBe(false);
      expect(String(older.table.schema.fields[1]?.type)).toContain('List');
      expect(older.schemaId).not.toBe(newest.schemaId);

      const oldestFirst = await store.query(1, { start: T0, end: T0 + 10 });
      expect(ids(oldestFirst)).toEqual([0, 1, 2]);
      expect(oldestFirst.schemaChanged).toBe(true);
    });

    it('cursor paging returns every row exactly once, across stored pieces, in both orders', async () => {
      const store = await open({ smallPieces: true });
      await appendRows(store, 1, 0, 500, 30);
      const asc = await pageAll(store, 1, { start: T0 + 15, end: T0 + 4_000, limit: 37 });
      expect(asc.flat()).toEqual(range(2, 399));
      expect(asc.slice(0, -1).every((p) => p.length === 37)).toBe(true);
      const desc = await pageAll(store, 1, { limit: 41 });
      expect(desc.flat()).toEqual(range(0, 500).reverse());
      const descRange = await pageAll(store, 1, {
        start: T0 + 100,
        end: T0 + 1000,
        order: 'desc',
        limit: 13,
      });
      expect(descRange.flat()).toEqual(range(10, 91).reverse());
    });

    it('sees rows appended after a flush (read-your-writes)', async () => {
      const store = await open();
      await appendRows(store, 1, 0, 10);
      expect((await store.query(1)).rows).toBe(10);
      await appendRows(store, 1, 10, 10);
      expect(ids(await store.query(1, { limit: 3 }))).toEqual([19, 18, 17]);
    });

    it('keeps time non-decreasing when a batch arrives with an earlier time', async () => {
      const store = await open();
      await store.append(1, rows([0, 1], [T0 + 100, T0 + 200]));
      await store.append(1, rows([2, 3], [T0 + 150, T0 + 120]));
      await store.flush();
      const page = await store.query(1, { start: T0, end: T0 + 1000 });
      expect(ids(page)).toEqual([0, 1, 2, 3]);
      expect(Array.from(page.table.getChild('time')?.toArray() as ArrayLike<number>, Number)).toEqual([
        T0 + 100,
        T0 + 200,
        T0 + 200,
        T0 + 200,
      ]);
    });

    it('refuses bad queries with a clear code', async () => {
      const store = await open();
      await expect(store.query(1, { start: T0 })).rejects.toMatchObject({ code: 'invalid_time_range' });
      await expect(store.query(1, { end: T0 })).rejects.toMatchObject({ code: 'invalid_time_range' });
      await expect(store.query(1, { start: T0 + 1, end: T0 })).rejects.toMatchObject({
        code: 'invalid_time_range',
      });
      await expect(store.query(1, { limit: 0 })).rejects.toMatchObject({ code: 'invalid_request' });
      await expect(store.query(1, { cursor: 'nonsense' })).rejects.toMatchObject({ code: 'invalid_request' });
      await appendRows(store, 1, 0, 5);
      const page = await store.query(1, { limit: 2 });
      await expect(store.query(1, { order: 'asc', cursor: page.nextCursor ?? '' })).rejects.toMatchObject({
        code: 'invalid_request',
      });
    });

    it('encodes a page as an Arrow stream or as JSON records with time in epoch ms', async () => {
      const store = await open();
      await appendRows(store, 1, 0, 3);
      const page = await store.query(1, { limit: 2 });
      const back = tableFromIPC(encodeLogPage(page, 'arrow-stream'));
      expect(back.numRows).toBe(2);
      const records = JSON.parse(encodeLogPage(page, 'json')) as unknown[];
      expect(records[0]).toEqual({
        time: T0 + 20,
        'in.tensor': [2, 2.5, 1, 2],
        'out.variable': [2],
        check_failures: 0,
      });
      expect(logPageRecords(page.table)).toEqual(records);
    });

    it('refuses a batch without a Timestamp(ms) time column and stores nothing', async () => {
      const store = await open();
      const bad = new Table({ x: makeData({ type: new Float32(), length: 1, data: new Float32Array(1) }) });
      await expect(store.append(1, bad)).rejects.toMatchObject({ code: 'invalid_request' });
      await store.flush();
      expect((await store.query(1)).rows).toBe(0);
      expect(await store.storedBytes(1)).toBe(0);
    });

    for (const bad of BAD_LOG_APPENDS) {
      it(`refuses ${bad.name} alone with log_rows_refused; the appends around it are stored and the writer goes on`, async () => {
        const store = await open();
        const good = (from: number): RecordBatch => {
          const ids5 = range(from, 5);
          return rows(
            ids5,
            ids5.map((id) => T0 + id * 10),
          );
        };
        await store.append(1, good(0));
        // Flushed: the bad append starts the staging's next run, and the good one after it
        // comes to it (the same schema).
        await store.flush();
        const refused = store.append(1, bad.make(good(100))).then(
          () => null,
          (err: unknown) => err,
        );
        await store.append(1, good(5));
        await store.flush();
        await store.append(1, good(10));
        await store.flush();
        expect(ids(await store.query(1, { start: T0, end: T0 + 10_000, limit: 1000 }))).toEqual(range(0, 15));
        expect(store.state).toBe('open');
        expect(await refused).toMatchObject({ code: 'log_rows_refused' });
        expect(store.refusedAppends).toBe(1);
      });
    }

    it('backpressure: with a full queue append waits, and no row is lost', async () => {
      const store = await open({ queueCapacityRows: 10 });
      let settled = 0;
      const appends = range(0, 100).map((i) => {
        const ids5 = range(i * 5, 5);
        const p = store.append(
          1,
          rows(
            ids5,
            ids5.map((id) => T0 + id),
          ),
        );
        void p.then(() => settled++);
        return p;
      });
      await Promise.resolve();
      expect(store.queuedRows).toBeLessThanOrEqual(10);
      // The writer needs I/O before it can take more, so most appends are still waiting.
      expect(settled).toBeLessThan(50);
      await Promise.all(appends);
      await store.flush();
      const all = await pageAll(store, 1, { start: T0, end: T0 + 1000, limit: 123 });
      expect(all.flat()).toEqual(range(0, 500));
    });

    it('stop() stores every queued row, then refuses appends with shutting_down; stop twice is safe', async () => {
      const store = await open();
      const appends = range(0, 20).map((i) => store.append(1, rows([i], [T0 + i])));
      await store.stop();
      await Promise.all(appends);
      expect(store.state).toBe('stopped');
      expect(store.queuedRows).toBe(0);
      await expect(store.append(1, rows([99], [T0 + 99]))).rejects.toMatchObject({ code: 'shutting_down' });
      await store.stop();
      expect(await store.storedBytes(1)).toBeGreaterThan(0);
    });
  });
}
