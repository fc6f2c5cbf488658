// The engine's hand-off alone, without HTTP: batch-1 records through one deployment on one worker,
// the synchronous hand-off (engine option syncHandoff) on and off, interleaved on/off/on/off…,
// `concurrency` callers each sending its next request when its last is answered. Prints req/s
// and the process's CPU µs per request (every thread), medians of the runs, and how many runs
// took the lane. Pin it to measure the one-core case:
//   QUOLL_SHARED_DIR=/work/shared taskset -c 0 npx tsx bench/handoff-probe.ts [concurrency=1] [seconds=3] [runs=5]
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InferenceEngine } from '../packages/quoll/src/inference/index.js';
import type { Deployment, StepModel } from '../packages/quoll/src/inference/index.js';
import { inspectOnnxModel } from '../packages/quoll/src/onnx/index.js';
import { loadAverage, median, writeBenchModel } from './support.js';

const [concurrency = 1, seconds = 3, runs = 5] = process.argv.slice(2).map(Number);
const warmupS = Number(process.env.PROBE_WARMUP_S ?? 5);
const work = mkdtempSync(join(tmpdir(), 'quoll-handoff-probe-'));
const path = writeBenchModel(work);
const bytes = readFileSync(path);
const info = inspectOnnxModel(bytes);
const step: StepModel = {
  name: 'bench',
  version: '1',
  sha: createHash('sha256').update(bytes).digest('hex'),
  path,
  inputs: info.inputs,
  outputs: info.outputs,
  config: { tensorFields: null, batchConfig: null },
};
const row = Array.from({ length: 18 }, (_, i) => 0.5 + i);

async function drive(deployment: Deployment, forS: number): Promise<{ rps: number; cpuUs: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const until = started + forS * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await deployment.infer({ kind: 'records', records: [{ tensor: row }] }, 0);
        done++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { rps: done / elapsed, cpuUs: (used.user + used.system) / done };
}

const sides = [
  { label: 'message', syncHandoff: false },
  { label: 'lane', syncHandoff: true },
].map((side) => ({
  ...side,
  engine: new InferenceEngine({ workersPerDeployment: 1, syncHandoff: side.syncHandoff }),
  rps: [] as number[],
  cpu: [] as number[],
}));
try {
  const deployments = await Promise.all(sides.map((side) => side.engine.deploy('bench', [step])));
  for (const deployment of deployments) await drive(deployment, warmupS);
  const loadBefore = loadAverage();
  for (let run = 0; run < runs; run++)
    for (const [i, side] of sides.entries()) {
      const r = await drive(deployments[i]!, seconds);
      side.rps.push(r.rps);
      side.cpu.push(r.cpuUs);
    }
  console.log(
    `batch-1 records, ${concurrency} caller(s), ${seconds} s × ${runs}, availableParallelism ${availableParallelism()}, load ${loadBefore}–${loadAverage()}`,
  );
  for (const side of sides) {
    const lane = side.engine.pool.workers[0]!.laneRuns;
    console.log(
      `${side.label}: ${Math.round(median(side.rps))} req/s [${side.rps.map(Math.round).join(' ')}], CPU ${median(side.cpu).toFixed(1)} µs/request [${side.cpu.map((c) => c.toFixed(0)).join(' ')}], lane runs ${lane.sync} in time + ${lane.late} late`,
    );
  }
  const [off, on] = sides;
  console.log(
    `lane/message req/s ${(median(on!.rps) / median(off!.rps)).toFixed(2)}; CPU per request message/lane ${(median(off!.cpu) / median(on!.cpu)).toFixed(2)}`,
  );
} finally {
  await Promise.all(sides.map((side) => side.engine.close()));
  rmSync(work, { recursive: true, force: true });
}
