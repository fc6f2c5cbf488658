import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { describe, expect, it, vi } from 'vitest';
import { logWriterSettings, rowsOf, tempRoot } from '../../../../test/support/poison-hand-offs.js';
import { ManualClock } from '../clock/index.js';
import { openStore } from '../store/open-store.js';
import { idRange } from '../store/conformance/inference-log-rows.js';
import { LogBatchPacker, LogBatchUnpacker } from './log-batch-transfer.js';
import type { FromWriter } from './log-writer-protocol.js';
import { LogWriter } from './log-writer.js';
import { SegmentReadCache } from './segment-read-cache.js';

const root = tempRoot('quoll-sync-ahead-');

/** Rows as the writer thread gets them (packed and unpacked). */
function handOff(ids: number[]): RecordBatch {
  const packer = new LogBatchPacker();
  const job = packer.begin([[rowsOf(ids)]]);
  job.step(Number.MAX_SAFE_INTEGER);
  const unpacker = new LogBatchUnpacker();
  unpacker.learn(job.body.schemas);
  return unpacker.unpack(job.body)[0]![0]!;
}

/** A writer on a manual clock (`syncIntervalMs` 150), its messages, and a way to wait for one. */
async function start(syncAheadMs: number) {
  const dir = mkdtempSync(join(root, 'logs-'));
  const stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
  const clock = new ManualClock(1_000_000);
  const messages: FromWriter[] = [];
  const writer = new LogWriter(
    { root: dir, index: stores.logIndex, cache: new SegmentReadCache(dir, 0) },
    logWriterSettings(dir, { syncIntervalMs: 150, syncAheadMs }),
    clock,
    (m) => messages.push(m),
  );
  const running = writer.run();
  const ready = (seq: number) =>
    vi.waitFor(() => {
      expect(messages.some((m) => m.type === 'ready' && m.writtenSeq >= seq)).toBe(true);
    });
  const durableSeqs = () => messages.flatMap((m) => (m.type === 'durable' ? [m.seq] : []));
  const end = async (lastSeq: number) => {
    writer.stop(lastSeq);
    expect(await running).toBe(true);
    await stores.close();
  };
  return { writer, clock, ready, durableSeqs, end };
}

describe('LogWriter: a sync that falls due before the next hand-off is done with the write', () => {
  it('syncs right after a write made within syncAheadMs of the sync deadline (no timer wake of its own)', async () => {
    const w = await start(50);
    w.writer.give({ seq: 1, appends: [{ pipelineId: 1, batches: [handOff(idRange(0, 5))] }] });
    await w.ready(1);
    // 0 ms since the last sync: not within 50 ms of the 150 ms deadline, so no sync yet.
    expect(w.durableSeqs()).toEqual([]);
    await w.clock.advance(100);
    expect(w.durableSeqs()).toEqual([]);
    // 100 ms: the deadline (150) is within 50 ms, sooner than the next hand-off could come.
    w.writer.give({ seq: 2, appends: [{ pipelineId: 1, batches: [handOff(idRange(5, 5))] }] });
    await w.ready(2);
    expect(w.durableSeqs()).toEqual([2]);
    await w.end(2);
  });

  it('without syncAheadMs the sync waits for its deadline', async () => {
    const w = await start(0);
    w.writer.give({ seq: 1, appends: [{ pipelineId: 1, batches: [handOff(idRange(0, 5))] }] });
    await w.ready(1);
    await w.clock.advance(100);
    w.writer.give({ seq: 2, appends: [{ pipelineId: 1, batches: [handOff(idRange(5, 5))] }] });
    await w.ready(2);
    expect(w.durableSeqs()).toEqual([]);
    // The timer's own wake at the deadline.
    await w.clock.advance(50);
    await vi.waitFor(() => expect(w.durableSeqs()).toEqual([2]));
    await w.end(2);
  });
});
