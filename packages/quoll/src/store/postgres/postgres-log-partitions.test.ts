import { cpSync, mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { ArrowMessageEncoder, InferenceLogStore, schemaIdOf } from '../../logs/index.js';
import type { InferenceLogs, LogQuery } from '../../logs/index.js';
import { openSqliteDatabase } from '../sqlite/sqlite-database.js';
import type { SqliteHandle } from '../sqlite/sqlite-database.js';
import { SqliteLogSegmentIndex } from '../sqlite/sqlite-log-segment-index.js';
import {
  bigLogBatch as big,
  LOG_T0 as T0,
  idRange as range,
  logPageIds,
  logRowsFrom,
  pageAllLogIds,
} from '../conformance/inference-log-rows.js';
import { POSTGRES_MIGRATIONS_DIR, PostgresDatabase } from './postgres-database.js';
import { PostgresInferenceLogStore } from './postgres-inference-log-store.js';
import {
  detachEmptiedPartitions,
  PostgresLogBatchWriter,
  TOTAL_CAP_LOCK_CLASS,
} from './postgres-log-batch-writer.js';

// The inference log of a cluster in partitions (migration 0017): retention at the cap, reads
// across partitions, the locks of a page read, and the move of a log stored before 0017.

const { run: runPostgresTests, skipReason } = await postgresAvailability();

const small = (first: number, n: number, width = 2): RecordBatch => logRowsFrom(first, n, { width });

/** A promise and the function that settles it (Promise.withResolvers, which Node 20 lacks). */
function latch<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open: (value: T) => void = () => undefined;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

describe.skipIf(!runPostgresTests)(
  `inference log partitions in PostgreSQL (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    let dir: string;
    let schemaNo = 0;
    const dbs: PostgresDatabase[] = [];
    const stores: InferenceLogs[] = [];
    let sqlite: SqliteHandle | null = null;

    beforeAll(async () => {
      database = await createTestDatabase();
      dir = mkdtempSync(join(tmpdir(), 'quoll-pg-parts-'));
    });
    afterAll(async () => {
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    });
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.stop();
      for (const d of dbs.splice(0)) await d.close();
      sqlite?.close();
      sqlite = null;
    });

    async function open(schema: string, migrationsDirectory?: string): Promise<PostgresDatabase> {
      const db = await PostgresDatabase.open({
        url: database.url,
        schema,
        poolSize: 2,
        ...(migrationsDirectory === undefined ? {} : { migrationsDirectory }),
      });
      dbs.push(db);
      return db;
    }

    /** Rows, bytes and the newest seq as the heads count them, and as stored: equal. */
    async function expectHeadsConsistent(db: PostgresDatabase): Promise<void> {
      const heads = await db.rows<{ pipeline_id: number; head: string; stored: string }>(
        // oldest_at: when the oldest stored batch was written (total retention orders by it).
        `SELECT h.pipeline_id, concat_ws(' ', h.rows, h.bytes, h.first_seq, h.next_seq - 1, h.oldest_at) AS head,
                concat_ws(' ', coalesce(sum(b.rows), 0), coalesce(sum(b.bytes), 0), min(b.seq), max(b.seq),
                          (array_agg(b.created_at ORDER BY b.seq))[1]) AS stored
           FROM inference_log_heads h LEFT JOIN inference_log_batches b USING (pipeline_id)
          GROUP BY h.pipeline_id, h.rows, h.bytes, h.first_seq, h.next_seq, h.oldest_at ORDER BY h.pipeline_id`,
      );
      expect(heads.length).toBeGreaterThan(0);
      for (const h of heads) expect(h.stored, `pipeline ${h.pipeline_id}`).toBe(h.head);
    }

    it('at its cap, a log drops its oldest partition whole: nothing deleted row by row, no vacuum due, at least 3/4 of the cap kept', async () => {
      const db = await open(`parts${++schemaNo}`);
      const cap = 16 * 1024 * 1024;
      const w = new PostgresLogBatchWriter('w', { maxBytesPerPipeline: cap, maxBytesTotal: 1e12 });
      // 300 batches of 88 kB: about 25 MB, the cap (about 190 batches) passed after 190.
      let deleted = 0;
      let least = Infinity;
      for (let k = 0; k < 300; k++) {
        const schemas = await db.transaction(async (sql) => {
          const s = await w.write(sql, 1, [big(k)]);
          const row = await sql.one<{ n: string }>(
            `SELECT coalesce(sum(pg_stat_get_xact_tuples_deleted(c.oid)), 0)::text AS n
               FROM pg_class c WHERE c.relname LIKE 'inference_log_batches%' AND c.relkind = 'r'`,
          );
          deleted += Number(row?.n);
          return s;
        });
        w.committed(schemas);
        const head = await db.one<{ bytes: string }>('SELECT bytes::text FROM inference_log_heads');
        if (k >= 200) least = Math.min(least, Number(head?.bytes));
        expect(Number(head?.bytes)).toBeLessThanOrEqual(cap);
      }
      expect(deleted).toBe(0);
      expect(w.takeVacuumDue()).toBe(false);
      expect(least).toBeGreaterThanOrEqual((cap * 3) / 4);
      await expectHeadsConsistent(db);
      // The oldest kept batch is the first of a partition; the newest is kept.
      const parts = await db.rows<{ first: string; emptied: boolean }>(
        'SELECT first_seq::text AS first, emptied FROM inference_log_partitions WHERE pipeline_id = 1 ORDER BY first_seq',
      );
      const live = parts.filter((p) => !p.emptied);
      expect(parts.some((p) => p.emptied)).toBe(true);
      expect(live.length).toBeLessThanOrEqual(10);
      const kept = await db.one<{ min: string; max: string; n: string }>(
        'SELECT min(seq)::text AS min, max(seq)::text AS max, count(*)::text AS n FROM inference_log_batches WHERE pipeline_id = 1',
      );
      expect(kept?.min).toBe(live[0]?.first);
      expect(kept?.max).toBe('300');
      expect(Number(kept?.max) - Number(kept?.min) + 1).toBe(Number(kept?.n));
    });

    it("a drop at the cap holds no lock another pipeline's writes and reads wait for", async () => {
      const schema = `parts${++schemaNo}`;
      const db = await open(schema);
      const other = await open(schema);
      const w = new PostgresLogBatchWriter('w', {
        maxBytesPerPipeline: 16 * 1024 * 1024,
        maxBytesTotal: 1e12,
      });
      const w2 = new PostgresLogBatchWriter('w2', { maxBytesPerPipeline: 1e12, maxBytesTotal: 1e12 });
      w2.committed(await other.transaction((sql) => w2.write(sql, 2, [big(0)])));
      let checked = false;
      for (let k = 0; k < 300 && !checked; k++) {
        w.committed(
          await db.transaction(async (sql) => {
            const s = await w.write(sql, 1, [big(k)]);
            const emptied = await sql.one<{ n: string }>(
              'SELECT count(*)::text AS n FROM inference_log_partitions WHERE emptied',
            );
            if (Number(emptied?.n) === 0) return s;
            // The drop is done and not committed: another session stores and reads pipeline 2,
            // and reads pipeline 1's newest rows, each failing if it waits for a lock at all long.
            await other.transaction(async (tx) => {
              await tx.run("SET LOCAL lock_timeout = '2s'");
              w2.committed(await w2.write(tx, 2, [big(1000 + k)]));
              const read = await tx.one<{ n: string }>(
                'SELECT count(*)::text AS n FROM inference_log_batches WHERE pipeline_id = 2 AND seq >= 1 AND seq < 33',
              );
              expect(read?.n).toBe('2');
              const newest = await tx.one<{ n: string }>(
                'SELECT count(*)::text AS n FROM inference_log_batches WHERE pipeline_id = 1 AND seq = $1',
                [k + 1],
              );
              expect(newest?.n).toBe('0'); // not committed yet
            });
            checked = true;
            return s;
          }),
        );
      }
      expect(checked).toBe(true);
    });

    it('a store detaches and drops the partitions its retention emptied, beside its writes', async () => {
      const schema = `parts${++schemaNo}`;
      const db = await open(schema);
      const store = new PostgresInferenceLogStore(db, { nodeId: 'n', maxBytesPerPipeline: 8 * 1024 * 1024 });
      stores.push(store);
      for (let k = 0; k < 160; k++) {
        await store.append(3, big(k));
        await store.flush();
      }
      await store.stop();
      const listedNames = async (where = 'true'): Promise<string[]> =>
        (
          await db.rows<{ name: string }>(
            `SELECT name FROM inference_log_partitions WHERE ${where} ORDER BY name`,
          )
        ).map((r) => r.name);
      const attachedNames = async (): Promise<string[]> =>
        (
          await db.rows<{ name: string }>(
            `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'inference_log_batches'::regclass ORDER BY c.relname`,
          )
        ).map((r) => r.name);
      // A stop cancels the cleanup's statement under way (a detach, drop or unlist): what it
      // left is an emptied partition still listed, attached, detached (or pending) or dropped.
      const attachedAtStop = await attachedNames();
      const emptiedAtStop = await listedNames('emptied');
      // Every listed partition not attached is one the cleanup had begun (emptied).
      for (const n of await listedNames('NOT emptied')) expect(attachedAtStop).toContain(n);
      // The store's cleanups ran beside its writes: at most the partitions of the cleanup the
      // stop cut short (and one emptied after it) are left.
      expect(emptiedAtStop.length).toBeLessThanOrEqual(2);
      // The next cleanup (any node's) finishes it.
      const c = await db.pool.connect();
      try {
        await detachEmptiedPartitions((text, values) => c.query(text, values as unknown[]));
      } finally {
        c.release();
      }
      const listed = await listedNames();
      const attached = await attachedNames();
      expect(await listedNames('emptied')).toEqual([]);
      expect(attached).toEqual(listed);
      expect(attached.length).toBeLessThanOrEqual(10);
      const got = (await pageAllLogIds(store, 3, { order: 'asc', limit: 100_000 })).flat();
      expect(got.at(-1)).toBe(159_999);
      expect(got).toEqual(range(160_000 - got.length, got.length));
      await expectHeadsConsistent(db);
    });

    /** A log of pipeline 7 in both stores, in small batches each stored apart: about seven partitions in PostgreSQL. */
    async function spreadLog(): Promise<{
      pg: PostgresInferenceLogStore;
      file: InferenceLogStore;
      db: PostgresDatabase;
    }> {
      // One stored batch's bytes, to size the cap: 128 of them, so partitions of 16 batches.
      const probeDb = await open(`parts${++schemaNo}`);
      const probe = new PostgresLogBatchWriter('p', { maxBytesPerPipeline: 1e12, maxBytesTotal: 1e12 });
      probe.committed(await probeDb.transaction((sql) => probe.write(sql, 1, [small(0, 20)])));
      const one = Number(
        (await probeDb.one<{ bytes: string }>('SELECT bytes::text FROM inference_log_heads'))?.bytes,
      );
      const db = await open(`parts${++schemaNo}`);
      const pg = new PostgresInferenceLogStore(db, { nodeId: 'n', maxBytesPerPipeline: 128 * one });
      stores.push(pg);
      const home = mkdtempSync(join(dir, 'home-'));
      sqlite = openSqliteDatabase(join(home, 'quoll.db'));
      const file = await InferenceLogStore.open({
        dir: join(home, 'logs'),
        index: new SqliteLogSegmentIndex(sqlite),
        segmentMaxRows: 700,
      });
      stores.push(file);
      for (const store of [pg, file] as InferenceLogs[]) {
        for (let k = 0; k < 110; k++) {
          await store.append(7, small(k * 20, 20));
          await store.flush();
        }
      }
      return { pg, file, db };
    }

    it('reads across partition boundaries return every row once, as the embedded store does', async () => {
      const { pg, file, db } = await spreadLog();
      const parts = await db.rows(
        'SELECT name FROM inference_log_partitions WHERE pipeline_id = 7 AND NOT emptied',
      );
      expect(parts.length).toBeGreaterThanOrEqual(5);
      const queries: LogQuery[] = [
        {},
        { limit: 37 },
        { order: 'asc', limit: 41 },
        { order: 'asc', limit: 5000 },
        { start: T0 + 3_000, end: T0 + 18_000, limit: 53 },
        { start: T0 + 3_000, end: T0 + 18_000, order: 'desc', limit: 53 },
        { start: T0, end: T0 + 100_000, order: 'asc', limit: 29 },
      ];
      for (const q of queries) {
        const [want, got] = (await Promise.all([pageAllLogIds(file, 7, q), pageAllLogIds(pg, 7, q)])).map(
          (pages) => pages.flat(),
        );
        expect(got, JSON.stringify(q)).toEqual(want);
        expect(new Set(got).size).toBe(got!.length);
      }
      const all = (await pageAllLogIds(pg, 7, { order: 'asc', limit: 31 })).flat();
      expect(all).toEqual(range(0, 2200));
    });

    it('a page read by cursor locks the one or two partitions its window falls in, not the whole log', async () => {
      const { pg, db } = await spreadLog();
      const parts = await db.rows(
        'SELECT name FROM inference_log_partitions WHERE pipeline_id = 7 AND NOT emptied',
      );
      expect(parts.length).toBeGreaterThanOrEqual(5);
      const first = await pg.query(7, { order: 'asc', limit: 700 });
      const total = (await db.rows('SELECT name FROM inference_log_partitions WHERE pipeline_id = 7')).length;
      expect(first.nextCursor).not.toBeNull();
      // The next page, read by a store whose statements run in one transaction that keeps their locks.
      let locked = 0;
      let lockedTables = 0;
      await db.transaction(async (tx) => {
        const reader = {
          url: db.url,
          schema: db.schema,
          rows: (text: string, values?: readonly unknown[]) => tx.rows(text, values),
          one: (text: string, values?: readonly unknown[]) => tx.one(text, values),
        } as unknown as PostgresDatabase;
        const view = new PostgresInferenceLogStore(reader, { nodeId: 'r' });
        try {
          const page = await view.query(7, { order: 'asc', limit: 100, cursor: first.nextCursor! });
          expect(logPageIds(page)).toEqual(range(700, 100));
        } finally {
          await view.stop();
        }
        const row = await tx.one<{ n: string; tables: string }>(
          `SELECT count(DISTINCT l.relation)::text AS n,
                  count(DISTINCT l.relation) FILTER (WHERE c.relkind = 'r')::text AS tables
             FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relname LIKE 'inference_log_batches%'`,
        );
        locked = Number(row?.n);
        lockedTables = Number(row?.tables);
      });
      // A window is 32 seqs, three partitions of 16 here (one or two at real caps, whose
      // partitions hold hundreds of batches): those, their four indexes each, and the
      // partitioned table. Every partition of the log would be five relations a partition.
      expect(lockedTables).toBeGreaterThan(0);
      expect(lockedTables).toBeLessThanOrEqual(3);
      expect(lockedTables).toBeLessThan(total);
      expect(locked).toBeLessThanOrEqual(16);
    });

    it('a write that trims its pipeline row by row (partitions too large to drop whole) locks the partitions it reads and writes, not every one of the pipeline', async () => {
      const db = await open(`parts${++schemaNo}`);
      const build = new PostgresLogBatchWriter('b', { maxBytesPerPipeline: 1e12, maxBytesTotal: 1e12 });
      build.committed(await db.transaction((sql) => build.write(sql, 1, [small(0, 1024)])));
      const bb = Number(
        (await db.one<{ bytes: string }>('SELECT bytes::text FROM inference_log_heads'))?.bytes,
      );
      // Partitions of 32 batches, 160 batches: five partitions.
      const maker = new PostgresLogBatchWriter('m', {
        maxBytesPerPipeline: 1e12,
        maxBytesTotal: 1e12,
        partitionBytes: 32 * bb,
      });
      maker.committed(
        await db.transaction((sql) =>
          maker.write(
            sql,
            2,
            Array.from({ length: 160 }, () => small(0, 1024)),
          ),
        ),
      );
      // A cap of 112 batches: a partition (32) is more than a quarter of it, so the write's
      // trim deletes rows (49 batches, from the first two partitions) instead of dropping one.
      const w = new PostgresLogBatchWriter('w', { maxBytesPerPipeline: 112 * bb, maxBytesTotal: 1e12 });
      let tables = 0;
      await db.transaction(async (sql) => {
        await w.write(sql, 2, [small(0, 1024)]);
        const row = await sql.one<{ t: string }>(
          `SELECT count(DISTINCT l.relation) FILTER (WHERE c.relkind = 'r')::text AS t
             FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relname LIKE 'inference_log_batches_p%'`,
        );
        tables = Number(row?.t);
      });
      const head = await db.one<{ first: string; oldest: string | null }>(
        'SELECT first_seq::text AS first, oldest_at::text AS oldest FROM inference_log_heads WHERE pipeline_id = 2',
      );
      expect(Number(head?.first), 'first seq kept after the trim').toBeGreaterThan(33);
      expect(head?.oldest).not.toBeNull();
      // The two oldest (trimmed), the third (the new first batch's time) and the newest (insert).
      expect(tables, 'partitions of the pipeline locked by the write').toBeLessThanOrEqual(4);
      await expectHeadsConsistent(db);
    });

    it('preparing a hand-off makes at most 8 partitions for a pipeline; its write makes the rest and stores every batch', async () => {
      const db = await open(`parts${++schemaNo}`);
      const build = new PostgresLogBatchWriter('b', { maxBytesPerPipeline: 1e12, maxBytesTotal: 1e12 });
      build.committed(await db.transaction((sql) => build.write(sql, 1, [small(0, 1024)])));
      const bb = Number(
        (await db.one<{ bytes: string }>('SELECT bytes::text FROM inference_log_heads'))?.bytes,
      );
      // Partitions of 16 batches; 200 full batches (none merge) need 13 of them.
      const w = new PostgresLogBatchWriter('w', {
        maxBytesPerPipeline: 1e12,
        maxBytesTotal: 1e12,
        partitionBytes: 16 * bb,
      });
      const hand = Array.from({ length: 200 }, (_, i) => small(i * 1024, 1024));
      let prepared = 0;
      w.committed(
        await db.transaction(async (sql) => {
          await w.preparePartitions(sql, 2, hand);
          prepared = Number(
            (
              await sql.one<{ n: string }>(
                'SELECT count(*)::text AS n FROM inference_log_partitions WHERE pipeline_id = 2',
              )
            )?.n,
          );
          return w.write(sql, 2, hand);
        }),
      );
      expect(prepared, 'partitions made by preparePartitions').toBe(8);
      const head = await db.one<{ next: string }>(
        'SELECT next_seq::text AS next FROM inference_log_heads WHERE pipeline_id = 2',
      );
      expect(Number(head?.next)).toBe(201);
      await expectHeadsConsistent(db);
    });

    it('a writer not told of a rollback that took a partition with it fails that write once (no partition for its rows), then makes the partition again', async () => {
      const db = await open(`parts${++schemaNo}`);
      const w = new PostgresLogBatchWriter('w', {
        maxBytesPerPipeline: 16 * 1024 * 1024,
        maxBytesTotal: 1e12,
      });
      // Pipeline 1's partition is made in a transaction that rolls back, and the writer is not
      // told (no rolledBack()); another pipeline's commit then counts what it thinks it made.
      await expect(
        db.transaction(async (sql) => {
          await w.write(sql, 1, [small(0, 20)]);
          throw new Error('lost');
        }, 1),
      ).rejects.toThrow('lost');
      w.committed(await db.transaction((sql) => w.write(sql, 2, [small(100, 20)]), 1));
      // Its next write fails once, as the writer thread counts a failed attempt and retries.
      const first = await db
        .transaction((sql) => w.write(sql, 1, [small(0, 20)]), 1)
        .then(
          () => 'stored',
          (err: unknown) => String(err),
        );
      expect(first).toMatch(/no partition/);
      w.committed(await db.transaction((sql) => w.write(sql, 1, [small(0, 20)]), 1));
      const store = new PostgresInferenceLogStore(db, { nodeId: 'r' });
      stores.push(store);
      expect((await pageAllLogIds(store, 1, {})).flat()).toEqual(range(0, 20).reverse());
      await expectHeadsConsistent(db);
    });

    it("two nodes applying the total cap at once, on different pipelines (one passed over the other's held head), drop for one excess, not twice: at least 3/4 of the total cap kept", async () => {
      // A total cap of 128 batches (partitions of 16): pipeline 1 holds the oldest 100, pipeline
      // 2 the newest 68, pipeline 9 one (never trimmed: its newest batch). 41 over the cap.
      // Node a's step here is alive, only not committed yet: its idle limit (the lock wait) far
      // above the time node b takes, so PostgreSQL does not end it as a stalled one (at 50 ms it
      // did, at load 13). b waits for no head, so the wait changes nothing else.
      const { db, one, a, b } = await overTotalCap(10_000);
      // Node a applies the total cap to pipeline 1 (the oldest) and has not committed yet when
      // node b applies it. Without the total cap's lock, b waited in vain for pipeline 1's head,
      // passed it over, and read a total that did not yet show a's drop; now b finds the lock
      // taken (before any head) and leaves the excess to a.
      const { promise: aInside, open: inside } = latch();
      const { promise: gate, open: release } = latch();
      let first = true;
      const aPass = a.enforceTotalRetention(db, (fn) =>
        db.transaction(async (tx) => {
          await fn(tx);
          if (first) {
            first = false;
            inside();
            await gate;
          }
        }),
      );
      await aInside;
      await b.enforceTotalRetention(db, (fn) => db.transaction(fn));
      release();
      await aPass;
      const held = await db.one<{ bytes: string }>(
        'SELECT sum(bytes)::text AS bytes FROM inference_log_heads',
      );
      // Alone, a node drops 3 partitions (48 batches) and keeps 121 of 128.
      expect(
        Number(held?.bytes) / one,
        'batches kept (at least 3/4 of the 128-batch total cap)',
      ).toBeGreaterThanOrEqual(96);
      expect(Number(held?.bytes) / one).toBeLessThanOrEqual(128);
      await expectHeadsConsistent(db);
    });

    it('a node stalled mid-step of the total cap (its advisory lock and the oldest head held) does not stop the total cap: another node writing on keeps the committed total within it', async () => {
      // As in the test above: a 128-batch total cap, pipeline 1 the oldest 100 batches,
      // pipeline 2 the newest 68 (and pipeline 9 one).
      // A 1 s idle limit: long enough that node b's own steps are never ended as stalled on a
      // loaded machine (50 ms were, once, beside six other test files), short beside the minute.
      const { db, one, a, b } = await overTotalCap(1000);
      // Node a stalls inside its first total-cap step (a process paused, a network cut off):
      // its transaction stays open, holding pipeline 1's head and the total cap's lock, until
      // the server ends it (idle_in_transaction_session_timeout, a minute by default).
      const { promise: aInside, open: inside } = latch();
      const { promise: gate, open: release } = latch();
      let first = true;
      const aPass = a.enforceTotalRetention(db, (fn) =>
        db.transaction(async (tx) => {
          if (first) {
            first = false;
            await fn(tx);
            inside();
            await gate;
            // It never commits: the server ends the stalled transaction.
            throw new Error('stalled node cut off');
          }
          await fn(tx);
        }),
      );
      await aInside;
      try {
        // The server ends the stalled transaction once it has sat idle for the limit, which frees
        // the total cap's lock (waited for here up to 20 s; without the limit it stays a minute).
        const lockFreed = await waitForTotalCapLockFree(db, 20_000);
        expect(lockFreed, "the total cap's lock freed by the server ending the stalled step").toBe(true);
        // Node b goes on writing pipeline 2, applying the caps after each write as its writer
        // thread does. Pipeline 2 (its head free) has batches enough to give up for the excess.
        for (let i = 68; i < 88; i++) {
          b.committed(await db.transaction((sql) => b.write(sql, 2, [small(i * 20, 20)])));
          await b.enforceTotalRetention(db, (fn) => db.transaction(fn));
        }
        const held = await db.one<{ bytes: string }>(
          'SELECT sum(bytes)::text AS bytes FROM inference_log_heads',
        );
        expect(
          Number(held?.bytes) / one,
          'committed batches while node a is stalled (the total cap is 128)',
        ).toBeLessThanOrEqual(128);
      } finally {
        release();
        await aPass.catch(() => undefined);
      }
      await expectHeadsConsistent(db);
    });

    it('a node that found the total cap lock taken checks the total again at its next pass: the holder cut off mid-step (its drop rolled back), the excess is still trimmed', async () => {
      // Node a's step here is alive, only not committed yet: its idle limit (the lock wait) far
      // above the time node b takes, so PostgreSQL does not end it as a stalled one (at 50 ms it
      // did, at load 13). b waits for no head, so the wait changes nothing else.
      const { db, one, a, b } = await overTotalCap(10_000);
      const { promise: aInside, open: inside } = latch();
      const { promise: gate, open: release } = latch();
      const aPass = a.enforceTotalRetention(db, (fn) =>
        db.transaction(async (tx) => {
          await fn(tx);
          inside();
          await gate;
          throw new Error('node a cut off before its commit');
        }),
      );
      await aInside;
      // b finds the lock taken and leaves the excess to a.
      await b.enforceTotalRetention(db, (fn) => db.transaction(fn));
      release();
      await expect(aPass).rejects.toThrow('cut off');
      // a's drop was rolled back and a is gone: b's next pass (after its next write) applies the cap.
      await b.enforceTotalRetention(db, (fn) => db.transaction(fn));
      const held = await db.one<{ bytes: string }>(
        'SELECT sum(bytes)::text AS bytes FROM inference_log_heads',
      );
      expect(Number(held?.bytes) / one, 'batches kept (the total cap is 128)').toBeLessThanOrEqual(128);
      await expectHeadsConsistent(db);
    });

    /** Whether no session holds an advisory lock of the total cap's class within `timeoutMs` (polled). */
    async function waitForTotalCapLockFree(db: PostgresDatabase, timeoutMs: number): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const row = await db.one<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND granted",
          [TOTAL_CAP_LOCK_CLASS],
        );
        if ((row?.n ?? 0) === 0) return true;
        if (Date.now() > deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    /**
     * As in the tests above: a 128-batch total cap, pipeline 1 holding the oldest 100 batches,
     * pipeline 2 the newest 68 (and pipeline 9 one), written by node a; nodes a and b.
     */
    async function overTotalCap(retentionLockWaitMs: number): Promise<{
      db: PostgresDatabase;
      one: number;
      a: PostgresLogBatchWriter;
      b: PostgresLogBatchWriter;
      kept: () => Promise<number>;
    }> {
      const db = await PostgresDatabase.open({
        url: database.url,
        schema: `parts${++schemaNo}`,
        poolSize: 4,
      });
      dbs.push(db);
      const setup = new PostgresLogBatchWriter('s', { maxBytesPerPipeline: 1e12, maxBytesTotal: 1e12 });
      setup.committed(await db.transaction((sql) => setup.write(sql, 9, [small(0, 20)])));
      const one = Number(
        (await db.one<{ bytes: string }>('SELECT bytes::text FROM inference_log_heads'))?.bytes,
      );
      let clock = 1;
      const caps = { maxBytesPerPipeline: 1e12, maxBytesTotal: 128 * one, retentionLockWaitMs };
      const a = new PostgresLogBatchWriter('a', caps, () => clock++);
      const b = new PostgresLogBatchWriter('b', caps, () => clock++);
      for (const [id, n] of [
        [1, 100],
        [2, 68],
      ] as const) {
        for (let i = 0; i < n; i++) {
          a.committed(await db.transaction((sql) => a.write(sql, id, [small(i * 20, 20)])));
        }
      }
      const kept = async (): Promise<number> =>
        Number(
          (await db.one<{ bytes: string }>('SELECT sum(bytes)::text AS bytes FROM inference_log_heads'))
            ?.bytes,
        ) / one;
      return { db, one, a, b, kept };
    }

    it('a total-cap step lets its transaction sit idle at most retentionLockWaitMs (the server ends a stalled one, releasing its advisory lock), not the session-wide minute', async () => {
      const { db, a } = await overTotalCap(1500);
      const idle: string[] = [];
      await a.enforceTotalRetention(db, (fn) =>
        db.transaction(async (tx) => {
          await fn(tx);
          const row = await tx.one<{ t: string }>(
            "SELECT current_setting('idle_in_transaction_session_timeout') AS t",
          );
          idle.push(row?.t ?? '');
        }),
      );
      expect(idle.length).toBeGreaterThan(0);
      for (const t of idle) expect(t).toBe('1500ms');
    });

    it('a node finding the total cap lock taken waits for no head: it tries the lock before the oldest head, which the holder holds', async () => {
      // A lock wait of a minute: the old order waited that long for pipeline 1's head.
      const { db, a, b, kept } = await overTotalCap(60_000);
      const { promise: aInside, open: inside } = latch<number>();
      const { promise: gate, open: release } = latch();
      let first = true;
      const aPass = a.enforceTotalRetention(db, (fn) =>
        db.transaction(async (tx) => {
          await fn(tx);
          if (first) {
            first = false;
            const row = await tx.one<{ pid: number }>('SELECT pg_backend_pid() AS pid');
            inside(row?.pid ?? 0);
            await gate;
          }
        }),
      );
      const aPid = await aInside;
      let done = false;
      const bPass = b.enforceTotalRetention(db, (fn) => db.transaction(fn)).then(() => 'deferred');
      // Ends when b's pass does, or as soon as a backend waits for a lock node a holds.
      const blocked = (async () => {
        while (!done) {
          const row = await db.one<{ n: number }>(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))',
            [aPid],
          );
          if ((row?.n ?? 0) > 0) return 'waited for a lock node a holds';
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        return 'deferred';
      })();
      try {
        expect(await Promise.race([bPass, blocked])).toBe('deferred');
      } finally {
        done = true;
        release();
        await aPass;
        await bPass.catch(() => undefined);
        await blocked;
      }
      expect(await kept()).toBeLessThanOrEqual(128);
      expect(await kept()).toBeGreaterThanOrEqual(96);
      await expectHeadsConsistent(db);
    });

    it('a node whose total-cap step failed (rolled back, its drop with it) checks the total again at its next pass, without a write in between', async () => {
      const { db, a, kept } = await overTotalCap(5_000);
      let first = true;
      await expect(
        a.enforceTotalRetention(db, (fn) =>
          db.transaction(async (tx) => {
            await fn(tx);
            if (first) {
              first = false;
              throw new Error('cut off before its commit');
            }
          }),
        ),
      ).rejects.toThrow('cut off');
      expect(await kept()).toBeGreaterThan(128);
      await a.enforceTotalRetention(db, (fn) => db.transaction(fn));
      expect(await kept()).toBeLessThanOrEqual(128);
      await expectHeadsConsistent(db);
    });

    it("an advisory lock another user of the database holds in the one-key space (here at the value of the total cap's former key) does not stop the total cap", async () => {
      const { db, a, kept } = await overTotalCap(5_000);
      const other = await PostgresDatabase.open({ url: database.url, schema: 'public', migrate: false });
      dbs.push(other);
      const schema = (await db.one<{ s: string }>('SELECT current_schema() AS s'))?.s ?? '';
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let held: () => void = () => undefined;
      const holding = new Promise<void>((resolve) => (held = resolve));
      const holder = other.transaction(async (tx) => {
        await tx.run("SELECT pg_advisory_xact_lock(hashtext('quoll_log_total_cap:' || $1::text))", [schema]);
        held();
        await gate;
      });
      await holding;
      try {
        await a.enforceTotalRetention(db, (fn) => db.transaction(fn));
        expect(await kept()).toBeLessThanOrEqual(128);
      } finally {
        release();
        await holder;
      }
      await expectHeadsConsistent(db);
    });

    it('migration 0017 moves a log stored before it into partitions: every row kept and read, and writes go on after it', async () => {
      const schema = `parts${++schemaNo}`;
      // The schema as 0016 left it, and a log stored in the table 0013 made.
      const before = mkdtempSync(join(dir, 'migrations-'));
      for (const f of readdirSync(POSTGRES_MIGRATIONS_DIR)) {
        if (/^\d{4}_/.test(f) && Number(f.slice(0, 4)) <= 16)
          cpSync(join(POSTGRES_MIGRATIONS_DIR, f), join(before, f));
      }
      const old = await open(schema, before);
      const encoder = new ArrowMessageEncoder();
      const first = small(0, 10);
      const schemaId = schemaIdOf(first.schema);
      await old.run('INSERT INTO inference_log_schemas (schema_id, message) VALUES ($1, $2)', [
        schemaId,
        Buffer.concat(encoder.encodeSchema(first.schema).chunks),
      ]);
      // Pipeline 5: seqs 11 to 150 (the ten before trimmed), ten rows each; pipeline 6: one batch.
      let bytes5 = 0;
      for (let seq = 11; seq <= 150; seq++) {
        const b = small((seq - 11) * 10, 10);
        const data = Buffer.concat(encoder.encodeBatch(b).chunks);
        bytes5 += data.length;
        await old.run(
          `INSERT INTO inference_log_batches (pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, node_id, created_at, data)
           VALUES (5, $1, $2, 10, $3, $4, $5, 'old', 0, $6)`,
          [seq, schemaId, data.length, T0 + (seq - 11) * 100, T0 + (seq - 11) * 100 + 90, data],
        );
      }
      const data6 = Buffer.concat(encoder.encodeBatch(small(5000, 10)).chunks);
      await old.run(
        `INSERT INTO inference_log_batches (pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, node_id, created_at, data)
         VALUES (6, 1, $1, 10, $2, $3, $4, 'old', 0, $5)`,
        [schemaId, data6.length, T0 + 50_000, T0 + 50_090, data6],
      );
      await old.run(
        `INSERT INTO inference_log_heads (pipeline_id, next_seq, last_time, rows, bytes)
         VALUES (5, 151, $1, 1400, $2), (6, 2, $3, 10, $4)`,
        [T0 + 13_990, bytes5, T0 + 50_090, data6.length],
      );
      // Opened by this code: 0017 applies.
      const db = await open(schema);
      const parts = await db.rows<{ first: string; end: string }>(
        'SELECT first_seq::text AS first, end_seq::text AS end FROM inference_log_partitions WHERE pipeline_id = 5 ORDER BY first_seq',
      );
      // One partition per pipeline (the writer makes the next ones): few locks in its transaction.
      expect(parts.map((p) => [Number(p.first), Number(p.end)])).toEqual([[11, 151]]);
      await expectHeadsConsistent(db);
      const store = new PostgresInferenceLogStore(db, { nodeId: 'n' });
      stores.push(store);
      expect((await pageAllLogIds(store, 5, { order: 'asc', limit: 97 })).flat()).toEqual(range(0, 1400));
      expect((await pageAllLogIds(store, 5, { limit: 97 })).flat()).toEqual(range(0, 1400).reverse());
      expect((await pageAllLogIds(store, 6, {})).flat()).toEqual(range(5000, 10).reverse());
      // Writes go on after it, past the partitions the migration made.
      for (let k = 0; k < 20; k++) {
        await store.append(5, small(1400 + k * 10, 10));
        await store.flush();
      }
      expect((await pageAllLogIds(store, 5, { order: 'asc', limit: 97 })).flat()).toEqual(range(0, 1600));
      await expectHeadsConsistent(db);
    });
  },
);
