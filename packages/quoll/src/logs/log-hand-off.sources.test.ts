import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
import { ManualClock } from '../clock/index.js';
import { LogBatchUnpacker } from './log-batch-transfer.js';
import { LogHandOff } from './log-hand-off.js';
import type { LogItemsMessage } from './log-hand-off.js';
import type { LogRowLeaf, LogRowSource } from './log-row-source.js';
import { kindOf } from './log-staging.js';

// The hand-off's paths for rows that write themselves into the staging (JSON records' results,
// `LogRowSource`) that `log-hand-off.test.ts` covers for tables only: a source admitted from the
// backpressure wait, and sources and tables merged into one run, either one first.

const fields = [
  new Field('time', new TimestampMillisecond(), false),
  new Field('out.v', new Float32(), false),
];
const schema = new Schema(fields);

function batch(time: number, values: number[]): RecordBatch {
  const n = values.length;
  const t = makeData({
    type: new TimestampMillisecond(),
    length: n,
    data: BigInt64Array.from(values, () => BigInt(time)) as never,
  });
  const v = makeData({ type: new Float32(), length: n, data: Float32Array.from(values) });
  const b = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, children: [t, v] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

/**
 * A source over a batch's columns, as `InferenceResult.logRows()` gives: it reads the columns
 * when the staging asks (`writeLeaf`), so what it writes is what they hold at admission.
 * `reads` counts the leaves written.
 */
class BatchSource implements LogRowSource {
  readonly kind = 'log-row-source' as const;
  readonly schema = schema;
  readonly numRows: number;
  readonly leaves: readonly LogRowLeaf[];
  readonly byteLength: number;
  reads = 0;
  readonly #columns: ArrayBufferView[];

  constructor(readonly batch: RecordBatch) {
    this.numRows = batch.numRows;
    this.#columns = batch.data.children.map((c) => c.values as ArrayBufferView);
    this.leaves = this.#columns.map((v) => ({ kind: kindOf(v), width: 1 }));
    this.byteLength = batch.data.byteLength;
  }

  writeLeaf(index: number, target: ArrayBufferView): void {
    const from = this.#columns[index]!;
    new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(
      new Uint8Array(from.buffer, from.byteOffset, from.byteLength),
    );
    this.reads++;
  }

  toTable(): Table {
    return new Table([this.batch]);
  }
}

function setUp(queueCapacityRows: number) {
  const clock = new ManualClock(1_000);
  const sent: LogItemsMessage[] = [];
  const handOff = new LogHandOff({
    queueCapacityRows,
    handOffDelayMs: 20,
    handOffRows: 100,
    clock,
    packer: {},
    closing: () => false,
    post: (msg) => sent.push(msg),
  });
  const unpacker = new LogBatchUnpacker();
  /** Per pipeline: how many batches the writer gets, and every row's value in order. */
  const read = (msg: LogItemsMessage): Record<number, { batches: number; values: number[] }> => {
    unpacker.learn(msg.body.schemas);
    const groups = unpacker.unpack(msg.body);
    const out: Record<number, { batches: number; values: number[] }> = {};
    msg.pipelineIds.forEach((id, i) => {
      const group = groups[i]!;
      out[id] = {
        batches: group.length,
        values: group.flatMap((b) => [...(b.getChild('out.v')!.toArray() as Float32Array)]),
      };
    });
    return out;
  };
  return { clock, sent, handOff, read };
}

describe('LogHandOff with row sources', () => {
  it('reads a source that waits for room when it is admitted, and hands its rows over in order', async () => {
    const { sent, handOff, read } = setUp(4);
    handOff.attach();
    await handOff.push(1, [batch(1, [1, 2, 3])], 3);
    const b = batch(1, [4, 5]);
    const source = new BatchSource(b);
    let admitted = false;
    const waiting = handOff.push(1, [source], 2).then(() => (admitted = true));
    await Promise.resolve();
    // Waiting: nothing of it is read yet, so its owner's later writes are what gets logged.
    expect([admitted, source.reads]).toEqual([false, 0]);
    (b.getChild('out.v')!.data[0]!.values as Float32Array).set([40, 50]);
    // The writer asks: the queued rows go, which admits the source (read now, once per leaf).
    handOff.wantsRows();
    await waiting;
    expect([admitted, source.reads]).toEqual([true, 2]);
    expect(read(sent[0]!)).toEqual({ 1: { batches: 1, values: [1, 2, 3] } });
    // Admitted means copied: a later change of its columns does not reach the log.
    (b.getChild('out.v')!.data[0]!.values as Float32Array).fill(-1);
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([1, 2]);
    expect(read(sent[1]!)).toEqual({ 1: { batches: 1, values: [40, 50] } });
    expect(handOff.queue.queuedRows).toBe(0);
  });

  it('merges a source into the run a table started, and a table into the run a source started', async () => {
    const { clock, sent, handOff, read } = setUp(1_000);
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, [1, 2])], 2);
    await handOff.push(1, [new BatchSource(batch(2, [3]))], 1);
    await handOff.push(2, [new BatchSource(batch(2, [10, 11]))], 2);
    await handOff.push(2, [batch(3, [12])], 1);
    await handOff.push(1, [new BatchSource(batch(3, [4, 5]))], 2);
    await clock.advance(20);
    expect(sent).toHaveLength(1);
    // One merged batch per pipeline, rows in arrival order: tables and sources share the runs.
    expect(read(sent[0]!)).toEqual({
      1: { batches: 1, values: [1, 2, 3, 4, 5] },
      2: { batches: 1, values: [10, 11, 12] },
    });
  });
});
