import { Worker } from 'node:worker_threads';
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
import { BufferLease } from '../threads/index.js';
import { LogBatchUnpacker } from './log-batch-transfer.js';
import type { LogPackError } from './log-batch-transfer.js';
import { LogHandOff } from './log-hand-off.js';
import { kindOf, STAGE_MAX_BYTES } from './log-staging.js';
import type { LogRowLeaf, LogRowSource } from './log-row-source.js';
import type { LogHandOffOptions, LogItemsMessage } from './log-hand-off.js';

const fields = [
  new Field('time', new TimestampMillisecond(), false),
  new Field('out.v', new Float32(), false),
];
const schema = new Schema(fields);

/** A batch of `values.length` rows at `time`, of the one shared schema. */
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

/** A batch that says it has `n` rows but holds no value in its last column: copying it fails (a RangeError). */
function torn(time: number, n: number): RecordBatch {
  const [t] = batch(
    time,
    Array.from({ length: n }, (_, i) => 100 + i),
  ).data.children;
  const v = makeData({ type: new Float32(), length: n, data: new Float32Array(0) });
  const b = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, children: [t!, v] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

/** How an append whose rows cannot be copied is refused: alone, with a stable code, the copy's error as its cause. */
const REFUSED = { code: 'log_rows_refused', cause: expect.any(RangeError) as unknown };

/** A hand-off whose "writer thread" records what it is given and reads it back as the writer would. */
function setUp(options: Partial<LogHandOffOptions> = {}) {
  const clock = new ManualClock(1_000);
  const sent: LogItemsMessage[] = [];
  let closing = false;
  const handOff = new LogHandOff({
    queueCapacityRows: 1_000,
    handOffDelayMs: 20,
    handOffRows: 100,
    clock,
    packer: {},
    closing: () => closing,
    post: (msg) => sent.push(msg),
    ...options,
  });
  let unpacker = new LogBatchUnpacker();
  /** The values of every row of a message, per pipeline (what a new writer thread reads). */
  const read = (msg: LogItemsMessage): Record<number, number[]> => {
    unpacker.learn(msg.body.schemas);
    const groups = unpacker.unpack(msg.body);
    const out: Record<number, number[]> = {};
    msg.pipelineIds.forEach((id, i) => {
      out[id] = groups[i]!.flatMap((b) => [...(b.getChild('out.v')!.toArray() as Float32Array)]);
    });
    return out;
  };
  const newWriter = (): void => {
    unpacker = new LogBatchUnpacker();
  };
  return { clock, sent, handOff, read, newWriter, close: () => (closing = true) };
}

describe('LogHandOff', () => {
  it('hands the appends of many requests over together when the timer fires, one group per pipeline in order', async () => {
    const { clock, sent, handOff, read } = setUp();
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, [1, 2])], 2);
    await handOff.push(2, [batch(1, [10])], 1);
    await handOff.push(1, [batch(2, [3])], 1);
    expect(sent).toHaveLength(0);
    await clock.advance(19);
    expect(sent).toHaveLength(0);
    await clock.advance(1);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.seq).toBe(3);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2, 3], 2: [10] });
    expect(handOff.queue.queuedRows).toBe(0);
  });

  it('copies an append’s rows when it is admitted, so the caller’s batch is not kept until the hand-off', async () => {
    const { clock, sent, handOff, read } = setUp();
    handOff.attach();
    handOff.wantsRows();
    const b = batch(1, [1, 2]);
    await handOff.push(1, [b], 2);
    // Reused by its owner once admitted: the queued rows are a copy.
    (b.getChild('out.v')!.data[0]!.values as Float32Array).fill(-1);
    await clock.advance(20);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2] });
  });

  it('keeps nothing of an admitted append in its queue, only counts it (the rows are staged)', async () => {
    const { sent, handOff, read } = setUp();
    handOff.attach();
    await handOff.push(1, [batch(1, [1])], 1);
    await handOff.push(1, [batch(1, [2])], 1);
    const queue = handOff.queue;
    expect([queue.hasItems, queue.idle, queue.queuedRows, queue.lastAdmittedSeq]).toEqual([
      true,
      false,
      2,
      2,
    ]);
    // What the writer gets carries the seq of the last admitted append and both rows.
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([2]);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2] });
    expect([queue.hasItems, queue.idle, queue.queuedRows]).toEqual([false, true, 0]);
    expect(queue.takeAll()).toEqual([]);
  });

  it('hands over at once when handOffRows are queued, or when a flush hurries, without the timer', async () => {
    const { sent, handOff } = setUp({ handOffRows: 3 });
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, [1, 2, 3])], 3);
    expect(sent).toHaveLength(1);
    // The writer has not asked again: a hurried append waits for its `ready`.
    await handOff.push(1, [batch(1, [4])], 1);
    handOff.hurry();
    expect(sent).toHaveLength(1);
    handOff.wantsRows();
    expect(sent).toHaveLength(2);
  });

  it('gives a restarted writer thread every append it was sent and did not confirm, and nothing confirmed', async () => {
    const { clock, sent, handOff, read, newWriter } = setUp();
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, [1])], 1);
    await clock.advance(20);
    handOff.wantsRows();
    await handOff.push(1, [batch(2, [2])], 1);
    await clock.advance(20);
    expect(sent.map((m) => m.seq)).toEqual([1, 2]);
    // The writer confirmed the first message, then died with the second.
    handOff.confirm(1);
    expect(handOff.hasUnconfirmed).toBe(true);
    handOff.detach();
    await handOff.push(1, [batch(3, [3])], 1);
    handOff.hurry();
    expect(sent).toHaveLength(2);
    newWriter();
    expect(handOff.attach()).toBe(2);
    expect(sent).toHaveLength(3);
    // The schema is sent again (the new thread knows none) with the unconfirmed rows only.
    expect(read(sent[2]!)).toEqual({ 1: [2] });
    handOff.confirm(2);
    expect(handOff.hasUnconfirmed).toBe(false);
    handOff.wantsRows();
    expect(read(sent[3]!)).toEqual({ 1: [3] });
  });

  it('makes appends wait for room when the queue is full (backpressure) and admits them once rows are taken', async () => {
    const { sent, handOff } = setUp({ queueCapacityRows: 4, handOffRows: 100 });
    handOff.attach();
    await handOff.push(1, [batch(1, [1, 2, 3])], 3);
    let admitted = false;
    const waiting = handOff.push(1, [batch(1, [4, 5])], 2).then(() => (admitted = true));
    await Promise.resolve();
    expect(admitted).toBe(false);
    expect(sent).toHaveLength(0);
    // A waiting append hands over without the timer as soon as the writer asks.
    handOff.wantsRows();
    await waiting;
    expect(admitted).toBe(true);
    expect(sent).toHaveLength(1);
    expect(handOff.queue.queuedRows).toBe(2);
  });

  it('rejects an append admitted at once whose rows cannot be copied, and counts neither its rows nor its seq', async () => {
    const { sent, handOff, read } = setUp();
    const queue = handOff.queue;
    handOff.attach();
    await handOff.push(1, [batch(1, [1, 2, 3])], 3);
    await expect(handOff.push(1, [torn(1, 1)], 1)).rejects.toMatchObject(REFUSED);
    expect(handOff.refusedAppends).toBe(1);
    expect([queue.queuedRows, queue.lastAdmittedSeq, queue.lastSeq]).toEqual([3, 1, 1]);
    await handOff.push(1, [batch(1, [4])], 1);
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([3]);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2, 3, 4] });
  });

  it('rejects an append waiting for room whose rows cannot be copied, and loses nothing taken before it or admitted after it', async () => {
    let lowered = 0;
    const { sent, handOff, read } = setUp({ queueCapacityRows: 4, lastSeqLowered: () => lowered++ });
    const queue = handOff.queue;
    handOff.attach();
    await handOff.push(1, [batch(1, [1, 2, 3])], 3);
    // Two appends wait for room; the first fails when the hand-off admits it.
    const failing = handOff.push(1, [torn(2, 2)], 2);
    const next = handOff.push(1, [batch(3, [4])], 1);
    const settled = { failing: '', next: '' };
    failing.then(
      () => (settled.failing = 'admitted'),
      (err: { code?: string }) => (settled.failing = err.code ?? ''),
    );
    void next.then(() => (settled.next = 'admitted'));
    expect(queue.lastSeq).toBe(3);
    try {
      handOff.wantsRows();
    } catch {
      // (the hand-off before this fix threw here, and lost the rows it had taken)
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toEqual({ failing: 'log_rows_refused', next: 'admitted' });
    // The rows taken before it went over, and stay unconfirmed until the writer confirms them.
    expect(sent.map((m) => m.seq)).toEqual([1]);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2, 3] });
    expect(handOff.hasUnconfirmed).toBe(true);
    expect([queue.queuedRows, queue.lastAdmittedSeq, queue.lastSeq, lowered]).toEqual([1, 3, 3, 0]);
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([1, 3]);
    expect(read(sent[1]!)).toEqual({ 1: [4] });
    // The last append waiting fails: the last seq goes down, and the hand-off says so (a stop waits for it).
    await handOff.push(1, [batch(5, [5, 6, 7])], 3);
    const last = handOff.push(1, [torn(6, 2)], 2);
    expect(queue.lastSeq).toBe(5);
    handOff.wantsRows();
    await expect(last).rejects.toMatchObject(REFUSED);
    expect([queue.lastAdmittedSeq, queue.lastSeq, lowered, queue.idle]).toEqual([4, 4, 1, true]);
    expect(read(sent[2]!)).toEqual({ 1: [5, 6, 7] });
  });

  it('leaves out, and tells, a kept batch that cannot be laid out when packed; the appends around it go, and later messages too', async () => {
    const dropped: LogPackError[] = [];
    const { sent, handOff, read } = setUp({
      queueCapacityRows: 100_000,
      rowsDropped: (err) => dropped.push(err),
    });
    handOff.attach();
    // Big enough to be kept as it is (not copied at admission), then spoiled before it is
    // packed: its column's values become a DataView, which the packer cannot move (an Error, not
    // a LogPackError: before, it left the hand-off throwing at every later packing).
    const n = Math.ceil(STAGE_MAX_BYTES / 12) + 1;
    const big = batch(
      2,
      Array.from({ length: n }, (_, i) => i),
    );
    await handOff.push(1, [batch(1, [1, 2])], 2);
    await handOff.push(1, [big], n);
    await handOff.push(2, [batch(3, [3])], 1);
    Object.defineProperty(big.data.children[1]!, 'values', { value: new DataView(new ArrayBuffer(8)) });
    handOff.hurry();
    handOff.wantsRows();
    expect(dropped.map((err) => [err.entries, (err.cause as Error).message])).toEqual([
      [[big], 'log writer: cannot move an Arrow buffer of type DataView'],
    ]);
    expect(sent.map((m) => m.seq)).toEqual([3]);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2], 2: [3] });
    handOff.confirm(3);
    await handOff.push(1, [batch(4, [4])], 1);
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([3, 4]);
    expect(read(sent[1]!)).toEqual({ 1: [4] });
  });

  it('leaves out only a kept batch whose layout throws when the next entry of its group ends its run; its neighbours and later messages go', async () => {
    const dropped: LogPackError[] = [];
    const { sent, handOff, read } = setUp({
      queueCapacityRows: 100_000,
      rowsDropped: (err) => dropped.push(err),
    });
    handOff.attach();
    const n = Math.ceil(STAGE_MAX_BYTES / 12) + 1;
    const big = batch(
      2,
      Array.from({ length: n }, (_, i) => i),
    );
    // Admitted (every check passed) and acknowledged: the caller's append resolves.
    await handOff.append(1, batch(1, [1, 2]));
    await expect(handOff.append(1, big)).resolves.toBeUndefined();
    // A small append after it is staged as a new run, so laying it out ends the kept batch's
    // run: the packer's per-entry wrapper, not the one after the group, sees the failure.
    await handOff.append(1, batch(3, [3]));
    await handOff.append(2, batch(4, [4]));
    // Spoiled after admission: the packer cannot move a DataView (a plain Error, not a LogPackError).
    Object.defineProperty(big.data.children[1]!, 'values', { value: new DataView(new ArrayBuffer(8)) });
    handOff.hurry();
    expect(() => handOff.wantsRows()).not.toThrow();
    expect(dropped.map((err) => [err.entries, (err.cause as Error).message])).toEqual([
      [[big], 'log writer: cannot move an Arrow buffer of type DataView'],
    ]);
    // Packing failed after the append was acknowledged: it is left out and told, not refused.
    expect(handOff.refusedAppends).toBe(0);
    expect(sent.map((m) => m.seq)).toEqual([4]);
    expect(read(sent[0]!)).toEqual({ 1: [1, 2, 3], 2: [4] });
    handOff.confirm(4);
    await handOff.append(1, batch(5, [5]));
    handOff.hurry();
    handOff.wantsRows();
    expect(sent.map((m) => m.seq)).toEqual([4, 5]);
    expect(read(sent[1]!)).toEqual({ 1: [5] });
  });

  it('hands over without the timer while closing, and close() leaves no timer behind', async () => {
    const { clock, sent, handOff, close } = setUp();
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(1, [1])], 1);
    expect(clock.pendingTimers).toBe(1);
    handOff.close();
    expect(clock.pendingTimers).toBe(0);
    close();
    await handOff.push(1, [batch(1, [2])], 1);
    handOff.hurry();
    expect(sent).toHaveLength(1);
  });

  describe('buffers lent by another thread (a BufferLease, as a model worker lends the echoed columns)', () => {
    /** A lease over the buffer of the batch's `out.v` values, as the request thread holds it; `freed` counts its frees. */
    function lent(b: RecordBatch): { lease: BufferLease; freed: () => number } {
      let freed = 0;
      const values = b.getChild('out.v')!.data[0]!.values as Float32Array;
      const lease = new BufferLease([values.buffer as ArrayBuffer], () => freed++);
      return { lease, freed: () => freed };
    }
    const rowsOf = (n: number, from: number): number[] => Array.from({ length: n }, (_, i) => from + i);
    // 12 bytes a row: 3000 rows are kept as they are, 10 are copied.
    const BIG = 3000;

    it('holds the lease of a batch it keeps until the writer confirms it, through a writer restart', async () => {
      expect(BIG * 12).toBeGreaterThanOrEqual(STAGE_MAX_BYTES);
      const { sent, handOff, read, newWriter } = setUp({ queueCapacityRows: 10_000, handOffRows: 10_000 });
      handOff.attach();
      handOff.wantsRows();
      const big = batch(1, rowsOf(BIG, 0));
      const { lease, freed } = lent(big);
      await handOff.push(1, [big], BIG);
      // The request is done with it (answer written, append admitted): the log still reads it.
      lease.release();
      expect([freed(), lease.held]).toEqual([0, true]);
      handOff.hurry();
      expect(sent).toHaveLength(1);
      expect(freed()).toBe(0);
      // The writer died before confirming: the new one is given the batch again, still intact.
      handOff.detach();
      newWriter();
      handOff.attach();
      expect(sent).toHaveLength(2);
      expect(read(sent[1]!)).toEqual({ 1: rowsOf(BIG, 0) });
      expect(freed()).toBe(0);
      handOff.confirm(sent[1]!.seq);
      expect([freed(), lease.held]).toEqual([1, false]);
    });

    it('takes no hold on a batch it copies: the lease is freed when the request lets go', async () => {
      const { sent, handOff, read } = setUp();
      handOff.attach();
      handOff.wantsRows();
      const small = batch(1, rowsOf(10, 0));
      const { lease, freed } = lent(small);
      await handOff.push(1, [small], 10);
      lease.release();
      expect(freed()).toBe(1);
      // Overwritten once freed (what the worker's next scan would do): the log copied it already.
      (small.getChild('out.v')!.data[0]!.values as Float32Array).fill(-1);
      handOff.hurry();
      expect(read(sent[0]!)).toEqual({ 1: rowsOf(10, 0) });
    });

    it('lets go of a kept batch whose append fails (another batch of it cannot be copied)', async () => {
      const { handOff } = setUp({ queueCapacityRows: 10_000 });
      handOff.attach();
      const big = batch(1, rowsOf(BIG, 0));
      const { lease, freed } = lent(big);
      await expect(handOff.push(1, [big, torn(1, 1)], BIG + 1)).rejects.toMatchObject(REFUSED);
      expect(freed()).toBe(0);
      lease.release();
      expect(freed()).toBe(1);
    });

    it('refuses to keep a batch whose lease is already freed, and holds none of the append', async () => {
      const { handOff } = setUp({ queueCapacityRows: 10_000 });
      handOff.attach();
      const first = batch(1, rowsOf(BIG, 0));
      const second = batch(2, rowsOf(BIG, 0));
      const kept = lent(first);
      const gone = lent(second);
      gone.lease.release();
      // The client's message is fixed; why is in the cause, for the server log.
      const err = await handOff.push(1, [first, second], 2 * BIG).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err).toMatchObject({ code: 'log_rows_refused' });
      expect(String((err?.cause as Error | undefined)?.message)).toMatch(/already handed back/);
      kept.lease.release();
      expect(kept.freed()).toBe(1);
    });
  });
});

describe('LogHandOff: the bytes a writer thread reads', () => {
  /** A stand-in writer thread: posts back each message it is given, as it received it (nothing transferred). */
  function echoWriter(): { worker: Worker; got: LogItemsMessage[]; next: () => Promise<LogItemsMessage> } {
    const worker = new Worker(
      `require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m));`,
      { eval: true },
    );
    const got: LogItemsMessage[] = [];
    let wake: (() => void) | null = null;
    worker.on('message', (m: LogItemsMessage) => {
      got.push(m);
      wake?.();
    });
    const next = async (): Promise<LogItemsMessage> => {
      const n = got.length;
      while (got.length === n) await new Promise<void>((r) => (wake = r));
      return got.at(-1)!;
    };
    return { worker, got, next };
  }

  it('never changes rows a writer may still read: the buffers of a message are reused only once the writer confirmed it', async () => {
    const { clock, sent, handOff, newWriter } = setUp();
    handOff.attach();
    handOff.wantsRows();
    await handOff.push(1, [batch(0, [7, 8, 9])], 3);
    await clock.advance(20);
    handOff.wantsRows();
    await handOff.push(1, [batch(1, [1, 2, 3])], 3);
    await clock.advance(20);
    expect(sent).toHaveLength(2);
    // What the writer holds of the second message (views of its bytes), not confirmed yet.
    const unpacker = new LogBatchUnpacker();
    unpacker.learn(sent[0]!.body.schemas);
    const [[second]] = unpacker.unpack(sent[1]!.body) as [[RecordBatch]];
    // Every column: a reused buffer may come back as any leaf of a later run.
    const held = (): unknown[] => [
      ...(second.getChild('time')!.data[0]!.values as BigInt64Array),
      ...(second.getChild('out.v')!.toArray() as Float32Array),
    ];
    // The first is confirmed: its buffers are free for the rows that come next.
    handOff.confirm(sent[0]!.seq);
    for (let i = 0; i < 5; i++) {
      handOff.wantsRows();
      await handOff.push(1, [batch(2 + i, [10 * i, 10 * i + 1, 10 * i + 2])], 3);
      await clock.advance(20);
      expect(held()).toEqual([1n, 1n, 1n, 1, 2, 3]);
    }
    // The writer dies; rows staged meanwhile, and the restarted writer given its rows again.
    handOff.detach();
    await handOff.push(1, [batch(9, [90, 91, 92])], 3);
    newWriter();
    handOff.attach();
    // The six messages not confirmed, sent again.
    expect(sent.slice(7).map((m) => m.seq)).toEqual(sent.slice(1, 7).map((m) => m.seq));
    expect(held()).toEqual([1n, 1n, 1n, 1, 2, 3]);
  });

  it('gives a writer thread killed after it got rows, before it confirmed them, to the restarted one once and intact (real threads)', async () => {
    let writer = echoWriter();
    const { clock, handOff } = setUp({ post: (msg, transfer) => writer.worker.postMessage(msg, transfer) });
    try {
      handOff.attach();
      handOff.wantsRows();
      await handOff.push(1, [batch(1, [1, 2])], 2);
      await handOff.push(2, [batch(1, [5])], 1);
      await handOff.push(1, [batch(2, [3])], 1);
      await clock.advance(20);
      const got = await writer.next();
      const unpacker = new LogBatchUnpacker();
      unpacker.learn(got.body.schemas);
      const values = (m: LogItemsMessage, u: LogBatchUnpacker): Record<number, number[]> => {
        const groups = u.unpack(m.body);
        return Object.fromEntries(
          m.pipelineIds.map((id, i) => [
            id,
            groups[i]!.flatMap((b) => [...(b.getChild('out.v')!.toArray() as Float32Array)]),
          ]),
        );
      };
      expect(values(got, unpacker)).toEqual({ 1: [1, 2, 3], 2: [5] });
      // Killed before confirming; rows come meanwhile (they must not take its buffers).
      await writer.worker.terminate();
      handOff.detach();
      await handOff.push(1, [batch(3, [4])], 1);
      await handOff.push(2, [batch(3, [6, 7])], 2);
      handOff.hurry();
      writer = echoWriter();
      expect(handOff.attach()).toBe(got.seq);
      const again = await writer.next();
      const fresh = new LogBatchUnpacker();
      fresh.learn(again.body.schemas);
      expect(again.seq).toBe(got.seq);
      expect(values(again, fresh)).toEqual({ 1: [1, 2, 3], 2: [5] });
      handOff.confirm(again.seq);
      handOff.wantsRows();
      expect(values(await writer.next(), fresh)).toEqual({ 1: [4], 2: [6, 7] });
      expect(writer.got).toHaveLength(2);
    } finally {
      await writer.worker.terminate();
    }
  });
});

// The hand-off's paths for rows that write themselves into the staging (JSON records' results,
// `LogRowSource`): a source admitted from the backpressure wait, and sources and tables merged
// into one run, either one first.

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

/** A hand-off whose "writer thread" reads back, per pipeline, how many batches it got and every value. */
function setUpSources(queueCapacityRows: number) {
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
    const { sent, handOff, read } = setUpSources(4);
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
    const { clock, sent, handOff, read } = setUpSources(1_000);
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
