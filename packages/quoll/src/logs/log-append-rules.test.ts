import { describe, expect, it } from 'vitest';
import { recordsLogCases } from '../store/conformance/records-log-cases.js';
import { admitLogRows } from './log-append-rules.js';
import type { LogRowSource } from './log-row-source.js';

const good = (): LogRowSource => recordsLogCases()[0]!.make().logRows() as LogRowSource;

describe('admitLogRows of a row source', () => {
  it('refuses a leafWriter that is not a function with log_rows_refused at admission, not a TypeError at pack time', () => {
    const g = good();
    const hostile = { ...g, leafWriter: 42, writeLeaf: g.writeLeaf.bind(g), toTable: g.toTable.bind(g) };
    expect(() => admitLogRows(7, hostile as unknown as LogRowSource)).toThrow(
      expect.objectContaining({ code: 'log_rows_refused' }),
    );
  });

  it('calls the leafWriter seen at admission on the source itself (its `this`)', () => {
    const g = good();
    const seen: unknown[] = [];
    const source = {
      ...g,
      writeLeaf: g.writeLeaf.bind(g),
      toTable: g.toTable.bind(g),
      leafWriter(this: unknown, i: number, t: ArrayBufferView) {
        seen.push(this);
        return (g as Required<LogRowSource>).leafWriter(i, t);
      },
    } as LogRowSource;
    const admitted = admitLogRows(7, source).batches[0] as LogRowSource;
    admitted.leafWriter!(0, new BigInt64Array(g.numRows))(g.numRows);
    expect(seen).toEqual([source]);
  });

  it('refuses a source whose leaf throws when read with log_rows_refused, not the raw error', () => {
    const g = good();
    const leaves = [...g.leaves!];
    leaves[0] = {
      get kind(): number {
        throw new Error('boom');
      },
      width: 1,
    };
    const hostile = { ...g, leaves, writeLeaf: g.writeLeaf.bind(g), toTable: g.toTable.bind(g) };
    expect(() => admitLogRows(7, hostile as LogRowSource)).toThrow(
      expect.objectContaining({ code: 'log_rows_refused' }),
    );
  });
});
