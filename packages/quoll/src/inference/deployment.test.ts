import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import type { Table } from 'apache-arrow';
import { makeHouseRows } from '../../../../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../../../../test/support/synthetic-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { InferenceEngine } from './inference-engine.js';
import { FEED_SLAB_BYTES } from './feed-slab.js';
import { INLINE_MAX_BATCH_ROWS, INLINE_MAX_ROWS } from './inline-runner.js';

// Deployment's routing of runs while requests overlap: to the workers (dynamic batching), or,
// with `inlineWhenContended` (a process on one core), merged per turn on the calling thread.

const { engine, step } = inferenceEngineFixture('quoll-deployment-');

function houseRecords(rows: Float32Array, from: number, count: number): { tensor: number[] }[] {
  return Array.from({ length: count }, (_, i) => ({
    tensor: Array.from(rows.subarray(((from + i) % 40) * 18, ((from + i) % 40) * 18 + 18)),
  }));
}

function column(table: Table, name: string): number[][] {
  return Array.from({ length: table.numRows }, (_, row) =>
    Array.from(table.getChild(name)!.get(row) as Iterable<number>),
  );
}

/**
 * An engine of one worker per deployment with inline runs, also while requests overlap, and no
 * practical limit to a turn's inline runs (these tests are about merging, not the turn budget).
 */
function contendedInlineEngine(created: InferenceEngine[]): InferenceEngine {
  const made = new InferenceEngine({
    workersPerDeployment: 1,
    inlineRuns: true,
    inlineWhenContended: true,
    inlineTurnBudgetUs: 60_000_000,
  });
  created.push(made);
  return made;
}

describe('Deployment routing while requests overlap', () => {
  it('with inlineWhenContended, runs the small requests of one turn as one merged run on the calling thread, answering as the workers do', async () => {
    const created: InferenceEngine[] = [];
    try {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
      const contended = await contendedInlineEngine(created).deploy('tree', [step('tree', bytes)]);
      expect((await contended.inlineDecided).state).toBe('on');
      const workers = await engine(true, false).deploy('tree', [step('tree', bytes)]);
      const rows = makeHouseRows(40, 5);
      const requests = Array.from({ length: 16 }, (_, i) => houseRecords(rows, i, 1 + (i % 2)));
      const wave = (): Promise<unknown[]> =>
        Promise.all(
          requests.map(async (records) =>
            (await contended.infer({ kind: 'records', records }, 1)).toRecords(),
          ),
        );
      const viaWorkers = await Promise.all(
        requests.map(async (records) => (await workers.infer({ kind: 'records', records }, 1)).toRecords()),
      );
      expect(await wave()).toEqual(viaWorkers);
      // Sixteen requests (24 rows) asked for in one turn: one run, on this thread.
      expect(contended.inlineRunCount).toBe(1);
      expect(contended.runCount).toBe(1);
      // Right after requests overlapped, the next wave still runs here (no hold for the workers).
      expect(await wave()).toEqual(viaWorkers);
      expect(contended.inlineRunCount).toBe(2);
      expect(contended.runCount).toBe(2);
    } finally {
      await Promise.all(created.map((made) => made.close()));
    }
  });

  it("keeps each request's feed its own while feeds share a slab: answers inline (merged and alone) and in a worker (by message and by lane) are each request's own run's", async () => {
    const created: InferenceEngine[] = [];
    try {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
      const rows = makeHouseRows(40, 13);
      // Each request alone, in a buffer of its own, straight through onnxruntime.
      const session = await ort.InferenceSession.create(bytes);
      const own: number[][] = [];
      for (let i = 0; i < 40; i++) {
        const feed = new ort.Tensor('float32', rows.slice(i * 18, i * 18 + 18), [1, 18]);
        const out = await session.run({ [session.inputNames[0]!]: feed });
        own.push(Array.from(out[session.outputNames[0]!]!.data as Float32Array));
      }
      await session.release();
      const contended = await contendedInlineEngine(created).deploy('tree', [step('tree', bytes)]);
      expect((await contended.inlineDecided).state).toBe('on');
      const byMessage = await engine(false, false).deploy('tree', [step('tree', bytes)]);
      const byLane = await engine(true, false).deploy('tree', [step('tree', bytes)]);
      const answer = async (deployment: typeof contended, i: number): Promise<unknown> =>
        (await deployment.infer({ kind: 'records', records: houseRecords(rows, i, 1) }, 1)).toRecords()[0]![
          'out.variable'
        ];
      // 160 requests of one turn: their feeds (160 × 72 bytes, more than one 8 KiB slab) are all
      // live at once, waiting for the turn's merged runs. A slab that wrapped or rewound would hand
      // a later request's feed the region of an earlier one still waiting, and that earlier
      // request would answer with the later one's row. Then each alone.
      const wave = 160;
      expect(wave * 18 * 4).toBeGreaterThan(FEED_SLAB_BYTES);
      const held = await Promise.all(
        Array.from({ length: wave }, (_, i) =>
          contended.infer({ kind: 'records', records: houseRecords(rows, i, 1) }, 1),
        ),
      );
      const merged = held.map((result) => result.toRecords()[0]!['out.variable']);
      expect(merged).toEqual(Array.from({ length: wave }, (_, i) => own[i % 40]));
      const alone: unknown[] = [];
      for (let i = 0; i < own.length; i++) alone.push(await answer(contended, i));
      const viaMessage = await Promise.all(own.map((_, i) => answer(byMessage, i)));
      const viaLane: unknown[] = [];
      for (let i = 0; i < own.length; i++) viaLane.push(await answer(byLane, i));
      for (const answers of [alone, viaMessage, viaLane]) expect(answers).toEqual(own);
      // Results never view a feed (onnxruntime-node copies its outputs): held while 120 more
      // requests ran, their answers and log rows are still their own.
      held.forEach((result, i) => {
        expect(result.toRecords()[0]!['out.variable']).toEqual(own[i % 40]);
        expect(column(result.toArrowTable(), 'out.variable')).toEqual([own[i % 40]]);
      });
      expect(new Set(own.map((value) => JSON.stringify(value))).size).toBeGreaterThan(30);
    } finally {
      await Promise.all(created.map((made) => made.close()));
    }
  });

  it('with inlineWhenContended, caps each merged run at INLINE_MAX_BATCH_ROWS rows', async () => {
    const created: InferenceEngine[] = [];
    try {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
      const contended = await contendedInlineEngine(created).deploy('tree', [step('tree', bytes)]);
      expect((await contended.inlineDecided).state).toBe('on');
      const rows = makeHouseRows(40, 7);
      const count = INLINE_MAX_BATCH_ROWS + 16;
      const answers = await Promise.all(
        Array.from({ length: count }, async (_, i) =>
          (await contended.infer({ kind: 'records', records: houseRecords(rows, i, 1) }, 1)).toRecords(),
        ),
      );
      expect(answers).toHaveLength(count);
      // One run of INLINE_MAX_BATCH_ROWS rows, one of the other 16.
      expect(contended.inlineRunCount).toBe(2);
      expect(contended.runCount).toBe(2);
    } finally {
      await Promise.all(created.map((made) => made.close()));
    }
  });

  it('with inlineWhenContended, still merges overlapping requests too big to run inline in the workers (dynamic batching)', async () => {
    const created: InferenceEngine[] = [];
    try {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
      const contended = await contendedInlineEngine(created).deploy('tree', [step('tree', bytes)]);
      expect((await contended.inlineDecided).state).toBe('on');
      const workers = await engine(true, false).deploy('tree', [step('tree', bytes)]);
      const rows = makeHouseRows(40, 9);
      const requests = Array.from({ length: 16 }, (_, i) => houseRecords(rows, i, INLINE_MAX_ROWS + 1));
      const viaContended = await Promise.all(
        requests.map(async (records) => (await contended.infer({ kind: 'records', records }, 1)).toRecords()),
      );
      const viaWorkers = await Promise.all(
        requests.map(async (records) => (await workers.infer({ kind: 'records', records }, 1)).toRecords()),
      );
      expect(viaContended).toEqual(viaWorkers);
      expect(contended.inlineRunCount).toBe(0);
      // Sixteen requests, fewer runs: those queued behind a busy worker were merged.
      expect(contended.runCount).toBeLessThan(16);
    } finally {
      await Promise.all(created.map((made) => made.close()));
    }
  });

  it('spends at most the turn budget on inline runs: the merged runs of one turn past it go to the workers, answering alike', async () => {
    const created: InferenceEngine[] = [];
    try {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
      // A budget of 0: the first run of a turn only.
      const made = new InferenceEngine({
        workersPerDeployment: 1,
        inlineRuns: true,
        inlineWhenContended: true,
        inlineTurnBudgetUs: 0,
      });
      created.push(made);
      const contended = await made.deploy('tree', [step('tree', bytes)]);
      expect((await contended.inlineDecided).state).toBe('on');
      const workers = await engine(true, false).deploy('tree', [step('tree', bytes)]);
      const rows = makeHouseRows(40, 11);
      // 160 requests of 8 rows in one turn: 20 merged runs of 64 rows.
      const requests = Array.from({ length: 160 }, (_, i) => houseRecords(rows, i, INLINE_MAX_ROWS));
      const viaContended = await Promise.all(
        requests.map(async (records) => (await contended.infer({ kind: 'records', records }, 1)).toRecords()),
      );
      const viaWorkers = await Promise.all(
        requests.map(async (records) => (await workers.infer({ kind: 'records', records }, 1)).toRecords()),
      );
      expect(viaContended).toEqual(viaWorkers);
      expect(contended.inlineRunCount).toBe(1);
      expect(contended.runCount).toBeGreaterThan(1);
    } finally {
      await Promise.all(created.map((made) => made.close()));
    }
  });

  it('shares the turn budget between deployments: one request to each of two in one turn, with no time left, makes one inline run', async () => {
    const created: InferenceEngine[] = [];
    try {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
      const made = new InferenceEngine({ workersPerDeployment: 1, inlineRuns: true, inlineTurnBudgetUs: 0 });
      created.push(made);
      const one = await made.deploy('one', [step('tree', bytes)]);
      const two = await made.deploy('two', [step('tree', bytes)]);
      await Promise.all([one.inlineDecided, two.inlineDecided]);
      const records = houseRecords(makeHouseRows(40, 13), 0, 1);
      const [a, b] = await Promise.all([
        one.infer({ kind: 'records', records }, 1),
        two.infer({ kind: 'records', records }, 1),
      ]);
      expect(a.toRecords()).toEqual(b.toRecords());
      expect(one.inlineRunCount + two.inlineRunCount).toBe(1);
      expect(one.runCount + two.runCount).toBe(2);
    } finally {
      await Promise.all(created.map((made) => made.close()));
    }
  });

  it('without inlineWhenContended, sends the requests that overlap to the workers for the hold after', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
    const inline = await engine(true, true).deploy('tree', [step('tree', bytes)]);
    await inline.inlineDecided;
    const rows = makeHouseRows(40, 5);
    const requests = Array.from({ length: 16 }, (_, i) => houseRecords(rows, i, 1));
    for (let wave = 0; wave < 2; wave++)
      await Promise.all(requests.map((records) => inline.infer({ kind: 'records', records }, 1)));
    // The first request of the first wave ran inline; every other one overlapped or came within the hold.
    expect(inline.inlineRunCount).toBe(1);
    expect(inline.runCount).toBeGreaterThan(1);
  });
});
