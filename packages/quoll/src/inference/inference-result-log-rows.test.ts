import { describe, expect, it } from 'vitest';
import { RecordBatch, Table } from 'apache-arrow';
import type { Data } from 'apache-arrow';
import { admitLogRows, isLogRowSource, kindOf, LogStaging, StagedRun } from '../logs/index.js';
import type { LogRowSource, StagedRows } from '../logs/index.js';
import { recordsLogCases } from '../store/conformance/records-log-cases.js';
import type { RecordsLogCase } from '../store/conformance/records-log-cases.js';
import { InferenceResult } from './inference-result.js';
import type { InputTensor } from './inference-input.js';
import type { WireTensor } from './tensor-data.js';

const LIMITS = { maxRows: 100_000, maxBytes: 64 * 1024 * 1024 };

/** Every staged run's schema, rows, bytes and leaves (kind and the bytes written), per pipeline. */
function snapshot(staged: StagedRows): unknown[] {
  const out: unknown[] = [];
  for (const [pipelineId, group] of staged.groups)
    for (const entry of group) {
      if (!(entry instanceof StagedRun)) {
        out.push({ pipelineId, kept: entry.numRows });
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

/**
 * Results of tensors inputs (the Open Inference Protocol's), as {@link recordsLogCases}: the
 * bench's shape, every element type of a request, nested and scalar tensors, a bool output (its
 * table logged) and a big one (kept, written at the hand-off).
 */
function tensorsLogCases(): RecordsLogCase[] {
  const result = (tensors: InputTensor[], outputs: WireTensor[]): InferenceResult => {
    const rows = tensors[0]!.shape[0]!;
    const input = { kind: 'tensors' as const, tensors, rows };
    return new InferenceResult(
      input,
      tensors.map((t) => t.name),
      outputs,
      rows,
      1_733_200_000_456,
    );
  };
  const fp32 = (rows: number): InputTensor => ({
    name: 'tensor',
    shape: [rows, 18],
    values: Float32Array.from({ length: rows * 18 }, (_, i) => i * 0.5 - 7),
  });
  const variable = (rows: number): WireTensor => ({
    name: 'variable',
    type: 'float32',
    dims: [rows, 1],
    data: Float32Array.from({ length: rows }, (_, i) => i * 1.25 - 3),
  });
  return [
    {
      name: 'tensors: one FP32 [100, 18], one float32 output',
      staged: true,
      source: true,
      make: () => result([fp32(100)], [variable(100)]),
    },
    {
      name: 'tensors: INT64 [5, 2, 3], BOOL [5], FP64 [5, 4], UINT16 [5, 1] and INT8 [5, 2]; an int32 output',
      staged: true,
      source: true,
      make: () =>
        result(
          [
            {
              name: 'grid',
              shape: [5, 2, 3],
              values: BigInt64Array.from({ length: 30 }, (_, i) => BigInt(i) - 9n),
            },
            { name: 'flag', shape: [5], values: Uint8Array.from([1, 0, 1, 1, 0]) },
            { name: 'wide', shape: [5, 4], values: Float64Array.from({ length: 20 }, (_, i) => i / 3) },
            { name: 'small', shape: [5, 1], values: Uint16Array.from({ length: 5 }, (_, i) => 65_530 + i) },
            { name: 'tiny', shape: [5, 2], values: Int8Array.from({ length: 10 }, (_, i) => i * 25 - 128) },
          ],
          [{ name: 'label', type: 'int32', dims: [5], data: Int32Array.from({ length: 5 }, (_, i) => -i) }],
        ),
    },
    {
      name: 'tensors: a bool output (not fixed-width numbers: the table is logged)',
      staged: false,
      source: false,
      make: () =>
        result([fp32(4)], [{ name: 'yes', type: 'bool', dims: [4, 1], data: Uint8Array.from([1, 0, 0, 1]) }]),
    },
    {
      name: 'tensors: FP32 [600, 18] (32 KiB or more: the source is kept, written at the hand-off)',
      staged: false,
      source: true,
      make: () => result([fp32(600)], [variable(600)]),
    },
  ];
}

/** Every case of these tests: JSON records results, then tensors results. */
function logCases(): RecordsLogCase[] {
  return [...recordsLogCases(), ...tensorsLogCases()];
}

describe('InferenceResult.logRows (JSON records and tensors written straight into the log staging)', () => {
  for (const c of logCases()) {
    it(`stages the same schema and bytes as the result table: ${c.name}`, () => {
      const old = new LogStaging(LIMITS);
      for (let k = 0; k < 3; k++) old.add(1, admitLogRows(1, c.make().toLogTable()).batches);

      const direct = new LogStaging(LIMITS);
      // The pool first holds buffers of garbage of the run's sizes: every byte must be written.
      direct.add(1, admitLogRows(1, garbage(c.make().toLogTable())).batches);
      direct.release(direct.take());
      const pooled = direct.pooledBuffers;
      if (c.staged) expect(pooled).toBeGreaterThan(0);
      for (let k = 0; k < 3; k++) {
        const rows = c.make().logRows();
        expect(isLogRowSource(rows)).toBe(true);
        const admitted = admitLogRows(1, rows);
        // The source itself (copied when small, kept when big), or (not fixed-width) its table.
        expect(admitted.batches.every((b) => isLogRowSource(b))).toBe(c.source);
        expect(admitted.batches.every((b) => b instanceof RecordBatch)).toBe(!c.source);
        direct.add(1, admitted.batches);
      }
      // The garbage buffers were taken again (so the bytes compared below were written over them).
      if (c.staged) expect(direct.pooledBuffers).toBeLessThan(pooled);
      expect(snapshot(direct.take())).toEqual(snapshot(old.take()));
    });
  }

  /** The table's leaf value buffers, depth first in field order (what a source's leaves are). */
  function tableLeaves(table: Table): ArrayBufferView[] {
    const leaves: ArrayBufferView[] = [];
    const visit = (d: Data): void => {
      if (d.children.length > 0) for (const child of d.children) visit(child);
      else leaves.push(d.values as ArrayBufferView);
    };
    for (const column of table.batches[0]!.data.children) visit(column);
    return leaves;
  }

  for (const c of logCases().filter((c) => c.source)) {
    it(`writes each leaf a slice of rows at a time (leafWriter) with the bytes of the table, over garbage: ${c.name}`, () => {
      const source = c.make().logRows() as LogRowSource;
      const table = c.make().toLogTable();
      const leaves = tableLeaves(table);
      expect(typeof source.leafWriter).toBe('function');
      // Slices of 1 row, of 2, and of more than is left (the last ends the leaf).
      for (const sizes of [[1], [2], [source.numRows + 5], [3, 1, 7]]) {
        leaves.forEach((values, i) => {
          const leaf = source.leaves![i]!;
          const T = values.constructor as new (n: number) => ArrayBufferView;
          const target = new T(source.numRows * leaf.width);
          new Uint8Array(target.buffer).fill(0xa5);
          const write = source.leafWriter!(i, target);
          let written = 0;
          for (let k = 0; written < source.numRows; k++) {
            const rows = Math.min(sizes[k % sizes.length]!, source.numRows - written);
            write(rows);
            written += rows;
          }
          expect(
            Buffer.from(target.buffer).equals(
              Buffer.from(values.buffer, values.byteOffset, values.byteLength),
            ),
            `leaf ${i}, slices of ${sizes.join(', ')}`,
          ).toBe(true);
        });
      }
    });
  }

  for (const c of logCases().filter((c) => c.source)) {
    it(`writes every element of each leaf, as the table holds it, over garbage: ${c.name}`, () => {
      const source = c.make().logRows() as LogRowSource;
      const table = c.make().toLogTable();
      expect(source.schema).toBe(table.schema);
      expect(source.numRows).toBe(table.numRows);
      expect(table.batches.length).toBe(1);
      expect(source.byteLength).toBe(table.batches[0]!.data.byteLength);
      const leaves: ArrayBufferView[] = [];
      const visit = (d: Data): void => {
        if (d.children.length > 0) for (const child of d.children) visit(child);
        else leaves.push(d.values as ArrayBufferView);
      };
      for (const column of table.batches[0]!.data.children) visit(column);
      expect(source.leaves?.length).toBe(leaves.length);
      leaves.forEach((values, i) => {
        const leaf = source.leaves![i]!;
        expect(leaf.kind).toBe(kindOf(values));
        const T = values.constructor as new (n: number) => ArrayBufferView;
        const target = new T(source.numRows * leaf.width);
        new Uint8Array(target.buffer).fill(0xa5);
        source.writeLeaf(i, target);
        expect(
          Buffer.from(target.buffer).equals(Buffer.from(values.buffer, values.byteOffset, values.byteLength)),
        ).toBe(true);
      });
    });
  }

  it('gives the table itself once the answer built it (an Arrow answer to JSON records)', () => {
    const result = recordsLogCases()[0]!.make();
    const table = result.toArrowTable();
    expect(result.logRows()).toBe(table);
  });

  it('a source whose write fails stages nothing of it and leaves the run it merged into as it was', () => {
    const c = recordsLogCases()[1]!;
    const staging = new LogStaging(LIMITS);
    staging.add(1, admitLogRows(1, c.make().logRows()).batches);
    const good = c.make().logRows() as LogRowSource;
    const failing: LogRowSource = {
      kind: 'log-row-source',
      schema: good.schema,
      numRows: good.numRows,
      leaves: good.leaves,
      byteLength: good.byteLength,
      writeLeaf: (index, target) => {
        if (index === 3) throw new Error('boom');
        good.writeLeaf(index, target);
      },
      toTable: () => good.toTable(),
    };
    expect(() => staging.add(1, admitLogRows(1, failing).batches)).toThrow('boom');
    staging.add(1, admitLogRows(1, c.make().logRows()).batches);

    const old = new LogStaging(LIMITS);
    for (let k = 0; k < 2; k++) old.add(1, admitLogRows(1, c.make().toLogTable()).batches);
    expect(staging.stagedRows).toBe(old.stagedRows);
    expect(snapshot(staging.take())).toEqual(snapshot(old.take()));
  });

  it('the staging refuses a source admitLogRows would not stage, and keeps what it had', () => {
    const c = recordsLogCases().find((x) => x.staged)!;
    const expected = new LogStaging(LIMITS);
    expected.add(1, admitLogRows(1, c.make().logRows()).batches);

    const staging = new LogStaging(LIMITS);
    staging.add(1, admitLogRows(1, c.make().logRows()).batches);
    const good = c.make().logRows() as LogRowSource;
    const write = (index: number, target: ArrayBufferView): void => good.writeLeaf(index, target);
    const toTable = (): Table => good.toTable();
    const noLeaves: LogRowSource = {
      ...good,
      kind: 'log-row-source',
      leaves: null,
      writeLeaf: write,
      toTable,
    };
    expect(() => staging.add(1, [noLeaves])).toThrow(/admitLogRows/);
    expect(staging.stagedRows).toBe(good.numRows);
    expect(snapshot(staging.take())).toEqual(snapshot(expected.take()));
  });

  it('keeps a big source as it is (no table built, nothing written at admission), after the runs before it', () => {
    const c = recordsLogCases().find((x) => x.staged)!;
    const staging = new LogStaging(LIMITS);
    staging.add(1, admitLogRows(1, c.make().logRows()).batches);
    const good = c.make().logRows() as LogRowSource;
    let written = 0;
    const big: LogRowSource = {
      ...good,
      kind: 'log-row-source',
      leaves: good.leaves,
      byteLength: 32 * 1024,
      writeLeaf: (index, target) => {
        written++;
        good.writeLeaf(index, target);
      },
      toTable: () => {
        throw new Error('no table is built for a big source');
      },
    };
    const admitted = admitLogRows(1, big);
    // Kept as a snapshot of itself (its count, leaves and byte length read once at admission).
    expect(admitted.batches).toHaveLength(1);
    expect(admitted.batches[0]).toMatchObject({
      kind: 'log-row-source',
      schema: big.schema,
      numRows: big.numRows,
      byteLength: big.byteLength,
      leaves: big.leaves,
    });
    staging.add(1, admitted.batches);
    expect(written).toBe(0);
    const staged = staging.take();
    expect(staged.rows).toBe(2 * good.numRows);
    const group = staged.groups.get(1)!;
    expect(group).toHaveLength(2);
    expect(group[0]).toBeInstanceOf(StagedRun);
    expect(group[1]).toBe(admitted.batches[0]);
  });

  it('admits a source with its schema’s leaves, read once: later answers of its getters change nothing', () => {
    const c = recordsLogCases().find((x) => x.staged)!;
    const good = c.make().logRows() as LogRowSource;
    let reads = 0;
    const shifty: LogRowSource = {
      kind: 'log-row-source',
      schema: good.schema,
      get numRows() {
        return reads++ === 0 ? good.numRows : good.numRows + 7;
      },
      get leaves() {
        return reads++ < 2 ? good.leaves : [];
      },
      byteLength: good.byteLength,
      writeLeaf: (index, target) => good.writeLeaf(index, target),
      toTable: () => good.toTable(),
    };
    const first = admitLogRows(1, shifty).batches[0] as LogRowSource;
    const second = admitLogRows(1, c.make().logRows()).batches[0] as LogRowSource;
    expect(first.numRows).toBe(good.numRows);
    expect(first.leaves).toEqual(good.leaves);
    // One frozen array per schema, shared by every append of it (nothing copied per request).
    expect(first.leaves).toBe(second.leaves);
    expect(Object.isFrozen(first.leaves)).toBe(true);
    expect(first.leaves!.every((leaf) => Object.isFrozen(leaf))).toBe(true);
    const staging = new LogStaging(LIMITS);
    staging.add(1, [first]);
    const expected = new LogStaging(LIMITS);
    expected.add(1, admitLogRows(1, c.make().logRows()).batches);
    expect(snapshot(staging.take())).toEqual(snapshot(expected.take()));
  });

  it('checks the schema of a source as of a batch', () => {
    const good = recordsLogCases()[0]!.make().logRows() as LogRowSource;
    const noTime = new Table({ x: good.toTable().getChild('in.tensor')! });
    const bad: LogRowSource = {
      ...good,
      kind: 'log-row-source',
      schema: noTime.schema,
      writeLeaf: () => {},
      toTable: () => noTime,
    };
    expect(() => admitLogRows(1, bad)).toThrow(/time/);
  });
});
