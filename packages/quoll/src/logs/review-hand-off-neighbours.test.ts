import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  RecordBatch,
  Table,
  Schema,
  Struct,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
import { ManualClock } from '../clock/index.js';
import { LogBatchUnpacker } from './log-batch-transfer.js';
import type { LogPackError } from './log-batch-transfer.js';
import { LogHandOff } from './log-hand-off.js';
import type { LogItemsMessage } from './log-hand-off.js';
import { STAGE_MAX_BYTES, kindOf } from './log-staging.js';
import type { LogRowSource } from './log-row-source.js';

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

describe('review: LogHandOff drops only the entry that cannot be packed', () => {
  it('a kept (big) batch spoiled before packing takes only its own rows out, not the acknowledged big append merged beside it', async () => {
    const dropped: LogPackError[] = [];
    const sent: LogItemsMessage[] = [];
    const handOff = new LogHandOff({
      queueCapacityRows: 100_000,
      handOffDelayMs: 20,
      handOffRows: 100_000,
      clock: new ManualClock(1_000),
      packer: {},
      closing: () => false,
      post: (msg) => sent.push(msg),
      rowsDropped: (err) => dropped.push(err),
    });
    handOff.attach();
    // Two appends big enough to be kept as they are (not copied at admission) and small
    // enough to be merged into one run by the packer (same schema, under its caps).
    const n = Math.ceil(STAGE_MAX_BYTES / 12) + 1;
    const goodBig = batch(
      1,
      Array.from({ length: n }, (_, i) => i),
    );
    const badBig = batch(
      2,
      Array.from({ length: n }, (_, i) => n + i),
    );
    await handOff.append(1, goodBig);
    await handOff.append(1, badBig);
    // Both appends are acknowledged. The second is spoiled before it is packed (as the
    // hand-off's own test spoils one).
    Object.defineProperty(badBig.data.children[1]!, 'values', { value: new Float32Array(1) });
    handOff.hurry();
    handOff.wantsRows();
    expect(
      dropped
        .flatMap((err) => err.entries)
        .map((e) => (e === badBig ? 'bad' : e === goodBig ? 'good' : 'other')),
    ).toEqual(['bad']);
    expect(sent).toHaveLength(1);
    const unpacker = new LogBatchUnpacker();
    unpacker.learn(sent[0]!.body.schemas);
    const rows = unpacker.unpack(sent[0]!.body)[0]!.reduce((k, b) => k + b.numRows, 0);
    expect(rows).toBe(n);
  });

  it('a row source that throws is refused with log_rows_refused whose client message does not carry the raw error text (the server log has it)', async () => {
    const handOff = new LogHandOff({
      queueCapacityRows: 1_000,
      handOffDelayMs: 20,
      handOffRows: 100,
      clock: new ManualClock(1_000),
      packer: {},
      closing: () => false,
      post: () => undefined,
    });
    handOff.attach();
    const good = batch(1, [1, 2, 3]);
    const source: LogRowSource = {
      kind: 'log-row-source',
      schema,
      numRows: 3,
      leaves: [
        { kind: kindOf(new BigInt64Array(0)), width: 1 },
        { kind: kindOf(new Float32Array(0)), width: 1 },
      ],
      byteLength: 36,
      writeLeaf(): void {
        throw new TypeError('cannot convert /srv/quoll-home/secret-model/weights.bin input "card=4111"');
      },
      toTable: () => new Table([good]),
    };
    const err = await handOff.append(1, source).then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err?.code).toBe('log_rows_refused');
    expect(err?.message).not.toContain('4111');
    expect(err?.message).not.toContain('/srv/quoll-home');
  });

  it("a row source whose numRows is NaN is refused alone; the next request's append is admitted and the queue goes idle", async () => {
    const handOff = new LogHandOff({
      queueCapacityRows: 1_000,
      handOffDelayMs: 20,
      handOffRows: 100,
      clock: new ManualClock(1_000),
      packer: {},
      closing: () => false,
      post: () => undefined,
    });
    handOff.attach();
    const source: LogRowSource = {
      kind: 'log-row-source',
      schema,
      numRows: NaN,
      leaves: [
        { kind: kindOf(new BigInt64Array(0)), width: 1 },
        { kind: kindOf(new Float32Array(0)), width: 1 },
      ],
      byteLength: 36,
      writeLeaf(): void {},
      toTable: () => new Table([batch(1, [1, 2, 3])]),
    };
    await handOff.append(1, batch(1, [1]));
    const outcome: string[] = [];
    void handOff.append(1, source).then(
      () => outcome.push('source resolved'),
      (e: unknown) => outcome.push(`source ${(e as { code?: string }).code}`),
    );
    void handOff.append(1, batch(2, [2])).then(() => outcome.push('next resolved'));
    handOff.hurry();
    handOff.wantsRows();
    // Turns of the event loop, no timer: admission is synchronous when the queue has room.
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(outcome.sort()).toEqual(['next resolved', 'source log_rows_refused']);
    expect(handOff.queue.queuedRows).toBe(0);
  });
});
