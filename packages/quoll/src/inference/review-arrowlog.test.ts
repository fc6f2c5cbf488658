import { describe, expect, it } from 'vitest';
import { Data, Field, FixedSizeList, Float32, Int64, Table, Vector } from 'apache-arrow';
import { admitLogRows } from '../logs/index.js';
import { InferenceResult } from './inference-result.js';
import type { WireTensor } from './tensor-data.js';

// Review of lane arrowlog (6 December): red tests for the ArrowLogRows source.

function variable(rows: number): WireTensor {
  return { name: 'variable', type: 'float32', dims: [rows, 1], data: new Float32Array(rows) };
}

function result(table: Table): InferenceResult {
  const rows = table.numRows;
  return new InferenceResult({ kind: 'arrow', table }, ['tensor'], [variable(rows)], rows, 1_733_200_000_789);
}

/** FixedSizeList[18]<Float32> × 2 whose items' Data says it holds `itemLength` items, over 36 values. */
function shortItems(itemLength: number): Table {
  const child = new Data(new Float32(), 0, itemLength, 0, [undefined, new Float32Array(36), undefined]);
  const type = new FixedSizeList(18, new Field('item', new Float32(), false));
  const data = new Data(type, 0, 2, 0, undefined, [child]);
  return new Table({ tensor: new Vector([data]) });
}

describe('review arrowlog: hostile Arrow inputs are refused by the source path as by the table path', () => {
  it('refuses a list column whose items Data holds fewer items than its rows need (the table path refuses it)', () => {
    // The table path: checkLogBatch's dataProblem sees 1 item for 2 lists of 18.
    expect(() => admitLogRows(1, result(shortItems(1)).toArrowTable())).toThrow(
      expect.objectContaining({ code: 'log_rows_refused' }),
    );
    // The lane's source path: arrowInputLeaf checks the values, not the items Data's length.
    expect(() => admitLogRows(1, result(shortItems(1)).logRows())).toThrow(
      expect.objectContaining({ code: 'log_rows_refused' }),
    );
  });

  it('refuses a nested list whose inner list Data is shorter than rows × outer size (as the table path)', () => {
    const leaf = new Data(new Int64(), 0, 12, 0, [undefined, new BigInt64Array(12), undefined]);
    const inner = new FixedSizeList(3, new Field('item', new Int64(), false));
    // 2 rows × 2 = 4 inner lists needed; the inner Data says 1.
    const innerData = new Data(inner, 0, 1, 0, undefined, [leaf]);
    const outer = new FixedSizeList(2, new Field('item', inner, false));
    const data = new Data(outer, 0, 2, 0, undefined, [innerData]);
    const make = (): InferenceResult => result(new Table({ tensor: new Vector([data]) }));
    expect(() => admitLogRows(1, make().toArrowTable())).toThrow(
      expect.objectContaining({ code: 'log_rows_refused' }),
    );
    expect(() => admitLogRows(1, make().logRows())).toThrow(
      expect.objectContaining({ code: 'log_rows_refused' }),
    );
  });
});
