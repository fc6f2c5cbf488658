import { describe, expect, it } from 'vitest';
import {
  POISONS,
  rowsOf,
  sendHandOffsAndStop,
  startSqliteLogWriter,
  tempRoot,
} from '../../../../test/support/poison-hand-offs.js';
import { idRange } from '../store/conformance/inference-log-rows.js';

const root = tempRoot('quoll-writer-poison-');

describe('the inference log writer thread and a poison batch', () => {
  for (const { name, spoil, rows } of POISONS) {
    it(`sets aside ${name}, writes the hand-offs around it, and stops cleanly`, async () => {
      const started = await startSqliteLogWriter(root);
      await sendHandOffsAndStop(started.writer, [
        { seq: 1, groups: [[rowsOf(idRange(0, 5))], [rowsOf(idRange(100, 5))]], pipelineIds: [1, 2] },
        // The poison: pipeline 1's rows only (pipeline 2 is written in the hand-offs around it).
        { seq: 2, groups: [[rowsOf(idRange(5, 5))]], pipelineIds: [1], spoil },
        { seq: 3, groups: [[rowsOf(idRange(10, 5))], [rowsOf(idRange(105, 5))]], pipelineIds: [1, 2] },
      ]);
      const { messages, quarantined } = started;
      expect(started.exitError, messages.join(' ')).toBeNull();
      expect(messages).not.toContain('write-failed');
      expect(quarantined.map((q) => q.pipelineIds)).toEqual([[1]]);
      expect(quarantined[0]?.rows).toBe(rows);
      // Pipeline 1 without the poison's rows, pipeline 2 whole.
      expect(await started.storedIds([1, 2])).toEqual([
        [...idRange(0, 5), ...idRange(10, 5)],
        [...idRange(100, 5), ...idRange(105, 5)],
      ]);
    });
  }
});
