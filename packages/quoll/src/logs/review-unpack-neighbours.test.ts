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

const root = mkdtempSync(join(tmpdir(), 'quoll-review-unpack-'));
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
const POISONS: { name: string; spoil: Spoil }[] = [
  {
    name: 'a hand-off that cannot be unpacked',
    // The first buffer of the first column names a kind of typed array that does not exist.
    spoil: (body) => (body.meta[6] = 99),
  },
];

describe('review: an unreadable hand-off and its healthy neighbours', () => {
  for (const { name, spoil } of POISONS) {
    it(`review: sets aside only the bad batch of ${name}, not another pipeline's healthy rows in the same hand-off`, async () => {
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
        // The poison: pipeline 1's batch is unreadable; pipeline 2's batch in the same hand-off is healthy.
        send(2, [[rowsOf(idRange(5, 5))], [rowsOf(idRange(105, 5))]], [1, 2], spoil);
        send(3, [[rowsOf(idRange(10, 5))], [rowsOf(idRange(110, 5))]], [1, 2]);
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
      expect(quarantined.length).toBe(1);

      const store = await InferenceLogStore.open({ dir, index: stores.logIndex });
      try {
        expect(logPageIds(await store.query(1, { limit: 100, order: 'asc' }))).toEqual([
          ...idRange(0, 5),
          ...idRange(10, 5),
        ]);
        expect(logPageIds(await store.query(2, { limit: 100, order: 'asc' }))).toEqual([
          ...idRange(100, 5),
          ...idRange(105, 5),
          ...idRange(110, 5),
        ]);
      } finally {
        await store.stop();
        await stores.close();
      }
    });
  }
});
