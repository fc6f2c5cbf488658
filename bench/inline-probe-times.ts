// What the admission probe of inline runs measures (packages/quoll/src/inference/inline-prober.ts)
// for the tutorial's forest and the test models: each model's work bound, and the probe's report
// (its slowest (layout, pattern)'s fastest run), taken `PROBE_ROUNDS` times in the probe's own
// thread with no limit, so that INLINE_PROBE_LIMIT_US (2 ms) can be set against them.
// Usage: [PROBE_ROUNDS=5] npx tsx bench/inline-probe-times.ts
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InlineProber } from '../packages/quoll/src/inference/inline-prober.js';
import { InlineRunner } from '../packages/quoll/src/inference/inline-runner.js';
import type { WorkerStepSpec } from '../packages/quoll/src/inference/worker-protocol.js';
import { inspectOnnxModel } from '../packages/quoll/src/onnx/index.js';
import {
  makeInt64SumModel,
  makeMultiIoModel,
  makeOpenInferenceExampleModel,
  makeScaleModel,
  makeTreeEnsembleRegressor,
} from '../test/support/synthetic-models.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../test/support/shared-fixtures.js';
import { loadAverage, median } from './support.js';

const rounds = Number(process.env.PROBE_ROUNDS ?? 5);
const models: [string, Uint8Array][] = [
  ['tree 20 × depth 5, 18 features', makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 })],
  [
    'tree 50 × depth 8 (bench model w/o fixtures)',
    makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 }),
  ],
  ['tree 100 × depth 6, 29 features', makeTreeEnsembleRegressor({ features: 29, trees: 100, depth: 6 })],
  ['scale 18', makeScaleModel()],
  ['multi-io', makeMultiIoModel()],
  ['int64 sum', makeInt64SumModel()],
  ['open inference example', makeOpenInferenceExampleModel()],
];
if (hasSharedFixtures)
  models.unshift(["tutorial's rf_model.onnx", readFileSync(`${SHARED_FIXTURES}rf_model.onnx`)]);

const dir = mkdtempSync(join(tmpdir(), 'quoll-probe-times-'));
const prober = new InlineProber({ limitUs: Number.MAX_SAFE_INTEGER });
console.log(`load before: ${loadAverage()}`);
try {
  for (const [name, bytes] of models) {
    const path = join(dir, `${createHash('sha256').update(bytes).digest('hex')}.onnx`);
    writeFileSync(path, bytes);
    const info = inspectOnnxModel(bytes);
    const spec: WorkerStepSpec = {
      label: name,
      sha: createHash('sha256').update(bytes).digest('hex'),
      path,
      inputs: info.inputs,
      feedsFrom: null,
      single: false,
      tensorFields: null,
    };
    const read = InlineRunner.readModels([spec]);
    if ('reason' in read) {
      console.log(`${name}: not qualified: ${read.reason}`);
      continue;
    }
    const slowest: number[] = [];
    let last = '';
    let work = 0;
    for (let round = 0; round < rounds; round++) {
      const verdict = await prober.probe([spec], read.files).verdict;
      if (!verdict.admitted) throw new Error(`${name}: ${verdict.reason}`);
      slowest.push(verdict.report.slowestUs);
      work = verdict.report.work;
      last = `${verdict.report.slowest}; ${verdict.report.runs} runs, load ${Math.round(verdict.report.loadUs)} µs`;
    }
    console.log(
      `${name} (${bytes.byteLength} B): bound ${work} element ops; slowest probed run, median of ${rounds}: ${Math.round(median(slowest))} µs (${slowest.map((us) => Math.round(us)).join(' ')}); ${last}`,
    );
  }
} finally {
  await prober.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`load after: ${loadAverage()}`);
}
