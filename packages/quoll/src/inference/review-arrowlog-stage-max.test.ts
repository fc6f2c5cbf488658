import { describe, expect, it, vi } from 'vitest';
import { Data, Field, FixedSizeList, Float32, Table, Vector } from 'apache-arrow';
import { isLogRowSource } from '../logs/index.js';
import { InferenceResult } from './inference-result.js';
import type * as LogStagingModule from '../logs/log-staging.js';

// Review of lane arrowlog (6 December). The staging keeps a row source of STAGE_MAX_BYTES or more
// as it is (not copied) until the writer confirms it; an ArrowLogRows source views the input's
// buffers, which a model worker may have lent and gets back at `result.release()`, right after
// admission. The source must therefore never be used at or above the staging's own cut: here the
// staging's cut is made 8 KiB and a 8.6 KiB Arrow result must log its table (which holds the
// leases), not a source. The lane copies the figure (ARROW_SOURCE_MAX_BYTES = 32 KiB) instead of
// using STAGE_MAX_BYTES, so the two can drift apart silently.
vi.mock('../logs/log-staging.js', async (importOriginal) => ({
  ...(await importOriginal<typeof LogStagingModule>()),
  STAGE_MAX_BYTES: 8 * 1024,
}));

describe('review arrowlog: the Arrow source follows the staging’s STAGE_MAX_BYTES', () => {
  it('logs the table, not a source, for an Arrow result at or above STAGE_MAX_BYTES', async () => {
    const { STAGE_MAX_BYTES } = await import('../logs/log-staging.js');
    expect(STAGE_MAX_BYTES).toBe(8 * 1024);
    const rows = 100;
    const child = new Data(new Float32(), 0, rows * 18, 0, [
      undefined,
      new Float32Array(rows * 18),
      undefined,
    ]);
    const type = new FixedSizeList(18, new Field('item', new Float32(), false));
    const table = new Table({ tensor: new Vector([new Data(type, 0, rows, 0, undefined, [child])]) });
    const result = new InferenceResult(
      { kind: 'arrow', table },
      ['tensor'],
      [{ name: 'variable', type: 'float32', dims: [rows, 1], data: new Float32Array(rows) }],
      rows,
      1_733_200_000_789,
    );
    const logged = result.logRows();
    // 100 × (8 time + 72 in + 4 out + 4 check_failures) = 8 800 bytes ≥ 8 192.
    expect(isLogRowSource(logged) ? logged.byteLength : 0).toBe(0);
    expect(logged).toBeInstanceOf(Table);
  });
});
