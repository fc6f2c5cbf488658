import type { PoolClient } from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { eventually } from '../../../../../test/support/eventually.js';
import { bigLogBatch as big } from '../conformance/inference-log-rows.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresInferenceLogStore } from './postgres-inference-log-store.js';
import { detachEmptiedPartitions, partitionName } from './postgres-log-batch-writer.js';

// The partitions' cleanup (detach, drop, unlist) and a stop in the middle of it: what the stop
// leaves, and that later cleanups finish it. (Written as a review of bd5f6c4: each "Review:"
// test fails there for the reason it states.)

const { run: runPostgresTests, skipReason } = await postgresAvailability();

describe.skipIf(!runPostgresTests)(
  `the partitions' cleanup at stop (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    let schemaNo = 0;
    const dbs: PostgresDatabase[] = [];
    const stores: PostgresInferenceLogStore[] = [];
    const clients: PoolClient[] = [];

    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) {
        await c.query('ROLLBACK').catch(() => undefined);
        c.release();
      }
      for (const s of stores.splice(0)) await s.stop().catch(() => undefined);
      for (const d of dbs.splice(0)) await d.close();
    });

    async function open(schema: string): Promise<PostgresDatabase> {
      const db = await PostgresDatabase.open({ url: database.url, schema, poolSize: 4 });
      dbs.push(db);
      return db;
    }

    async function client(db: PostgresDatabase): Promise<PoolClient> {
      const c = await db.pool.connect();
      clients.push(c);
      return c;
    }

    /** Makes and lists an (empty) partition of `pipelineId` from `lo`, 10 seqs long, marked emptied. */
    async function emptiedPartition(db: PostgresDatabase, pipelineId: number, lo: number): Promise<string> {
      const name = partitionName(pipelineId, lo);
      await db.run(
        `CREATE TABLE ${name} (LIKE inference_log_batches INCLUDING ALL);
         ALTER TABLE inference_log_batches ATTACH PARTITION ${name}
           FOR VALUES FROM (${pipelineId}, ${lo}) TO (${pipelineId}, ${lo + 10});
         INSERT INTO inference_log_partitions (name, pipeline_id, first_seq, end_seq, emptied)
           VALUES ('${name}', ${pipelineId}, ${lo}, ${lo + 10}, true)`,
      );
      return name;
    }

    /**
     * Leaves `name` pending detach, as a stop's `pg_cancel_backend` does when it lands in the
     * second phase of `DETACH … CONCURRENTLY` (waiting for older snapshots, the phase that
     * waits longest beside other nodes' reads).
     */
    async function leavePendingDetach(db: PostgresDatabase, name: string): Promise<void> {
      const reader = await client(db);
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await reader.query('SELECT count(*) FROM inference_log_batches');
      const detacher = await client(db);
      await detacher.query("SET statement_timeout = '300ms'");
      await expect(
        detacher.query(`ALTER TABLE inference_log_batches DETACH PARTITION ${name} CONCURRENTLY`),
      ).rejects.toThrow(/statement timeout/);
      await detacher.query('RESET statement_timeout');
      await reader.query('COMMIT');
      const pending = await db.rows<{ name: string }>(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'inference_log_batches'::regclass AND i.inhdetachpending`,
      );
      expect(pending.map((r) => r.name)).toEqual([name]);
    }

    it('(context) one partition pending detach makes PostgreSQL refuse every other DETACH … CONCURRENTLY on the table, and detachEmptiedPartitions takes that for "its own detach half done"', async () => {
      const db = await open(`rvpg${++schemaNo}`);
      const other = await emptiedPartition(db, 1, 1);
      const stuck = await emptiedPartition(db, 2, 1);
      await leavePendingDetach(db, stuck);
      const c = await client(db);
      const err = await c
        .query(`ALTER TABLE inference_log_batches DETACH PARTITION ${other} CONCURRENTLY`)
        .catch((e: unknown) => e as Error & { code?: string });
      expect((err as { code?: string }).code).toBe('55000');
      expect((err as Error).message).toContain(`partition "${stuck}" already pending detach`);
      // The cleanup converges here only because the pending one is within its first 64 rows.
      const run = (text: string, values?: readonly unknown[]) => c.query(text, values as unknown[]);
      await detachEmptiedPartitions(run).catch(() => undefined);
      await detachEmptiedPartitions(run).catch(() => undefined);
      expect(await db.rows('SELECT name FROM inference_log_partitions')).toEqual([]);
    });

    it('Review: a partition left pending detach (a stop mid-cleanup) behind 64 emptied partitions that sort before it is never finalized: every later cleanup on every node fails and emptied partitions are never dropped', async () => {
      const db = await open(`rvpg${++schemaNo}`);
      // 64 emptied partitions of pipeline 1 (e.g. a pass over a lowered total cap empties
      // many at once), and one of pipeline 2 that a stop left pending detach.
      for (let k = 0; k < 64; k++) await emptiedPartition(db, 1, 1 + k * 10);
      const stuck = await emptiedPartition(db, 2, 1);
      await leavePendingDetach(db, stuck);
      const c = await client(db);
      const run = (text: string, values?: readonly unknown[]) => c.query(text, values as unknown[]);
      const failures: string[] = [];
      // Every node's cleanup after a pass that emptied something: as many as you like.
      for (let attempt = 0; attempt < 5; attempt++) {
        await detachEmptiedPartitions(run).catch((e: unknown) => failures.push(String(e)));
      }
      const left = await db.rows<{ n: string }>('SELECT count(*)::text AS n FROM inference_log_partitions');
      expect(failures, 'cleanups that failed').toEqual([]);
      expect(left[0]?.n, 'emptied partitions still listed (and attached, or pending)').toBe('0');
    });

    it('a partition left pending detach after a cleanup began (another stop mid-detach) is finalized when PostgreSQL names it in refusing the next detach; the partition being detached is not', async () => {
      const db = await open(`rvpg${++schemaNo}`);
      const first = await emptiedPartition(db, 1, 1);
      const stuck = await emptiedPartition(db, 2, 1);
      const c = await client(db);
      let left = false;
      const run = async (text: string, values?: readonly unknown[]) => {
        if (!left && text.includes(`DETACH PARTITION ${first} CONCURRENTLY`)) {
          // After the cleanup looked for partitions pending detach: none then.
          left = true;
          await leavePendingDetach(db, stuck);
        }
        return c.query(text, values as unknown[]);
      };
      expect(await detachEmptiedPartitions(run)).toBe(2);
      expect(left).toBe(true);
      expect(await db.rows('SELECT name FROM inference_log_partitions')).toEqual([]);
      const attached = await db.rows(
        `SELECT 1 FROM pg_inherits WHERE inhparent = 'inference_log_batches'::regclass`,
      );
      expect(attached).toEqual([]);
    });

    it("Review: the partitions test's check right after stop (every listed partition attached) does not hold when the stop comes mid-cleanup, though a later cleanup finishes it: a strict test, not a leak", async () => {
      const schema = `rvpg${++schemaNo}`;
      const db = await open(schema);
      // The cleanup's last statement (unlisting a dropped partition) made slow, so a stop
      // comes while it runs, as it may at any time.
      await db.run(
        `CREATE FUNCTION slow_unlist() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep(2); RETURN OLD; END $$;
         CREATE TRIGGER slow_unlist BEFORE DELETE ON inference_log_partitions
           FOR EACH ROW EXECUTE FUNCTION slow_unlist()`,
      );
      const store = new PostgresInferenceLogStore(db, {
        nodeId: 'n',
        maxBytesPerPipeline: 8 * 1024 * 1024,
        onVacuumError: () => undefined,
      });
      stores.push(store);
      const unlisting = async (): Promise<boolean> => {
        const rows = await db.rows(
          `SELECT 1 FROM pg_stat_activity WHERE state = 'active'
             AND query LIKE 'DELETE FROM inference_log_partitions%' AND datname = current_database()`,
        );
        return rows.length > 0;
      };
      let k = 0;
      const caught = await eventually(async () => {
        await store.append(3, big(k++));
        await store.flush();
        return unlisting();
      }, 60_000);
      expect(caught, 'a cleanup under way').toBe(true);
      await store.stop();
      const listed = await db.rows<{ name: string }>(
        'SELECT name FROM inference_log_partitions ORDER BY name',
      );
      const attached = await db.rows<{ name: string }>(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'inference_log_batches'::regclass ORDER BY c.relname`,
      );
      const notAttached = listed.map((r) => r.name).filter((n) => !attached.some((a) => a.name === n));
      const emptiedAtStop = (
        await db.rows<{ name: string }>('SELECT name FROM inference_log_partitions WHERE emptied')
      ).map((r) => r.name);
      // Not a leak: the next cleanup (a writer thread's first pass) finishes it.
      await db.run('DROP TRIGGER slow_unlist ON inference_log_partitions');
      const again = new PostgresInferenceLogStore(db, { nodeId: 'n2', maxBytesPerPipeline: 8 * 1024 * 1024 });
      stores.push(again);
      await again.append(3, big(k++));
      await again.flush();
      const cleaned = await eventually(async () => {
        const still = await db.rows<{ n: string }>(
          `SELECT count(*)::text AS n FROM inference_log_partitions WHERE name = ANY($1::text[])`,
          [notAttached],
        );
        return still[0]?.n === '0';
      });
      expect(cleaned, 'what the stop left is cleaned by the next cleanup').toBe(true);
      // What the stop left was one the cleanup had begun (emptied), and once one cleanup ran
      // the check postgres-log-partitions.test.ts made right after stop holds (it now makes it
      // after one cleanup, as here).
      for (const n of notAttached) expect(emptiedAtStop).toContain(n);
      expect(
        await eventually(async () => {
          const [l, a] = await Promise.all([
            db.rows<{ name: string }>('SELECT name FROM inference_log_partitions ORDER BY name'),
            db.rows<{ name: string }>(
              `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'inference_log_batches'::regclass ORDER BY c.relname`,
            ),
          ]);
          return JSON.stringify(l.map((r) => r.name)) === JSON.stringify(a.map((r) => r.name));
        }),
        'listed == attached after one cleanup',
      ).toBe(true);
    });

    it('Review: a stop cancels one statement of the cleanup, not the cleanup: it goes on detaching and dropping the other emptied partitions after the stop, and the stop waits for all of it', async () => {
      const schema = `rvpg${++schemaNo}`;
      const db = await open(schema);
      // Many emptied partitions listed (as a busy cluster or a stop leaves them), then each
      // cleanup statement made to take a while (as DETACH … CONCURRENTLY does beside reads).
      const store = new PostgresInferenceLogStore(db, {
        nodeId: 'n',
        maxBytesPerPipeline: 8 * 1024 * 1024,
        onVacuumError: () => undefined,
      });
      stores.push(store);
      for (let k = 0; k < 12; k++) await emptiedPartition(db, 9, 1 + k * 10);
      await db.run(
        `CREATE TABLE unlisted (at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE FUNCTION slow_unlist() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep(0.5); INSERT INTO unlisted DEFAULT VALUES; RETURN OLD; END $$;
         CREATE TRIGGER slow_unlist BEFORE DELETE ON inference_log_partitions
           FOR EACH ROW EXECUTE FUNCTION slow_unlist()`,
      );
      // The writer thread's first pass cleans up (detach due at start).
      await store.append(3, big(0));
      await store.flush();
      expect(await eventually(async () => (await db.rows('SELECT 1 FROM unlisted')).length > 0)).toBe(true);
      const stopAt = await db.one<{ at: string }>('SELECT clock_timestamp()::text AS at');
      await store.stop();
      const after = await db.one<{ n: string }>(
        'SELECT count(*)::text AS n FROM unlisted WHERE at > $1::timestamptz',
        [stopAt?.at],
      );
      // At most the statement under way when the stop came ends after it.
      expect(Number(after?.n), 'partitions unlisted after the stop was asked').toBeLessThanOrEqual(1);
    });
  },
);
