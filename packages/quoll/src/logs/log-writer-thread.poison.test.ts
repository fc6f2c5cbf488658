import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../store/open-store.js';
import { LOG_T0, idRange, inferenceLogRows, logPageIds } from '../store/conformance/inference-log-rows.js';
import { InferenceLogStore } from './inference-log-store.js';
import { LogBatchPacker } from './log-batch-transfer.js';
import type { PackedBatches } from './log-batch-transfer.js';
import type { FromWriter, LogWriterSettings } from './log-writer-protocol.js';
import { LogWriterThread } from './log-writer-thread.js';

const root = mkdtempSync(join(tmpdir(), 'quoll-writer-poison-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Rows `ids` of the test rows' schema, at LOG_T0 + id × 10. */
const rowsOf = (ids: number[]) =>
  inferenceLogRows(
    ids,
    ids.map((id) => LOG_T0 + id * 10),
  );

type Spoil = (body: PackedBatches) => void;

/**
 * Two poison messages as the writer thread could be given them after every check (the meta of
 * a packed batch: schema id, rows, then per column offset, length, null count, children and
 * four buffers of kind, byte offset, length): one its unpacker cannot read, and one it reads
 * into a batch that cannot be written.
 */
const POISONS: { name: string; spoil: Spoil; rows: number | null }[] = [
  {
    name: 'a batch that cannot be unpacked',
    // The first buffer of the first column names a kind of typed array that does not exist:
    // only that batch is set aside, the message's other batches are still read.
    spoil: (body) => (body.meta[6] = 99),
    rows: 5,
  },
  {
    name: 'a hand-off that cannot be walked',
    // Its batch names a schema the writer was never sent: the message cannot be told apart
    // into batches, so it is set aside whole.
    spoil: (body) => (body.meta[0] = 12_345),
    rows: null,
  },
  {
    name: 'a batch that unpacks but cannot be written',
    // Its time column unpacks without values (the kind of its values buffer says "none"):
    // reading its times to keep them non-decreasing throws.
    spoil: (body) => (body.meta[9] = -1),
    rows: 5,
  },
  {
    name: "a batch whose row count is not its columns'",
    // 50 rows said, 5 held: written as it is, it would store a batch its readers cannot read.
    spoil: (body) => (body.meta[1] = 50),
    // Told as the rows it says it has.
    rows: 50,
  },
];

describe('the inference log writer thread and a poison batch', () => {
  for (const { name, spoil, rows } of POISONS) {
    it(`sets aside ${name}, writes the hand-offs around it, and stops cleanly`, async () => {
      const dir = mkdtempSync(join(root, 'logs-'));
      const stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
      const settings: LogWriterSettings = {
        dir,
        syncIntervalMs: 20,
        segmentMaxRows: 1_000_000,
        segmentMaxBytes: 64 * 1024 * 1024,
        maxBytesPerPipeline: 1024 ** 3,
        maxBytesTotal: 1024 ** 3,
        retryDelayMs: 10,
        maxRetryDelayMs: 50,
        stopAttempts: 3,
        startSeq: 0,
      };
      const messages: FromWriter['type'][] = [];
      const quarantined: Extract<FromWriter, { type: 'quarantined' }>[] = [];
      let exitError: Error | null | undefined;
      const thread = new LogWriterThread(settings, stores.logIndex, {
        message: (msg) => {
          messages.push(msg.type);
          if (msg.type === 'quarantined') quarantined.push(msg);
        },
        indexCalled: () => undefined,
        exit: (error) => (exitError = error),
      });
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
        thread.send({ type: 'items', seq, pipelineIds, body: job.body }, [job.body.arena]);
      };
      try {
        send(1, [[rowsOf(idRange(0, 5))], [rowsOf(idRange(100, 5))]], [1, 2]);
        // The poison: pipeline 1's rows only (pipeline 2 is written in the hand-offs around it).
        send(2, [[rowsOf(idRange(5, 5))]], [1], spoil);
        send(3, [[rowsOf(idRange(10, 5))], [rowsOf(idRange(105, 5))]], [1, 2]);
        thread.send({ type: 'stop', lastSeq: 3 });
        await Promise.race([
          thread.exited,
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error(`the writer did not stop: ${messages.join(' ')}`)), 20_000),
          ),
        ]);
      } finally {
        await thread.terminate();
      }
      expect(exitError, messages.join(' ')).toBeNull();
      expect(messages).not.toContain('write-failed');
      expect(quarantined.map((q) => q.pipelineIds)).toEqual([[1]]);
      expect(quarantined[0]?.rows).toBe(rows);

      const store = await InferenceLogStore.open({ dir, index: stores.logIndex });
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
        await stores.close();
      }
    });
  }
});
