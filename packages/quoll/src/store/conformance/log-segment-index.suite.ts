import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogSegmentIndex } from '../../logs/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The {@link LogSegmentIndex} contract, run against one backend. */
export function logSegmentIndexSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: LogSegmentIndex`, () => {
    let stores: Stores;
    let index: LogSegmentIndex;

    beforeEach(async () => {
      stores = await makeStores();
      index = stores.logIndex;
    });
    afterEach(async () => {
      await stores.close();
    });

    async function seg(
      pipelineId: number,
      seq: number,
      minTime: number,
      maxTime: number,
      sealed = true,
      bytes = 100,
    ) {
      await index.addSegment({ pipelineId, seq, schemaId: 's1', createdAt: 1 });
      await index.updateSegments([{ pipelineId, seq, rows: 10, bytes, minTime, maxTime, sealed }]);
    }

    it('records a new segment as empty and unsealed, then applies counter updates', async () => {
      await index.addSegment({ pipelineId: 7, seq: 1, schemaId: 'abc', createdAt: 123 });
      expect(await index.getSegment(7, 1)).toEqual({
        pipelineId: 7,
        seq: 1,
        schemaId: 'abc',
        rows: 0,
        bytes: 0,
        minTime: null,
        maxTime: null,
        sealed: false,
        createdAt: 123,
      });
      await index.updateSegments([
        { pipelineId: 7, seq: 1, rows: 5, bytes: 800, minTime: 10, maxTime: 20, sealed: true },
      ]);
      expect(await index.getSegment(7, 1)).toMatchObject({
        rows: 5,
        bytes: 800,
        minTime: 10,
        maxTime: 20,
        sealed: true,
      });
      expect(await index.getSegment(7, 2)).toBeNull();
    });

    it('rejects a duplicate (pipeline, seq)', async () => {
      await index.addSegment({ pipelineId: 1, seq: 1, schemaId: 'a', createdAt: 1 });
      await expect(
        index.addSegment({ pipelineId: 1, seq: 1, schemaId: 'a', createdAt: 1 }),
      ).rejects.toThrow();
    });

    it('segmentsOverlapping includes segments touching either end of the range, skips empty ones, in both orders', async () => {
      await seg(1, 1, 0, 99);
      await seg(1, 2, 100, 199);
      await seg(1, 3, 200, 299);
      await seg(2, 1, 100, 199);
      await index.addSegment({ pipelineId: 1, seq: 4, schemaId: 's', createdAt: 1 }); // empty
      expect((await index.segmentsOverlapping(1, 99, 200, 'asc')).map((s) => s.seq)).toEqual([1, 2, 3]);
      expect((await index.segmentsOverlapping(1, 99, 200, 'desc')).map((s) => s.seq)).toEqual([3, 2, 1]);
      expect((await index.segmentsOverlapping(1, 100, 199, 'asc')).map((s) => s.seq)).toEqual([2]);
      expect((await index.segmentsOverlapping(1, 300, 400, 'asc')).map((s) => s.seq)).toEqual([]);
    });

    it('lists segments in order, the newest first, the unsealed ones and the pipelines', async () => {
      await seg(3, 1, 0, 9);
      await seg(3, 2, 10, 19, false);
      await seg(5, 1, 0, 9, false);
      expect((await index.listSegments(3, 'asc')).map((s) => s.seq)).toEqual([1, 2]);
      expect((await index.listSegments(3, 'desc')).map((s) => s.seq)).toEqual([2, 1]);
      expect((await index.newestSegments(3, 1)).map((s) => s.seq)).toEqual([2]);
      expect((await index.unsealedSegments()).map((s) => [s.pipelineId, s.seq])).toEqual([
        [3, 2],
        [5, 1],
      ]);
      expect(await index.pipelineIds()).toEqual([3, 5]);
    });

    it('offers the oldest sealed segment for deletion but never a pipeline’s newest or an unsealed one', async () => {
      await seg(1, 1, 500, 599);
      await seg(1, 2, 600, 699);
      await seg(1, 3, 700, 799, false);
      await seg(2, 1, 0, 99); // oldest overall, but the only (newest) segment of pipeline 2
      expect(await index.oldestDeletableSegment(1)).toMatchObject({ pipelineId: 1, seq: 1 });
      expect(await index.oldestDeletableSegment(null)).toMatchObject({ pipelineId: 1, seq: 1 });
      expect(await index.oldestDeletableSegment(2)).toBeNull();
      await index.deleteSegment(1, 1);
      await index.deleteSegment(1, 2);
      expect(await index.oldestDeletableSegment(1)).toBeNull();
    });

    it('sums bytes per pipeline and overall', async () => {
      expect(await index.totalBytes()).toBe(0);
      await seg(1, 1, 0, 1, true, 100);
      await seg(1, 2, 2, 3, true, 50);
      await seg(2, 1, 0, 1, true, 7);
      expect(await index.totalBytes(1)).toBe(150);
      expect(await index.totalBytes(2)).toBe(7);
      expect(await index.totalBytes(9)).toBe(0);
      expect(await index.totalBytes()).toBe(157);
    });
  });
}
