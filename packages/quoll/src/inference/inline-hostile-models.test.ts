import { closeSync, mkdtempSync, openSync, rmSync, ftruncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import {
  makeDeepChainTree,
  makeGatedFormatModel,
  makeRowFreeMathModel,
} from '../../../../test/support/hostile-inline-models.js';
import { makeScaleModel } from '../../../../test/support/synthetic-models.js';
import type { Deployment, InlineAdmission } from './deployment.js';
import { InferenceEngine } from './inference-engine.js';
import type { InferenceEngineOptions } from './inference-engine.js';
import { INLINE_MAX_MODEL_BYTES, INLINE_MAX_SLOW_RUNS, InlineRunner } from './inline-runner.js';
import type { WorkerStepSpec } from './worker-protocol.js';

// Hostile input against inline runs (review of lane `inline`, 4 December, /work/review-inline.md):
// each test is what a workspace user can do to hold the HTTP thread, and says what must hold,
// by verdicts and counters (refused, sent to the workers, tripped, inline runs counted), never by
// a clock: how long each case holds the thread against its limit is measured in
// bench/inline-hostile-models.bench.ts (timed assertions failed on this shared machine).

const { step } = inferenceEngineFixture('quoll-review-');
const created: InferenceEngine[] = [];
afterEach(async () => {
  await Promise.all(created.splice(0).map((made) => made.close()));
});
const scratch = mkdtempSync(join(tmpdir(), 'quoll-review-files-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function inlineEngine(options: InferenceEngineOptions = {}): InferenceEngine {
  const made = new InferenceEngine({
    workersPerDeployment: 1,
    syncHandoff: false,
    inlineRuns: true,
    ...options,
  });
  created.push(made);
  return made;
}

/** Starts the requests `fire` makes in this turn of the event loop, and waits for their answers. */
async function inOneTurn(fire: () => Promise<unknown>[]): Promise<unknown[]> {
  return Promise.all(fire());
}

/**
 * The trip wire's cut-off in the tests that count slow runs: well under a gated run of
 * makeGatedFormatModel(6000) (~12 ms), well over its other runs (~1.5 ms, admitted by a 2 ms
 * probe), so that the verdict does not hang on where 10 ms falls on a given machine.
 */
const TEST_SLOW_RUN_US = 4000;
/**
 * Probe limits for the tests of what an admitted pipeline does (F3, F4, F8): wide enough that a
 * loaded machine (a parallel test run, CI) does not refuse their ~0.3 ms model for a slow session
 * load or a preempted probe run (at load 7 the defaults refused it in 3 tests of 3); the
 * defaults themselves are tested in inline-prober.test.ts and F5–F7.
 */
const ADMITTING_PROBE = { maxLoadUs: 5_000_000, limitUs: 200_000 } as const;
/**
 * What the turn budget guarantees in counts: of the runs one turn brings, at least one runs inline
 * and not all of them (998e527, before the budget: 40 of 40, 40 of 40 and 161 of 161). How many
 * fit in its 2 ms depends on the machine's speed (10 at load 10-19; 11 on a quieter one), so the
 * count is not bounded here; the time they hold the thread is in the bench.
 */
/**
 * The verdict on a gated model (makeGatedFormatModel): refused by the work bound, which prices a
 * cast to strings as value-dependent (what it does today: then nothing of it runs inline), or
 * admitted, when the test goes on to check its runs. A refusal for anything else fails.
 */
function refusedByItsBound(admission: InlineAdmission): boolean {
  if (admission.state === 'on') return false;
  expect(admission).toMatchObject({
    state: 'refused',
    reason: expect.stringMatching(/no static bound/) as unknown,
  });
  return true;
}

function expectSomeInline(inlineRuns: number, brought: number): void {
  expect(inlineRuns).toBeGreaterThanOrEqual(1);
  expect(inlineRuns).toBeLessThan(brought);
}

describe('F1: deploy-time work on the calling thread', () => {
  it('qualify refuses a model file over 1 MiB by its size, without reading it', () => {
    const path = join(scratch, 'huge.onnx');
    writeFileSync(path, makeScaleModel({ width: 2 }));
    // 3 GiB (sparse: cheap to make), as an upload may be: past what readFileSync reads at all
    // (2 GiB), so a qualify that read the file would answer "cannot be read", not its size.
    const fd = openSync(path, 'r+');
    ftruncateSync(fd, 3 * 1024 ** 3);
    closeSync(fd);
    const spec = step('scale', makeScaleModel({ width: 2 }));
    const spec_: WorkerStepSpec = {
      label: 'scale 1',
      sha: spec.sha,
      path,
      inputs: spec.inputs,
      feedsFrom: null,
      single: false,
      tensorFields: null,
    };
    const answer = InlineRunner.readModels([spec_]);
    expect(answer).toEqual({ reason: `its models hold more than ${INLINE_MAX_MODEL_BYTES} bytes of ONNX` });
  });
});

describe('F3: many admitted deployments, one request each, in one turn', () => {
  it('runs some of them inline and sends the rest to the workers, whatever the number of deployments', async () => {
    const made = inlineEngine({ inlineProbe: ADMITTING_PROBE });
    // Each run also takes 28 Erf of 16 000 values, whatever its rows (~0.3 ms; no strings): within
    // the bound and the probe, and a one-row request costs what the probe's 64-row run did.
    // (First seen with makeRowFreeStringModel(4000): 32 runs, 83-123 ms in one turn.)
    const all: Deployment[] = [];
    for (let i = 0; i < 40; i++)
      all.push(
        await made.deploy(`d${i}`, [
          step(`d${i}`, makeRowFreeMathModel({ width: 16_000, layers: 28, salt: i })),
        ]),
      );
    const states = await Promise.all(all.map(async (d) => (await d.inlineDecided).state));
    const deployments = all.filter((_, i) => states[i] === 'on');
    expect(deployments.length).toBeGreaterThanOrEqual(30);
    // Past each runner's warm-up runs, one request at a time.
    for (let round = 0; round < 6; round++)
      for (const d of deployments) await d.infer({ kind: 'records', records: [{ x: [1.5] }] }, 0);
    const before = deployments.reduce((sum, d) => sum + d.inlineRunCount, 0);
    await inOneTurn(() => deployments.map((d) => d.infer({ kind: 'records', records: [{ x: [1.5] }] }, 0)));
    const inlineRuns = deployments.reduce((sum, d) => sum + d.inlineRunCount, 0) - before;
    expectSomeInline(inlineRuns, deployments.length);
  }, 120_000);
});

describe('F4: inlineWhenContended (the default on one core): the runs of one turn are not capped', () => {
  it('runs some of a turn of many requests inline and sends the rest to the workers', async () => {
    const made = inlineEngine({ inlineWhenContended: true, inlineProbe: ADMITTING_PROBE });
    const d = await made.deploy('one', [step('one', makeRowFreeMathModel({ width: 16_000, layers: 28 }))]);
    expect(await d.inlineDecided).toMatchObject({ state: 'on' });
    for (let i = 0; i < 6; i++) await d.infer({ kind: 'records', records: [{ x: [1.5] }] }, 0);
    const eight = Array.from({ length: 8 }, () => ({ x: [1.5] }));
    const before = d.inlineRunCount;
    // 320 requests of 8 rows: 40 merged runs of 64 rows, one after the other in this turn.
    // (First seen with makeRowFreeStringModel(6000): 160 requests, 20 runs, 48-150 ms.)
    await inOneTurn(() => Array.from({ length: 320 }, () => d.infer({ kind: 'records', records: eight }, 0)));
    // 40 merged runs of 64 rows.
    expectSomeInline(d.inlineRunCount - before, 40);
  }, 60_000);
});

describe("F5: a cost the probe's value patterns never open", () => {
  it('is refused by its bound, or, admitted, sent to the workers by its trip wire at its third slow run', async () => {
    const made = inlineEngine({ inlineSlowRunUs: TEST_SLOW_RUN_US });
    // 6000 doubles formatted as strings: "0" for every value the probe feeds (~1.5 ms a run),
    // DBL_MAX when a row is within (1e-30, 2e-30] (~12 ms): the bound counts both the same.
    const d = await made.deploy('gated', [step('gated', makeGatedFormatModel(6000))]);
    // Refused by the bound is one good answer (today's): nothing of it runs inline.
    if (refusedByItsBound(await d.inlineDecided)) return;
    for (let i = 0; i < 6; i++) await d.infer({ kind: 'records', records: [{ x: [0] }] }, 0);
    expect(d.inline.state).toBe('on');
    const before = d.inlineRunCount;
    // Three gated runs in separate turns: each runs inline, and the third trips the wire.
    for (let i = 0; i < INLINE_MAX_SLOW_RUNS; i++)
      await inOneTurn(() => [d.infer({ kind: 'records', records: [{ x: [1.5e-30] }] }, 0)]);
    expect(d.inlineRunCount - before).toBe(INLINE_MAX_SLOW_RUNS);
    expect(d.inline.state).toBe('tripped');
    // From then on its runs go to the workers.
    await inOneTurn(() => [d.infer({ kind: 'records', records: [{ x: [1.5e-30] }] }, 0)]);
    expect(d.inlineRunCount - before).toBe(INLINE_MAX_SLOW_RUNS);
  }, 60_000);
});

describe('F3 x F5: gated deployments, one request each, in one turn', () => {
  it('are refused by their bound, or run one of them inline (the turn budget) and the others in the workers', async () => {
    const made = inlineEngine();
    const all: Deployment[] = [];
    for (let i = 0; i < 16; i++)
      all.push(await made.deploy(`g${i}`, [step(`g${i}`, makeGatedFormatModel(6000 + i))]));
    const admissions = await Promise.all(all.map((d) => d.inlineDecided));
    // Whichever are admitted; those refused must be refused by the bound (today: all of them).
    const deployments = all.filter((_, i) => !refusedByItsBound(admissions[i]!));
    for (let round = 0; round < 6; round++)
      for (const d of deployments) await d.infer({ kind: 'records', records: [{ x: [0] }] }, 0);
    const before = deployments.reduce((sum, d) => sum + d.inlineRunCount, 0);
    const answers = await inOneTurn(() =>
      deployments.map((d) => d.infer({ kind: 'records', records: [{ x: [1.5e-30] }] }, 0)),
    );
    const inlineRuns = deployments.reduce((sum, d) => sum + d.inlineRunCount, 0) - before;
    expect(answers).toHaveLength(deployments.length);
    // A gated run (~12 ms) is past the turn's 2 ms budget by itself: the first run of the turn
    // is the one that crosses it, and no other starts.
    expect(inlineRuns).toBeLessThanOrEqual(Math.min(1, deployments.length));
  }, 120_000);
});

describe('F6: admission work on the calling thread at deploy', () => {
  it('admits or refuses a pipeline of big trees, its bound walk and session creation made in the probe thread', async () => {
    // Refused for its load time, it is probed again (INLINE_PROBE_LOAD_RETRY_DELAYS_MS): here
    // after 10 ms each time, so that the probes made again are within the timed admission too.
    const made = inlineEngine({ inlineProbe: { loadRetryDelaysMs: [10, 10, 10] } });
    // Sixteen chains of 1000 nodes (800 KB; within the 1024 levels a tree may have): its bound
    // passes, every probe pattern leaves at the root, so it is admitted; its walk and its
    // session are made on this thread.
    const bytes = makeDeepChainTree({ depth: 1000, trees: 16 });
    const model = step('chains', bytes);
    // Loaded once in the pool's worker first, so that only the admission is timed below.
    await (await made.deploy('warm', [model])).close();
    const d = await made.deploy('chains', [model]);
    const admission = await d.inlineDecided;
    // Admitted, or refused for the time its sessions take to create (measured in the probe's
    // thread, not this one): either is a good answer. How long this thread was held meanwhile is
    // in bench/inline-hostile-models.bench.ts.
    expect(['on', 'refused']).toContain(admission.state);
    if (admission.state === 'on') {
      const before = d.inlineRunCount;
      await d.infer({ kind: 'records', records: [{ x: [0.5] }] }, 0);
      expect(d.inlineRunCount - before).toBe(1);
    }
  }, 60_000);
});

describe('F7: probes under deploy/undeploy churn', () => {
  it('undeploying while probes run and wait withdraws them and leaves no probe thread', async () => {
    const made = inlineEngine();
    // 8 free dims: 17 layouts to probe each, one probe at a time; deployed together, so they queue.
    const deployed: Deployment[] = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        made.deploy(`slow${i}`, [
          step(`slow${i}`, makeRowFreeMathModel({ width: 16_000, layers: 28, salt: i, freeDims: 8 })),
        ]),
      ),
    );
    const probingAtClose = deployed.filter((d) => d.inline.state === 'probing');
    await Promise.all(deployed.map((d) => d.close()));
    // Every probe still waiting or running was withdrawn (not waited for: how long the close
    // took is in bench/inline-hostile-models.bench.ts), and no thread is left.
    expect(probingAtClose.length).toBeGreaterThanOrEqual(1);
    for (const d of probingAtClose)
      expect(d.inline).toEqual({
        state: 'refused',
        reason: 'the deployment closed before its probe answered',
      });
    expect(deployed.every((d) => d.inline.state !== 'probing')).toBe(true);
    expect(made.workerCount).toBe(0);
  }, 60_000);
});

describe('F8: one contended turn runs every request inline, past its trip wire', () => {
  it('a turn of requests whose merged run is unmergeable runs some inline and sends the rest to the workers', async () => {
    const made = inlineEngine({ inlineWhenContended: true, inlineProbe: ADMITTING_PROBE });
    // A row-free output ([16 000]): merged runs are not one row per input row, so each request of
    // the group runs again alone, inline, in the same turn.
    const d = await made.deploy('wide', [
      step('wide', makeRowFreeMathModel({ width: 16_000, layers: 28, wideOutput: true })),
    ]);
    expect((await d.inlineDecided).state).toBe('on');
    for (let i = 0; i < 6; i++) await d.infer({ kind: 'records', records: [{ x: [0.5] }] }, 0);
    const eight = Array.from({ length: 8 }, () => ({ x: [0.5] }));
    const before = d.inlineRunCount;
    await inOneTurn(() => Array.from({ length: 160 }, () => d.infer({ kind: 'records', records: eight }, 0)));
    // Each request runs alone: 160 runs.
    expectSomeInline(d.inlineRunCount - before, 160);
  }, 60_000);

  it('gated runs (F5): refused by the bound, or inline only until the trip wire fires in that turn', async () => {
    const made = inlineEngine({ inlineWhenContended: true, inlineSlowRunUs: TEST_SLOW_RUN_US });
    const d = await made.deploy('gated', [step('gated', makeGatedFormatModel(6000))]);
    // Refused by the bound (it prices string casts) is one good answer (today's).
    if (refusedByItsBound(await d.inlineDecided)) return;
    for (let i = 0; i < 6; i++) await d.infer({ kind: 'records', records: [{ x: [0] }] }, 0);
    const gated = Array.from({ length: 8 }, () => ({ x: [1.5e-30] }));
    const before = d.inlineRunCount;
    // 160 gated requests of 8 rows, each run slow (> 10 ms).
    // (Seen on 998e527: 161 inline runs in one turn, 2.0-2.9 s held, state afterwards tripped.)
    await inOneTurn(() => Array.from({ length: 160 }, () => d.infer({ kind: 'records', records: gated }, 0)));
    const runs = d.inlineRunCount - before;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(INLINE_MAX_SLOW_RUNS);
    expect(d.inline.state).toBe('tripped');
  }, 60_000);
});
