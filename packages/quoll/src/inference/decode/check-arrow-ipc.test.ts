import { describe, expect, it } from 'vitest';
import { Table, tableFromArrays, tableToIPC } from 'apache-arrow';
import { FileBlock, withRecordBatchBlocks } from '../../../../../test/support/arrow-file-footer.js';
import { makeArrowTensorTable, makeHouseRows } from '../../../../../test/support/synthetic-data.js';
import { ApiError } from '../../errors/index.js';
import { MAX_ARROW_COLUMNS, MAX_ARROW_RECORD_BATCHES, readArrowIpcLayout } from './check-arrow-ipc.js';

/** The catalogue code and message `readArrowIpcLayout` refuses `body` with. */
function refusal(body: Uint8Array): { code: string; message: string } {
  try {
    readArrowIpcLayout(body);
  } catch (error) {
    if (error instanceof ApiError) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('the body was accepted');
}

describe('readArrowIpcLayout on file footers', () => {
  const one = makeArrowTensorTable(makeHouseRows(64, 3), 18);
  const two = new Table([...one.batches, ...makeArrowTensorTable(makeHouseRows(7, 4), 18).batches]);

  it('reads a file whose footer is rewritten unchanged, and its batches in order', () => {
    const file = withRecordBatchBlocks(tableToIPC(two, 'file'), (blocks) => blocks);
    const layout = readArrowIpcLayout(file);
    expect([layout.layout, layout.rows, layout.batches]).toEqual(['file', 71, 2]);
  });

  it('refuses a footer listing one batch twice: its rows are not counted again', () => {
    const file = withRecordBatchBlocks(tableToIPC(one, 'file'), ([first]) => [first!, first!]);
    const answer = refusal(file);
    expect(answer.code).toBe('invalid_inference_input');
    expect(answer.message).toContain('record batch block 1 overlaps the block before it');
  });

  it('refuses blocks out of file order, or overlapping the one before', () => {
    const file = tableToIPC(two, 'file');
    const reversed = withRecordBatchBlocks(file, (blocks) => [...blocks].reverse());
    expect(refusal(reversed).message).toContain('record batch block 1 overlaps');
    // The second block moved to start one byte inside the first.
    const overlapping = withRecordBatchBlocks(file, ([a, b]) => [
      a!,
      new FileBlock(b!.metaDataLength, b!.bodyLength, b!.offset - 1),
    ]);
    expect(refusal(overlapping).message).toContain('record batch block 1 overlaps');
  });

  it('refuses 10 000 blocks of one batch (a few bytes of footer each) before walking them', () => {
    const file = withRecordBatchBlocks(tableToIPC(one, 'file'), ([first]) =>
      Array.from({ length: 10_000 }, () => first!),
    );
    const answer = refusal(file);
    expect(answer.code).toBe('invalid_inference_input');
    expect(answer.message).toContain(`more than ${MAX_ARROW_RECORD_BATCHES} record batches`);
  });
});

describe('readArrowIpcLayout limits', () => {
  const row = makeArrowTensorTable(makeHouseRows(1, 5), 18).batches[0]!;

  it(`reads up to ${MAX_ARROW_RECORD_BATCHES} record batches in a file or stream, and refuses one more`, () => {
    for (const layout of ['file', 'stream'] as const) {
      const most = new Table(Array.from({ length: MAX_ARROW_RECORD_BATCHES }, () => row));
      expect(readArrowIpcLayout(tableToIPC(most, layout)).batches, layout).toBe(MAX_ARROW_RECORD_BATCHES);
      const over = new Table(Array.from({ length: MAX_ARROW_RECORD_BATCHES + 1 }, () => row));
      const answer = refusal(tableToIPC(over, layout));
      expect(answer.code, layout).toBe('invalid_inference_input');
      expect(answer.message, layout).toContain('record batches');
    }
  });

  it(`reads ${MAX_ARROW_COLUMNS} columns and refuses one more`, () => {
    // A new array per column: apache-arrow 21 writes a stream it cannot read back when columns share one.
    const columns = (n: number): Table =>
      tableFromArrays(
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, new Float32Array([i, 2])])),
      );
    expect(readArrowIpcLayout(tableToIPC(columns(MAX_ARROW_COLUMNS), 'stream')).columns).toHaveLength(
      MAX_ARROW_COLUMNS,
    );
    const answer = refusal(tableToIPC(columns(MAX_ARROW_COLUMNS + 1), 'file'));
    expect(answer.code).toBe('invalid_inference_input');
    expect(answer.message).toContain(`at most ${MAX_ARROW_COLUMNS}`);
  });
});
