import { describe, expect, it } from 'vitest';
import {
  rowsOf,
  sendHandOffsAndStop,
  startSqliteLogWriter,
  tempRoot,
  unknownBufferKind,
} from '../../../../test/support/poison-hand-offs.js';
import { idRange } from '../store/conformance/inference-log-rows.js';

const root = tempRoot('quoll-review-unpack-');

describe('review: an unreadable hand-off and its healthy neighbours', () => {
  it(`review: sets aside only the bad batch of a hand-off that cannot be unpacked, not another pipeline's healthy rows in the same hand-off`, async () => {
    const started = await startSqliteLogWriter(root);
    await sendHandOffsAndStop(started.writer, [
      { seq: 1, groups: [[rowsOf(idRange(0, 5))], [rowsOf(idRange(100, 5))]], pipelineIds: [1, 2] },
      // The poison: pipeline 1's batch is unreadable; pipeline 2's batch in the same hand-off is healthy.
      {
        seq: 2,
        groups: [[rowsOf(idRange(5, 5))], [rowsOf(idRange(105, 5))]],
        pipelineIds: [1, 2],
        spoil: unknownBufferKind,
      },
      { seq: 3, groups: [[rowsOf(idRange(10, 5))], [rowsOf(idRange(110, 5))]], pipelineIds: [1, 2] },
    ]);
    expect(started.exitError, started.messages.join(' ')).toBeNull();
    expect(started.messages).not.toContain('write-failed');
    expect(started.quarantined.length).toBe(1);
    expect(await started.storedIds([1, 2])).toEqual([
      [...idRange(0, 5), ...idRange(10, 5)],
      [...idRange(100, 5), ...idRange(105, 5), ...idRange(110, 5)],
    ]);
  });
});
