import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { LogBatchPacker } from '../../logs/index.js';
import type { PackedBatches } from '../../logs/index.js';
import { spawnModuleWorker } from '../../threads/index.js';
import { LOG_T0, idRange, inferenceLogRows, logPageIds } from '../conformance/inference-log-rows.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresInferenceLogStore } from './postgres-inference-log-store.js';
import type { FromPostgresLogWriter, PostgresLogWriterSettings } from './postgres-log-writer-protocol.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

const rowsOf = (ids: number[]) =>
  inferenceLogRows(
    ids,
    ids.map((id) => LOG_T0 + id * 10),
  );

type Spoil = (body: PackedBatches) => void;

/** As in `log-writer-thread.poison.test.ts`: the meta of a packed batch spoiled after every check. */
const POISONS: { name: string; spoil: Spoil; rows: number | null }[] = [
  { name: 'a batch that cannot be unpacked', spoil: (body) => (body.meta[6] = 99), rows: 5 },
  { name: 'a hand-off that cannot be walked', spoil: (body) => (body.meta[0] = 12_345), rows: null },
  { name: 'a batch that unpacks but cannot be stored', spoil: (body) => (body.meta[9] = -1), rows: 5 },
  { name: "a batch whose row count is not its columns'", spoil: (body) => (body.meta[1] = 50), rows: 50 },
];

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

    for (const { name, spoil, rows } of POISONS) {
      it(`sets aside ${name}, stores the hand-offs around it, and stops cleanly`, async () => {
        const schema = `poison${++schemaNo}`;
        const db = await PostgresDatabase.open({ url: database.url, schema, poolSize: 2 });
        const settings: PostgresLogWriterSettings = {
          url: database.url,
          schema,
          nodeId: 'node-1',
          maxBytesPerPipeline: 1024 ** 3,
          maxBytesTotal: 1024 ** 3,
          retentionLockWaitMs: 1000,
          retryDelayMs: 10,
          maxRetryDelayMs: 50,
          stopAttempts: 3,
          confirmedSeq: 0,
        };
        const messages: FromPostgresLogWriter[] = [];
        const worker: Worker = spawnModuleWorker(import.meta.url, 'postgres-log-writer-worker', {
          workerData: settings,
        });
        worker.on('message', (msg: FromPostgresLogWriter) => messages.push(msg));
        let exitCode: number | null = null;
        const exited = new Promise<void>((resolve) =>
          worker.once('exit', (code) => {
            exitCode = code;
            resolve();
          }),
        );
        const packer = new LogBatchPacker();
        const send = (
          seq: number,
          groups: ReturnType<typeof rowsOf>[][],
          pipelineIds: number[],
          bad?: Spoil,
        ) => {
          const job = packer.begin(groups);
          job.step(Number.MAX_SAFE_INTEGER);
          bad?.(job.body);
          worker.postMessage({ type: 'items', seq, pipelineIds, body: job.body }, [job.body.arena]);
        };
        try {
          send(1, [[rowsOf(idRange(0, 5))], [rowsOf(idRange(100, 5))]], [1, 2]);
          send(2, [[rowsOf(idRange(5, 5))]], [1], spoil);
          send(3, [[rowsOf(idRange(10, 5))], [rowsOf(idRange(105, 5))]], [1, 2]);
          worker.postMessage({ type: 'stop', lastSeq: 3 });
          await Promise.race([
            exited,
            new Promise((_, reject) =>
              setTimeout(
                () => reject(new Error(`the writer did not stop: ${messages.map((m) => m.type).join(' ')}`)),
                20_000,
              ),
            ),
          ]);
        } finally {
          await worker.terminate();
        }
        const types = messages.map((m) => m.type);
        expect(exitCode, types.join(' ')).toBe(0);
        expect(types).not.toContain('write-failed');
        expect(messages.at(-1)).toEqual({ type: 'stopped', failed: false });
        const quarantined = messages.filter((m) => m.type === 'quarantined');
        expect(quarantined.map((q) => q.pipelineIds)).toEqual([[1]]);
        expect(quarantined[0]?.rows).toBe(rows);

        const store = new PostgresInferenceLogStore(db, { nodeId: 'reader' });
        try {
          expect(logPageIds(await store.query(1, { limit: 100, order: 'asc' }))).toEqual([
            ...idRange(0, 5),
            ...idRange(10, 5),
          ]);
          expect(logPageIds(await store.query(2, { limit: 100, order: 'asc' }))).toEqual([
            ...idRange(100, 5),
            ...idRange(105, 5),
          ]);
        } finally {
          await store.stop();
          await db.close();
        }
      });
    }
  },
);
