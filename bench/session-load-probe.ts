// What creating a session of the bench model costs a thread, split by where the time goes: for
// the inline probe's load limit (packages/quoll/src/inference/run-inline-probe.ts), whose loads
// run in a fresh worker thread while the HTTP thread's own creation, once admitted, is a first
// load in that thread. Per load: wall time, the thread's own time as the probe counts it (wall
// less the time queued for a CPU, /proc/thread-self/schedstat), its CPU time (schedstat's first
// field, which lags by up to a scheduler tick), context switches and minor page faults.
// Each round: a fresh worker thread makes SESSION_LOADS loads (the probe's thread); then, in
// the main thread of the same process, SESSION_LOADS loads (the HTTP thread's, after a worker
// loaded the model first, as the pool's worker does at deploy). Linux only; pin it, as the
// benches pin the server:
//   taskset -c 0 node --import tsx bench/session-load-probe.ts [rounds=3]
// Env: SESSION_LOADS (4), QUOLL_SHARED_DIR (the tutorial's forest; else a synthetic forest).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort } from 'node:worker_threads';
import { createSession } from '../packages/quoll/src/inference/native-session.js';
import { spawnModuleWorker } from '../packages/quoll/src/threads/index.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../test/support/shared-fixtures.js';

const LOADS = Number(process.env.SESSION_LOADS ?? 4);

interface Reading {
  wallUs: number;
  ownUs: number;
  cpuUs: number;
  voluntary: number;
  involuntary: number;
  faults: number;
}

function read(): Reading {
  const [cpuNs = 0, waitedNs = 0] = readFileSync('/proc/thread-self/schedstat', 'utf8')
    .trim()
    .split(' ')
    .map(Number);
  const status = readFileSync('/proc/thread-self/status', 'utf8');
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const wallUs = performance.now() * 1000;
  return {
    wallUs,
    ownUs: wallUs - waitedNs / 1000,
    cpuUs: cpuNs / 1000,
    voluntary: Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1]),
    involuntary: Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1]),
    faults: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]),
  };
}

function loads(bytes: Uint8Array, count: number): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < count; i++) {
    const before = read();
    const session = createSession(bytes, 1);
    const after = read();
    session.release();
    out.push({
      wallUs: after.wallUs - before.wallUs,
      ownUs: after.ownUs - before.ownUs,
      cpuUs: after.cpuUs - before.cpuUs,
      voluntary: after.voluntary - before.voluntary,
      involuntary: after.involuntary - before.involuntary,
      faults: after.faults - before.faults,
    });
  }
  return out;
}

const model = (): Uint8Array =>
  hasSharedFixtures
    ? new Uint8Array(readFileSync(`${SHARED_FIXTURES}rf_model.onnx`))
    : makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 });

const show = (where: string, readings: Reading[]): void => {
  console.log(`${where}:`);
  for (const [i, r] of readings.entries())
    console.log(
      `  load ${i + 1}: own ${(r.ownUs / 1000).toFixed(1)} ms, cpu ${(r.cpuUs / 1000).toFixed(1)} ms, wall ${(r.wallUs / 1000).toFixed(1)} ms, ${r.faults} faults, ${r.voluntary} blocked / ${r.involuntary} preempted`,
    );
};

if (!isMainThread) {
  parentPort!.postMessage(loads(model(), LOADS));
} else {
  const rounds = Number(process.argv[2] ?? 3);
  const bytes = model();
  console.log(
    `model: ${hasSharedFixtures ? "the tutorial's rf_model.onnx" : 'synthetic forest'}; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`,
  );
  for (let round = 0; round < rounds; round++) {
    const fresh = await new Promise<Reading[]>((resolve, reject) => {
      const worker = spawnModuleWorker(import.meta.url, 'session-load-probe');
      worker.once('message', (m: Reading[]) => {
        resolve(m);
        void worker.terminate();
      });
      worker.once('error', reject);
    });
    show(`round ${round + 1}, a fresh worker thread (the probe's)`, fresh);
    // The main thread's first loads once (round 1 only): a long-lived thread's later loads after.
    show(`round ${round + 1}, the main thread (the HTTP thread's)`, loads(bytes, LOADS));
  }
}
