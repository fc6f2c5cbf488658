import type { RecordBatch } from 'apache-arrow';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { LOG_T0 as T0, idRange as range, inferenceLogRows } from '../conformance/inference-log-rows.js';
import { PostgresDatabase } from './postgres-database.js';
import type { Sql } from './postgres-database.js';
import { PostgresLogBatchWriter } from './postgres-log-batch-writer.js';

// Focused hostile review of lane pgpart2's fixes (second round): each test states a defect and
// fails on the lead's branch (86c2cb3) for that reason.

const { run: runPostgresTests, skipReason } = await postgresAvailability();

const small = (first: number, n: number, width = 2): RecordBatch =>
  inferenceLogRows(
    range(first, n),
    range(first, n).map((i) => T0 + i * 10),
    { width },
  );

describe.skipIf(!runPostgresTests)(
  `review of pgpart2's fixes (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    let schemaNo = 0;
    const dbs: PostgresDatabase[] = [];

    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });
    afterEach(async () => {
      for (const d of dbs.splice(0)) await d.close();
    });

    async function open(schema: string): Promise<PostgresDatabase> {
      const db = await PostgresDatabase.open({ url: database.url, schema, poolSize: 4 });
      dbs.push(db);
      return db;
    }

    /** Bytes of one stored batch `small(_, 20)`. */
    async function oneBatchBytes(): Promise<number> {
      const probeDb = await open(`rw${++schemaNo}`);
      const probe = new PostgresLogBatchWriter('p', { maxBytesPerPipeline: 1e12, maxBytesTotal: 1e12 });
      probe.committed(await probeDb.transaction((sql) => probe.write(sql, 1, [small(0, 20)])));
      return Number(
        (await probeDb.one<{ bytes: string }>('SELECT bytes::text FROM inference_log_heads'))?.bytes,
      );
    }

    it('Review: two nodes applying the total cap at once each drop partitions for the same excess (the total is read before the head is locked): the log falls below 3/4 of the total cap', async () => {
      const one = await oneBatchBytes();
      const db = await open(`rw${++schemaNo}`);
      // Total cap of 128 batches: partitions of 16 batches (an eighth of it).
      const caps = { maxBytesPerPipeline: 1e12, maxBytesTotal: 128 * one };
      const a = new PostgresLogBatchWriter('a', caps);
      const b = new PostgresLogBatchWriter('b', caps);
      // 168 batches (one stored batch per write): 40 over the cap.
      for (let i = 0; i < 168; i++) {
        a.committed(await db.transaction((sql) => a.write(sql, 1, [small(i * 20, 20)])));
      }
      const tx = (fn: (sql: Sql) => Promise<void>): Promise<void> => db.transaction(fn);
      // Node b has read the total and waits for the pipeline's head, which node a holds while
      // it applies the same total cap (both saw the same writes).
      let aPass: Promise<void> | null = null;
      await b.enforceTotalRetention(db, async (fn) => {
        if (aPass === null) {
          aPass = a.enforceTotalRetention(db, tx);
          await aPass;
        }
        return tx(fn);
      });
      const held = await db.one<{ bytes: string }>(
        'SELECT sum(bytes)::text AS bytes FROM inference_log_heads',
      );
      // Alone, either node drops 3 partitions (48 batches) and keeps 120 of 128.
      expect(
        Number(held?.bytes) / one,
        'batches kept (at least 3/4 of the 128-batch total cap)',
      ).toBeGreaterThanOrEqual(96);
    });
  },
);
