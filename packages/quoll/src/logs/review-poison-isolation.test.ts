import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { describe, expect, it, vi } from 'vitest';
import {
  logWriterSettings,
  noTimeValues,
  rowsOf,
  tempRoot,
} from '../../../../test/support/poison-hand-offs.js';
import { ArrowMessageEncoder } from './arrow-message-encoder.js';
import { systemClock } from '../clock/index.js';
import { openStore } from '../store/open-store.js';
import { LOG_T0, idRange, logPageIds } from '../store/conformance/inference-log-rows.js';
import { InferenceLogStore } from './inference-log-store.js';
import { LogBatchPacker, LogBatchUnpacker } from './log-batch-transfer.js';
import type { FromWriter } from './log-writer-protocol.js';
import { LogWriter } from './log-writer.js';
import { SegmentReadCache } from './segment-read-cache.js';
import { timeValues } from './segment-file.js';

const root = tempRoot('quoll-review-poison-');

/** Rows as the writer thread gets them (packed and unpacked); `poison` spoils the time column as the branch's own poison test does. */
function handOff(ids: number[], poison = false): RecordBatch {
  const packer = new LogBatchPacker();
  const job = packer.begin([[rowsOf(ids)]]);
  job.step(Number.MAX_SAFE_INTEGER);
  if (poison) noTimeValues(job.body);
  const unpacker = new LogBatchUnpacker();
  unpacker.learn(job.body.schemas);
  return unpacker.unpack(job.body)[0]![0]!;
}

async function runWriter(
  inputs: RecordBatch[][],
  segmentMaxRows: number,
  failIndex: (method: string, call: number) => boolean,
) {
  const dir = mkdtempSync(join(root, 'logs-'));
  const stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
  const calls = new Map<string, number>();
  const index = new Proxy(stores.logIndex, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const name = String(prop);
        const n = (calls.get(name) ?? 0) + 1;
        calls.set(name, n);
        // A transient failure of the index (e.g. SQLITE_BUSY, EIO): not the rows' fault.
        if (failIndex(name, n)) return Promise.reject(new Error(`transient: ${name} failed (EIO)`));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const settings = logWriterSettings(dir, {
    segmentMaxRows,
    retryDelayMs: 5,
    maxRetryDelayMs: 20,
    stopAttempts: 5,
  });
  const messages: FromWriter[] = [];
  const writer = new LogWriter(
    { root: dir, index, cache: new SegmentReadCache(dir, 0) },
    settings,
    systemClock,
    (m) => messages.push(m),
  );
  inputs.forEach((batches, i) => writer.give({ seq: i + 1, appends: [{ pipelineId: 1, batches }] }));
  writer.stop(inputs.length);
  const ok = await writer.run();
  const store = await InferenceLogStore.open({ dir, index: stores.logIndex });
  try {
    const ids = logPageIds(await store.query(1, { limit: 1000, order: 'asc' }));
    return { ok, ids, messages };
  } finally {
    await store.stop();
    await stores.close();
  }
}

describe('review: the embedded writer after a batch was set aside', () => {
  it('a transient index failure after a set-aside batch neither repeats nor loses rows', async () => {
    // One hand-off: A, the poison P, B, C (5 rows each). Segments of 10 rows: A and B fill the
    // first, C rolls to a second, whose index row fails once (transient).
    const { ok, ids, messages } = await runWriter(
      [
        [
          handOff(idRange(0, 5)),
          handOff(idRange(5, 5), true),
          handOff(idRange(10, 5)),
          handOff(idRange(15, 5)),
        ],
      ],
      10,
      (method, n) => method === 'addSegment' && n === 2,
    );
    const types = messages.map((m) => m.type);
    expect(ok, types.join(' ')).toBe(true);
    expect(types).toContain('quarantined');
    expect(ids).toEqual([...idRange(0, 5), ...idRange(10, 5), ...idRange(15, 5)]);
  });

  it('the rows set aside are only the poison batch, not healthy rows merged with it', async () => {
    // Separate hand-offs, so the writer merges them (small batches of one schema).
    const { ok, ids, messages } = await runWriter(
      [[handOff(idRange(0, 5))], [handOff(idRange(5, 5), true)], [handOff(idRange(10, 5))]],
      1_000_000,
      () => false,
    );
    const q = messages.filter((m) => m.type === 'quarantined');
    expect(ok).toBe(true);
    expect(q.map((m) => (m as { rows: number | null }).rows)).toEqual([5]);
    expect(ids).toEqual([...idRange(0, 5), ...idRange(10, 5)]);
  });

  it('a transient allocation failure (memory pressure) while encoding is not taken for poison: no acked row is dropped', async () => {
    // Two calls fail as V8 fails an ArrayBuffer allocation under memory pressure: the first in
    // the normal write, the second in the immediate isolated retry (no backoff in between).
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with its `this` below
    const original = ArrowMessageEncoder.prototype.encodeBatch;
    let calls = 0;
    const spy = vi.spyOn(ArrowMessageEncoder.prototype, 'encodeBatch').mockImplementation(function (
      this: ArrowMessageEncoder,
      ...args: Parameters<ArrowMessageEncoder['encodeBatch']>
    ) {
      if (++calls <= 2) throw new RangeError('Array buffer allocation failed');
      return original.apply(this, args);
    });
    try {
      const { ok, ids, messages } = await runWriter([[handOff(idRange(0, 5))]], 1_000_000, () => false);
      expect(ok).toBe(true);
      expect(messages.map((m) => m.type)).not.toContain('quarantined');
      expect(ids).toEqual(idRange(0, 5));
    } finally {
      spy.mockRestore();
    }
  });

  it('a poison hand-off merged by the writer with healthy neighbours: only its own rows are set aside', async () => {
    // A poison the merge does not notice: the rows of ids 5..9 cannot be encoded (deterministic,
    // the rows' own fault). Three small hand-offs, which the writer merges into one batch.
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with its `this` below
    const original = ArrowMessageEncoder.prototype.encodeBatch;
    const poisonTimes = new Set(idRange(5, 5).map((id) => BigInt(LOG_T0 + id * 10)));
    const spy = vi.spyOn(ArrowMessageEncoder.prototype, 'encodeBatch').mockImplementation(function (
      this: ArrowMessageEncoder,
      ...args: Parameters<ArrowMessageEncoder['encodeBatch']>
    ) {
      if ([...timeValues(args[0])].some((t) => poisonTimes.has(t)))
        throw new TypeError('cannot encode this column');
      return original.apply(this, args);
    });
    try {
      const { ok, ids, messages } = await runWriter(
        [[handOff(idRange(0, 5))], [handOff(idRange(5, 5))], [handOff(idRange(10, 5))]],
        1_000_000,
        () => false,
      );
      const q = messages.filter((m) => m.type === 'quarantined') as { rows: number | null }[];
      expect(ok).toBe(true);
      // docs/inference-logs.md: "The smallest thing it can set aside is one batch it was handed".
      expect(q.map((m) => m.rows)).toEqual([5]);
      expect(ids).toEqual([...idRange(0, 5), ...idRange(10, 5)]);
    } finally {
      spy.mockRestore();
    }
  });
});
