import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  noTimeValues,
  postgresLogWriterSettings,
  rowsOf,
  sendHandOffsAndStop,
  startPostgresLogWriterWorker,
  storedIds,
} from '../../../../../test/support/poison-hand-offs.js';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { idRange } from '../conformance/inference-log-rows.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresInferenceLogStore } from './postgres-inference-log-store.js';

// Hostile review of lane pgpart: the writer thread end to end (fails on pgpart's head e0eb915).

const { run: runPostgresTests, skipReason } = await postgresAvailability();

describe.skipIf(!runPostgresTests)(
  `review: the PostgreSQL log writer thread and partitions (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });

    it("Review: a poison batch of one pipeline in a hand-off of several wedges the writer thread: the healthy pipeline's partition, made in the rolled-back transaction, is believed to exist, and its rows fail (check_violation) on every retry", async () => {
      const schema = 'rvworker1';
      const db = await PostgresDatabase.open({ url: database.url, schema, poolSize: 2 });
      const started = startPostgresLogWriterWorker(postgresLogWriterSettings(database.url, schema));
      // Pipeline 1 is healthy and written first (ids in order), making its first partition;
      // pipeline 2's batch cannot be written (the spoil hits the hand-off's first batch, pipeline 2's).
      await sendHandOffsAndStop(started.writer, [
        {
          seq: 1,
          groups: [[rowsOf(idRange(100, 5))], [rowsOf(idRange(0, 5))]],
          pipelineIds: [2, 1],
          spoil: noTimeValues,
        },
      ]).catch(() => undefined);
      const { messages } = started;
      const types = messages.map((m) => m.type);
      const failures = messages.flatMap((m) => (m.type === 'write-failed' ? [m.message] : []));
      expect(failures, types.join(' ')).toEqual([]);
      expect(messages.at(-1)).toEqual({ type: 'stopped', failed: false });
      const store = new PostgresInferenceLogStore(db, { nodeId: 'reader' });
      try {
        expect(await storedIds(store, [1])).toEqual([idRange(0, 5)]);
      } finally {
        await store.stop();
        await db.close();
      }
    });
  },
);
