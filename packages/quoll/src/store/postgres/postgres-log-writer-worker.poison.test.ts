import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  POISONS,
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

const { run: runPostgresTests, skipReason } = await postgresAvailability();

describe.skipIf(!runPostgresTests)(
  `the PostgreSQL inference log writer thread and a poison batch (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    let schemaNo = 0;
    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });

    // The poisons of `log-writer-thread.poison.test.ts`, given to this store's writer.
    for (const { name, spoil, rows } of POISONS) {
      it(`sets aside ${name}, stores the hand-offs around it, and stops cleanly`, async () => {
        const schema = `poison${++schemaNo}`;
        const db = await PostgresDatabase.open({ url: database.url, schema, poolSize: 2 });
        const started = startPostgresLogWriterWorker(postgresLogWriterSettings(database.url, schema));
        await sendHandOffsAndStop(started.writer, [
          { seq: 1, groups: [[rowsOf(idRange(0, 5))], [rowsOf(idRange(100, 5))]], pipelineIds: [1, 2] },
          { seq: 2, groups: [[rowsOf(idRange(5, 5))]], pipelineIds: [1], spoil },
          { seq: 3, groups: [[rowsOf(idRange(10, 5))], [rowsOf(idRange(105, 5))]], pipelineIds: [1, 2] },
        ]);
        const { messages } = started;
        const types = messages.map((m) => m.type);
        expect(started.exitCode, types.join(' ')).toBe(0);
        expect(types).not.toContain('write-failed');
        expect(messages.at(-1)).toEqual({ type: 'stopped', failed: false });
        const quarantined = messages.filter((m) => m.type === 'quarantined');
        expect(quarantined.map((q) => q.pipelineIds)).toEqual([[1]]);
        expect(quarantined[0]?.rows).toBe(rows);

        const store = new PostgresInferenceLogStore(db, { nodeId: 'reader' });
        try {
          // Pipeline 1 without the poison's rows, pipeline 2 whole.
          expect(await storedIds(store, [1, 2])).toEqual([
            [...idRange(0, 5), ...idRange(10, 5)],
            [...idRange(100, 5), ...idRange(105, 5)],
          ]);
        } finally {
          await store.stop();
          await db.close();
        }
      });
    }
  },
);
