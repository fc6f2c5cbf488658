import { describe, expect, it } from 'vitest';
import { Bool, Float32, Table, tableFromArrays, tableToIPC, vectorFromArray } from 'apache-arrow';
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

describe('readArrowIpcLayout on Bool columns', () => {
  /** A stream of one Bool column of `rows` rows, beside a Float32 one. */
  const body = (rows: number): Uint8Array =>
    tableToIPC(
      new Table({
        flag: vectorFromArray(
          Array.from({ length: rows }, (_, i) => i % 2 === 0),
          new Bool(),
        ),
        x: vectorFromArray(
          Array.from({ length: rows }, (_, i) => i),
          new Float32(),
        ),
      }),
      'stream',
    );

  it('reads a Bool column: its bitmap holds a bit per row', () => {
    const layout = readArrowIpcLayout(body(65));
    expect(layout.fields[0]).toEqual({ name: 'flag', nullable: true, type: { id: 'bool' } });
    // Validity (none), then the bitmap: 65 bits in 9 bytes (apache-arrow pads buffers further).
    expect(layout.recordBatches[0]!.buffers[3]).toBeGreaterThanOrEqual(9);
  });

  it('refuses a Bool column whose bitmap is shorter than its rows need', () => {
    const bytes = body(65);
    const layout = readArrowIpcLayout(bytes);
    // The record batch's Buffer entries are [offset, length] int64 pairs, offsets from the body's
    // start (the first buffer's): the column's validity entry [0, 0] and then its bitmap's. Its
    // length is rewritten to 8 bytes (64 rows' worth).
    const [bodyStart, , bitmapAt, bitmapLength] = layout.recordBatches[0]!.buffers;
    const entries = [0n, 0n, BigInt(bitmapAt! - bodyStart!), BigInt(bitmapLength!)];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let patched = 0;
    for (let at = 0; at + 32 <= bodyStart!; at += 8) {
      if (entries.every((value, k) => view.getBigInt64(at + 8 * k, true) === value)) {
        view.setBigInt64(at + 24, 8n, true);
        patched++;
      }
    }
    expect(patched).toBe(1);
    const answer = refusal(bytes);
    expect(answer.code).toBe('invalid_inference_input');
    expect(answer.message).toContain('column "flag" claims 65 values but holds 8 bytes');
  });
});
