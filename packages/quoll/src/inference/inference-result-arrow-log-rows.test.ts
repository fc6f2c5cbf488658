import { describe, expect, it } from 'vitest';
import {
  Data,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int8,
  Int64,
  Table,
  TimestampMillisecond,
  Uint16,
  Vector,
  makeData,
  tableToIPC,
  vectorFromArray,
  Utf8,
} from 'apache-arrow';
import type { DataType } from 'apache-arrow';
import { ManualClock } from '../clock/index.js';
import {
  admitLogRows,
  isLogRowSource,
  LogBatchUnpacker,
  LogHandOff,
  LogStaging,
  StagedRun,
} from '../logs/index.js';
import type { LogItemsMessage, LogRowSource, StagedRows } from '../logs/index.js';
import { BufferLease } from '../threads/index.js';
import { decodeArrowTable } from './inference-input.js';
import { InferenceResult } from './inference-result.js';
import type { WireTensor } from './tensor-data.js';

const LIMITS = { maxRows: 100_000, maxBytes: 64 * 1024 * 1024 };

/** Every staged entry: a run's schema, rows, bytes and leaves (kind and bytes), or a kept entry's rows. */
function snapshot(staged: StagedRows): unknown[] {
  const out: unknown[] = [];
  for (const [pipelineId, group] of staged.groups)
    for (const entry of group) {
      if (!(entry instanceof StagedRun)) {
        out.push({ pipelineId, kept: entry.numRows, schema: entry.schema, source: isLogRowSource(entry) });
        continue;
      }
      out.push({
        pipelineId,
        schema: entry.schema,
        id: entry.id,
        rows: entry.rows,
        bytes: entry.bytes,
        leaves: entry.leaves.map((l) => ({
          kind: l.kind,
          bytes: Buffer.from(l.buf.subarray(0, l.used)).toString('hex'),
        })),
      });
    }
  return out;
}

/** Overwrites every value buffer of a table with 0xa5 bytes (garbage the staging must not keep). */
function garbage(table: Table): Table {
  const visit = (d: Data): void => {
    const v = d.values as ArrayBufferView | undefined;
    if (v !== undefined) new Uint8Array(v.buffer, v.byteOffset, v.byteLength).fill(0xa5);
    for (const c of d.children) visit(c);
  };
  for (const b of table.batches) visit(b.data);
  return table;
}

/** `values` as one column of `rows` rows: nested non-nullable FixedSizeLists of `shape` over the leaf `type`. */
function listColumn(type: DataType, values: ArrayBufferView & { length: number }, shape: number[]): Data {
  let data: Data = makeData({ type, length: values.length, data: values } as never);
  let length = values.length;
  for (let level = shape.length - 1; level >= 0; level--) {
    length /= shape[level]!;
    const list = new FixedSizeList(shape[level]!, new Field('item', data.type, false));
    data = makeData({ type: list, length, nullCount: 0, child: data });
  }
  return data;
}

function fp32(rows: number, width = 18): Float32Array {
  return Float32Array.from({ length: rows * width }, (_, i) => i * 0.5 - 7);
}

function variable(rows: number): WireTensor {
  return {
    name: 'variable',
    type: 'float32',
    dims: [rows, 1],
    data: Float32Array.from({ length: rows }, (_, i) => i * 1.25 - 3),
  };
}

/** The bench's request: an IPC file of `rows` rows of FixedSizeList[18]<Float32>, decoded as the server decodes it. */
function benchTable(rows: number): Table {
  const table = new Table({ tensor: new Vector([listColumn(new Float32(), fp32(rows), [18])]) });
  return decodeArrowTable(tableToIPC(table, 'file'));
}

function result(
  table: Table,
  outputs: WireTensor[],
  columns = table.schema.fields.map((f) => f.name),
): InferenceResult {
  return new InferenceResult({ kind: 'arrow', table }, columns, outputs, table.numRows, 1_733_200_000_789);
}

interface ArrowLogCase {
  name: string;
  /** Whether `logRows()` gives a row source (else the result table). */
  source: boolean;
  make: () => InferenceResult;
}

function arrowLogCases(): ArrowLogCase[] {
  /** Five columns of five rows (`time`: with a Timestamp column, which the server's decoder refuses). */
  const several = (time = true): Table => {
    const grid = listColumn(
      new Int64(),
      BigInt64Array.from({ length: 30 }, (_, i) => BigInt(i) - 9n),
      [2, 3],
    );
    const wide = listColumn(
      new Float64(),
      Float64Array.from({ length: 20 }, (_, i) => i / 3),
      [4],
    );
    const small = makeData({
      type: new Uint16(),
      length: 5,
      data: Uint16Array.from({ length: 5 }, (_, i) => 65_530 + i),
    });
    const tiny = listColumn(
      new Int8(),
      Int8Array.from({ length: 10 }, (_, i) => i * 25 - 128),
      [2],
    );
    const when = makeData({
      type: new TimestampMillisecond(),
      length: 5,
      data: BigInt64Array.from({ length: 5 }, (_, i) => 1_700_000_000_000n + BigInt(i)),
    });
    return new Table({
      grid: new Vector([grid]),
      wide: new Vector([wide]),
      small: new Vector([small]),
      tiny: new Vector([tiny]),
      ...(time ? { when: new Vector([when]) } : {}),
    });
  };
  // Fresh per result: the garbage written over a table's buffers reaches the outputs it views.
  const int32Output = (): WireTensor => ({
    name: 'label',
    type: 'int32',
    dims: [5],
    data: Int32Array.from({ length: 5 }, (_, i) => -i),
  });
  return [
    {
      name: 'the bench body: FixedSizeList[18]<Float32> × 100 decoded from an IPC file, one float32 output',
      source: true,
      make: () => result(benchTable(100), [variable(100)]),
    },
    {
      name: 'built in memory: FixedSizeList[18]<Float32> × 7',
      source: true,
      make: () =>
        result(new Table({ tensor: new Vector([listColumn(new Float32(), fp32(7), [18])]) }), [variable(7)]),
    },
    {
      name: 'Int64 [5, 2, 3], Float64 [5, 4], Uint16 [5], Int8 [5, 2], Timestamp(ms) [5]; an int32 output',
      source: true,
      make: () => result(several(), [int32Output()]),
    },
    {
      name: 'the same decoded from an IPC stream, columns in another order than the input schema',
      source: true,
      make: () => {
        const table = decodeArrowTable(tableToIPC(several(false), 'stream'));
        return result(table, [int32Output()], ['tiny', 'grid', 'wide', 'small']);
      },
    },
    {
      name: 'only some of the input columns',
      source: true,
      make: () => result(several(), [int32Output()], ['wide', 'tiny']),
    },
    {
      name: 'a sliced table (rows 3 to 13 of 20)',
      source: true,
      make: () => {
        const table = new Table({ tensor: new Vector([listColumn(new Float32(), fp32(20), [18])]) }).slice(
          3,
          13,
        );
        return result(table, [variable(10)]);
      },
    },
    {
      name: 'a chunked table (two batches: the table is logged, one result batch per chunk)',
      source: false,
      make: () => {
        const table = new Table({
          tensor: new Vector([
            listColumn(new Float32(), fp32(4), [18]),
            listColumn(new Float32(), fp32(3), [18]),
          ]),
        });
        return result(table, [variable(7)]);
      },
    },
    {
      name: 'a column with nulls (the table is logged, kept as it is)',
      source: false,
      make: () => {
        const table = new Table({ x: vectorFromArray([1.5, null, 3, 4], new Float64()) });
        return result(table, [variable(4)]);
      },
    },
    {
      name: 'a list column with a null row (the table is logged)',
      source: false,
      make: () => {
        const child = makeData({ type: new Float32(), length: 6, data: fp32(3, 2) });
        const type = new FixedSizeList(2, new Field('item', new Float32(), false));
        const nullBitmap = Uint8Array.of(0b101);
        const data = makeData({ type, length: 3, nullCount: 1, nullBitmap, child });
        return result(new Table({ pair: new Vector([data]) }), [variable(3)]);
      },
    },
    {
      name: 'a string column (not fixed-width: the table is logged)',
      source: false,
      make: () => result(new Table({ name: vectorFromArray(['a', 'bc', 'def'], new Utf8()) }), [variable(3)]),
    },
    {
      name: 'a bool output (not fixed-width numbers: the table is logged)',
      source: false,
      make: () =>
        result(benchTable(4), [
          { name: 'yes', type: 'bool', dims: [4, 1], data: Uint8Array.from([1, 0, 0, 1]) },
        ]),
    },
    {
      name: 'FixedSizeList[18]<Float32> × 600 (32 KiB or more: the table is kept, as before)',
      source: false,
      make: () => result(benchTable(600), [variable(600)]),
    },
  ];
}

describe('InferenceResult.logRows for Arrow inputs (the input columns copied straight into the log staging)', () => {
  for (const c of arrowLogCases()) {
    it(`stages the same schema and bytes as the result table: ${c.name}`, () => {
      const old = new LogStaging(LIMITS);
      for (let k = 0; k < 3; k++) old.add(1, admitLogRows(1, c.make().toArrowTable()).batches);

      const direct = new LogStaging(LIMITS);
      // The pool first holds buffers of garbage of the run's sizes: every byte must be written.
      direct.add(1, admitLogRows(1, garbage(c.make().toArrowTable())).batches);
      direct.release(direct.take());
      for (let k = 0; k < 3; k++) {
        const rows = c.make().logRows();
        expect(isLogRowSource(rows)).toBe(c.source);
        if (!c.source) expect(rows).toBeInstanceOf(Table);
        direct.add(1, admitLogRows(1, rows).batches);
      }
      expect(snapshot(direct.take())).toEqual(snapshot(old.take()));
    });
  }

  for (const c of arrowLogCases().filter((x) => x.source)) {
    it(`writes every element of each leaf, whole and in slices of rows, as the table holds it, over garbage: ${c.name}`, () => {
      const source = c.make().logRows() as LogRowSource;
      const table = c.make().toArrowTable();
      expect(source.schema).toBe(table.schema);
      expect(source.numRows).toBe(table.numRows);
      expect(table.batches.length).toBe(1);
      expect(source.byteLength).toBe(table.batches[0]!.data.byteLength);
      const leaves: ArrayBufferView[] = [];
      const visit = (d: Data, length: number): void => {
        if (d.children.length > 0)
          for (const child of d.children) visit(child, length * (d.type as FixedSizeList).listSize);
        else {
          const v = d.values as ArrayBufferView & { subarray(a: number, b: number): ArrayBufferView };
          leaves.push(v.subarray(0, length));
        }
      };
      for (const column of table.batches[0]!.data.children) visit(column, table.numRows);
      expect(source.leaves?.length).toBe(leaves.length);
      leaves.forEach((values, i) => {
        const leaf = source.leaves![i]!;
        const T = values.constructor as new (n: number) => ArrayBufferView;
        const expected = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
        const whole = new T(source.numRows * leaf.width);
        new Uint8Array(whole.buffer).fill(0xa5);
        source.writeLeaf(i, whole);
        expect(Buffer.from(whole.buffer).equals(expected), `leaf ${i} whole`).toBe(true);
        for (const size of [1, 3, source.numRows + 5]) {
          const target = new T(source.numRows * leaf.width);
          new Uint8Array(target.buffer).fill(0xa5);
          const write = source.leafWriter!(i, target);
          for (let written = 0; written < source.numRows; written += size) write(size);
          expect(Buffer.from(target.buffer).equals(expected), `leaf ${i} in slices of ${size}`).toBe(true);
        }
      });
    });
  }

  it('logs the table of an input whose values are not of their type’s array (refused as before)', () => {
    // Float32 lists whose items hold Float64 values: the table's check refuses them.
    const child = new Data(new Float32(), 0, 36, 0, [
      undefined,
      new Float64Array(36) as unknown as Float32Array,
      undefined,
    ]);
    const type = new FixedSizeList(18, new Field('item', new Float32(), false));
    const data = makeData({ type, length: 2, nullCount: 0, child });
    const rows = result(new Table({ tensor: new Vector([data]) }), [variable(2)]).logRows();
    expect(rows).toBeInstanceOf(Table);
    expect(() => admitLogRows(1, rows)).toThrow(expect.objectContaining({ code: 'log_rows_refused' }));
  });

  it('logs the table of an input with too few values for its rows (refused as before)', () => {
    const child = new Data(new Float32(), 0, 36, 0, [undefined, new Float32Array(20), undefined]);
    const type = new FixedSizeList(18, new Field('item', new Float32(), false));
    const data = new Data(type, 0, 2, 0, undefined, [child]);
    const rows = result(new Table({ tensor: new Vector([data]) }), [variable(2)]).logRows();
    expect(rows).toBeInstanceOf(Table);
    expect(() => admitLogRows(1, rows)).toThrow(expect.objectContaining({ code: 'log_rows_refused' }));
  });

  it('gives a row source of the same rows even once the answer built the table (an Arrow answer builds it first)', () => {
    const answered = result(benchTable(5), [variable(5)]);
    const table = answered.toArrowTable();
    const rows = answered.logRows();
    expect(isLogRowSource(rows)).toBe(true);
    // The answer's table is still the one built (the source did not replace it).
    expect(answered.toArrowTable()).toBe(table);
    const fromTable = new LogStaging(LIMITS);
    fromTable.add(1, admitLogRows(1, table).batches);
    const fromSource = new LogStaging(LIMITS);
    fromSource.add(1, admitLogRows(1, rows).batches);
    expect(snapshot(fromSource.take())).toEqual(snapshot(fromTable.take()));
  });

  it('gives the table the answer built when the rows cannot take a source (a chunked input)', () => {
    const a = benchTable(3);
    const chunked = new Table([...a.batches, ...benchTable(2).batches]);
    const r = result(chunked, [variable(5)]);
    const table = r.toArrowTable();
    expect(r.logRows()).toBe(table);
  });

  it('builds the table once for a result at the staging’s cut or above, and gives that table to the answer too', () => {
    const r = result(benchTable(600), [variable(600)]);
    const logged = r.logRows();
    expect(logged).toBeInstanceOf(Table);
    expect(r.toArrowTable()).toBe(logged);
  });

  it('stages a leased input’s own values when its append waits for room, though the lent buffer is rewritten after release', async () => {
    // As a worker-decoded JSON body: the input's values view a buffer a model worker lent; the
    // service awaits the append's admission, then releases the result, and the worker may
    // write the buffer again at once. The source must have been copied by then.
    const rows = 100;
    const lent = new ArrayBuffer(rows * 18 * 4);
    const values = new Float32Array(lent);
    values.set(fp32(rows));
    const original = Float32Array.from(values);
    let freed = 0;
    const lease = new BufferLease([lent], () => {
      freed++;
      new Uint8Array(lent).fill(0xa5);
    });
    const table = new Table({ tensor: new Vector([listColumn(new Float32(), values, [18])]) });
    // The column views the lent buffer itself (no copy made by the table).
    expect((table.getChild('tensor')!.data[0]!.children[0]!.values as Float32Array).buffer).toBe(lent);
    const leased = new InferenceResult(
      { kind: 'arrow', table },
      ['tensor'],
      [variable(rows)],
      rows,
      1_733_200_000_789,
      lease,
    );
    const source = leased.logRows();
    expect(isLogRowSource(source)).toBe(true);

    const sent: LogItemsMessage[] = [];
    const handOff = new LogHandOff({
      queueCapacityRows: 1,
      handOffDelayMs: 20,
      handOffRows: 1_000,
      clock: new ManualClock(1_000),
      packer: {},
      closing: () => false,
      post: (msg) => sent.push(msg),
    });
    handOff.attach();
    // One row already queued fills the queue: the leased append waits for room.
    await handOff.append(1, result(benchTable(1), [variable(1)]).logRows());
    let admitted = false;
    const waiting = handOff.append(1, source).then(() => (admitted = true));
    await Promise.resolve();
    expect(admitted).toBe(false);
    // The writer takes the queued row: the leased append is admitted (copied) now.
    handOff.wantsRows();
    await waiting;
    expect(admitted).toBe(true);
    // The service releases the result once admitted; the worker rewrites its buffer.
    leased.release();
    expect([freed, lease.held]).toEqual([1, false]);
    expect(values[0]).not.toBe(original[0]);
    handOff.hurry();
    handOff.wantsRows();
    expect(sent).toHaveLength(2);
    const unpacker = new LogBatchUnpacker();
    const logged = sent.flatMap((msg) => {
      unpacker.learn(msg.body.schemas);
      return unpacker.unpack(msg.body).flat();
    });
    const last = logged[logged.length - 1]!;
    expect(last.numRows).toBe(rows);
    const items = last.getChild('in.tensor')!.data[0]!.children[0]!;
    const staged = (items.values as Float32Array).subarray(0, rows * 18);
    expect(
      Buffer.from(staged.buffer, staged.byteOffset, staged.byteLength).equals(Buffer.from(original.buffer)),
    ).toBe(true);
  });

  it('builds no result table for the log (a later logRows is a source again)', () => {
    const r = result(benchTable(5), [variable(5)]);
    expect(isLogRowSource(r.logRows())).toBe(true);
    expect(isLogRowSource(r.logRows())).toBe(true);
  });
});
