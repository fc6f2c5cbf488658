import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeHouseRows } from '../../../../test/support/synthetic-data.js';
import {
  makeCraftedSlowModel,
  makeInt64SumModel,
  makeMultiIoModel,
  makeOpenInferenceExampleModel,
  makeScaleModel,
  makeSlowOnDemandModel,
  makeTreeEnsembleRegressor,
} from '../../../../test/support/synthetic-models.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../../../../test/support/shared-fixtures.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { InferenceEngine } from './inference-engine.js';
import {
  INLINE_MAX_BATCH_ELEMENTS,
  INLINE_MAX_BATCH_ROWS,
  INLINE_MAX_ROWS,
  InlineRunner,
} from './inline-runner.js';
import { InlineSessions } from './inline-sessions.js';
import { boundPipelineWork } from './bound-pipeline-work.js';
import type { ThreadClock } from '../threads/index.js';
import type { WireTensor } from './tensor-data.js';

// Inline runs (inline-runner.ts): small runs of small models with bounded run times run on the
// calling thread, with no hand-off to a model worker.

const { engine, step } = inferenceEngineFixture('quoll-inline-');

function houseRecords(rows: Float32Array, from: number, count: number): { tensor: number[] }[] {
  return Array.from({ length: count }, (_, i) => ({
    tensor: Array.from(rows.subarray(((from + i) % 40) * 18, ((from + i) % 40) * 18 + 18)),
  }));
}

describe('inline runs', () => {
  it('answers small runs of a tree ensemble on the calling thread exactly as the workers do', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
    const inline = await engine(true, true).deploy('tree', [step('tree', bytes)]);
    const workers = await engine(true, false).deploy('tree', [step('tree', bytes)]);
    // Its runs go to the workers until its admission probe answers (inline-prober.test.ts).
    expect((await inline.inlineDecided).state).toBe('on');
    const rows = makeHouseRows(40, 3);
    const viaInline: unknown[] = [];
    const viaWorkers: unknown[] = [];
    for (let row = 0; row < 40; row++) {
      // Batch 1, 2 and a batch over the inline limit (which goes to the worker).
      const width = row % 3 === 2 ? INLINE_MAX_ROWS + 1 : (row % 3) + 1;
      const records = houseRecords(rows, row, width);
      viaInline.push((await inline.infer({ kind: 'records', records }, 5)).toRecords());
      viaWorkers.push((await workers.infer({ kind: 'records', records }, 5)).toRecords());
    }
    expect(viaInline).toEqual(viaWorkers);
    // Every batch of 1 or 2 rows ran inline; the larger ones did not.
    expect(inline.inlineRunCount).toBe(27);
    expect(inline.inlineBytes).toBe(bytes.byteLength);
    expect(workers.inlineRunCount).toBe(0);
    expect(workers.inlineBytes).toBe(0);
  });

  it('leaves overlapping requests to the workers (dynamic batching), with the same answers', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
    const inline = await engine(true, true).deploy('tree', [step('tree', bytes)]);
    const workers = await engine(true, false).deploy('tree', [step('tree', bytes)]);
    await inline.inlineDecided;
    const rows = makeHouseRows(40, 5);
    const requests = Array.from({ length: 16 }, (_, i) => houseRecords(rows, i, 1));
    const viaInline = await Promise.all(
      requests.map(async (records) => (await inline.infer({ kind: 'records', records }, 1)).toRecords()),
    );
    const viaWorkers = await Promise.all(
      requests.map(async (records) => (await workers.infer({ kind: 'records', records }, 1)).toRecords()),
    );
    expect(viaInline).toEqual(viaWorkers);
    // All sixteen were asked for in one turn: the first runs inline, the others overlap it.
    expect(inline.inlineRunCount).toBe(1);
  });

  it('holds a model once on the calling thread for every deployment of it, within the budget of one worker', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
    const created = engine(true, true);
    const first = await created.deploy('one', [step('tree', bytes)]);
    const second = await created.deploy('two', [step('tree', bytes)]);
    await Promise.all([first.inlineDecided, second.inlineDecided]);
    expect(first.inlineBytes).toBe(bytes.byteLength);
    expect(second.inlineBytes).toBe(bytes.byteLength);
    expect(created.inlineModelBytes).toBe(bytes.byteLength);
    await first.close();
    expect(created.inlineModelBytes).toBe(bytes.byteLength);
    await second.close();
    expect(created.inlineModelBytes).toBe(0);

    // A budget smaller than the model: nothing is held on the calling thread, the workers run it.
    const small = new InferenceEngine({ workersPerDeployment: 1, modelMemoryBytes: 1, inlineRuns: true });
    try {
      const tree = await small.deploy('tree', [step('tree', bytes)]);
      expect((await tree.inlineDecided).state).toBe('refused');
      await tree.infer({ kind: 'records', records: houseRecords(makeHouseRows(40, 3), 0, 1) }, 0);
      expect(tree.inlineRunCount).toBe(0);
      expect(small.inlineModelBytes).toBe(0);
    } finally {
      await small.close();
    }
  });

  it('is off unless asked for: an engine without inlineRuns holds and runs nothing on the calling thread', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
    const plain = new InferenceEngine({ workersPerDeployment: 1 });
    try {
      const tree = await plain.deploy('tree', [step('tree', bytes)]);
      for (let i = 0; i < 3; i++) {
        await tree.infer({ kind: 'records', records: houseRecords(makeHouseRows(40, 3), i, 1) }, 0);
      }
      expect(tree.inlineRunCount).toBe(0);
      expect(tree.inlineBytes).toBe(0);
      expect(plain.inlineModelBytes).toBe(0);
    } finally {
      await plain.close();
    }
  });

  it('never runs a model whose run time its input can choose on the calling thread', async () => {
    const slow = await engine(true, true).deploy('slow', [step('slow', makeSlowOnDemandModel())]);
    const answer = await slow.infer({ kind: 'records', records: [{ x: [1] }] }, 0);
    expect(answer.toRecords()[0]!['out.y']).toEqual([1]);
    expect(slow.inlineBytes).toBe(0);
    expect(slow.inlineRunCount).toBe(0);
  });

  it.each(['broadcast', 'self-product', 'gather'] as const)(
    'never runs the crafted %s model, whose work grows with a power of its feed, on the calling thread',
    async (kind) => {
      const crafted = await engine(true, true).deploy(kind, [step(kind, makeCraftedSlowModel(kind))]);
      const answer = await crafted.infer({ kind: 'records', records: [{ x: [1, 2, 3] }] }, 0);
      expect(answer.toRecords()[0]!['out.y']).toEqual([1, 2, 3]);
      expect(crafted.inlineBytes).toBe(0);
      expect(crafted.inlineRunCount).toBe(0);
    },
  );

  const smallModels: [string, () => Uint8Array][] = [
    [
      'tree ensemble of 20 trees, depth 5',
      () => makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 }),
    ],
    [
      'tree ensemble of 100 trees, depth 6, 29 features',
      () => makeTreeEnsembleRegressor({ features: 29, trees: 100, depth: 6 }),
    ],
    ['scale model', () => makeScaleModel()],
    ['multi-io model', () => makeMultiIoModel()],
    ['int64 sum model', () => makeInt64SumModel()],
    ['open inference example model', () => makeOpenInferenceExampleModel()],
  ];
  if (hasSharedFixtures)
    smallModels.push(["tutorial's random forest", () => readFileSync(`${SHARED_FIXTURES}rf_model.onnx`)]);

  it.each(smallModels)(
    'holds the %s on the calling thread: its bound is within the budget (unless it loads slowly)',
    async (_what, make) => {
      const bytes = make();
      const deployed = await engine(true, true).deploy('small', [step('small', bytes)]);
      const admission = await deployed.inlineDecided;
      // Within its bound; run inline unless its sessions take too long to create for the HTTP
      // thread (INLINE_PROBE_MAX_LOAD_US: the 100-tree forest can, on a busy machine).
      if (admission.state !== 'on') {
        expect(admission.reason).toMatch(/^creating its sessions took /);
        return;
      }
      expect(deployed.inlineBytes).toBe(bytes.byteLength);
    },
  );

  it('bounds a pipeline step by what the step before it feeds it', async () => {
    const scale = makeScaleModel({ width: 18, outputName: 'scaled' });
    const tree = makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 });
    const bounded = await engine(true, true).deploy('chain', [step('scale', scale), step('tree', tree)]);
    expect((await bounded.inlineDecided).state).toBe('on');
    expect(bounded.inlineBytes).toBe(scale.byteLength + tree.byteLength);
    const records = houseRecords(makeHouseRows(40, 3), 0, 1);
    const viaWorkers = await engine(true, false).deploy('chain', [step('scale', scale), step('tree', tree)]);
    expect((await bounded.infer({ kind: 'records', records }, 0)).toRecords()).toEqual(
      (await viaWorkers.infer({ kind: 'records', records }, 0)).toRecords(),
    );
    expect(bounded.inlineRunCount).toBe(1);
    // The crafted model behind a step of 18 values a row: its columns are as wide as those rows allow.
    const crafted = makeCraftedSlowModel('broadcast');
    const unbounded = await engine(true, true).deploy('crafted', [
      step('scale', scale),
      step('crafted', crafted),
    ]);
    expect(unbounded.inlineBytes).toBe(0);
  });

  it('leaves a batch of many values to the workers, however few rows it has', async () => {
    // One row of 100 000 values: a small row count does not make a small run, and as no request
    // of this model is ever small enough, it is not even held on the calling thread.
    const wide = await engine(true, true).deploy('wide', [
      step('wide', makeScaleModel({ width: 100_000, factor: 2 })),
    ]);
    const narrow = await engine(true, true).deploy('narrow', [
      step('narrow', makeScaleModel({ width: 2, factor: 2 })),
    ]);
    const x = Array.from({ length: 100_000 }, (_, i) => i % 7);
    const answer = await wide.infer({ kind: 'records', records: [{ tensor: x }] }, 0);
    expect((answer.toRecords()[0]!['out.scaled'] as number[]).slice(0, 8)).toEqual([
      0, 2, 4, 6, 8, 10, 12, 0,
    ]);
    expect((await wide.inlineDecided).reason).toMatch(/a row holds 100000 values/);
    expect(wide.inlineBytes).toBe(0);
    expect(wide.inlineRunCount).toBe(0);
    await narrow.inlineDecided;
    await narrow.infer({ kind: 'records', records: [{ tensor: [1, 2] }] }, 0);
    expect(narrow.inlineRunCount).toBe(1);
  });

  it('refuses a request it cannot run exactly as the workers do', async () => {
    const bytes = makeScaleModel({ width: 2, factor: 2 });
    const inline = await engine(true, true).deploy('scale', [step('scale', bytes)]);
    const workers = await engine(true, false).deploy('scale', [step('scale', bytes)]);
    expect((await inline.inlineDecided).state).toBe('on');
    // Three values where the model takes two per row.
    const records = [{ tensor: [1, 2, 3] }];
    const inlineError = await inline.infer({ kind: 'records', records }, 0).catch((error: unknown) => error);
    const workerError = await workers.infer({ kind: 'records', records }, 0).catch((error: unknown) => error);
    expect(inlineError).toMatchObject({ code: (workerError as { code: string }).code });
    expect((inlineError as Error).message).toEqual((workerError as Error).message);
  });
});

describe('the trip wire', () => {
  /** An InlineRunner of the tree ensemble, its runs judged against a cut-off of 0 µs (every run is slow in wall time). */
  function runnerOf(clock: ThreadClock, tripped: () => void): { runner: InlineRunner; release: () => void } {
    const spec = step('tree', makeTreeEnsembleRegressor({ features: 18, trees: 3, depth: 3 }));
    const specs = [
      {
        label: 'tree',
        sha: spec.sha,
        path: spec.path,
        inputs: spec.inputs,
        feedsFrom: null,
        single: false,
        tensorFields: null,
      },
    ];
    const models = InlineRunner.readModels(specs);
    if (!('files' in models)) throw new Error(models.reason);
    const bound = boundPipelineWork(specs, models.files, {
      rows: INLINE_MAX_BATCH_ROWS,
      elements: INLINE_MAX_BATCH_ELEMENTS,
    });
    if (!bound.bounded) throw new Error(bound.reason);
    const sessions = new InlineSessions(1 << 30);
    const runner = InlineRunner.create(
      { specs, ...models, work: bound.work, inputs: bound.inputs },
      sessions,
      {
        slowRunUs: 0,
        onTripped: tripped,
        clock,
      },
    );
    if (runner === null) throw new Error('no runner');
    return { runner, release: () => runner.release() };
  }
  const feeds = (): WireTensor[] => [
    { name: 'float_input', type: 'float32', dims: [1, 18], data: makeHouseRows(1, 3) },
  ];
  /** A thread clock that moves `stepUs` per reading. */
  const ticking = (stepUs: number): ThreadClock => {
    let now = 0;
    return { kind: 'unqueued', now: () => (now += stepUs), close: () => undefined };
  };

  it('does not fire on runs slow only in wall time (their thread waited for a CPU): a busy machine', () => {
    let fired = 0;
    // The thread's own time does not move: every run's wall time was spent waiting for a CPU.
    const { runner, release } = runnerOf(ticking(0), () => fired++);
    try {
      for (let run = 0; run < 40; run++) runner.run(feeds(), 1);
      expect(runner.runs).toBe(40);
      expect(runner.tripped).toBe(false);
      expect(runner.accepts(feeds(), 1)).toBe(true);
      expect(fired).toBe(0);
    } finally {
      release();
    }
  });

  it("fires on the third run slow in the thread's own time too, the first slow one counted once the next confirms it", () => {
    let fired = 0;
    const { runner, release } = runnerOf(ticking(1000), () => fired++);
    try {
      // Four warm-up runs are not judged; then three slow runs.
      for (let run = 0; run < 6; run++) runner.run(feeds(), 1);
      expect(runner.tripped).toBe(false);
      runner.run(feeds(), 1);
      expect(runner.tripped).toBe(true);
      expect(fired).toBe(1);
      expect(runner.accepts(feeds(), 1)).toBe(false);
    } finally {
      release();
    }
  });
});
