import type * as WorkerThreads from 'node:worker_threads';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { ERROR_CODES } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { makeInt64SumModel, makeSlowOnDemandModel } from '../../../../test/support/synthetic-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import type { Deployment, InferenceEngine } from './index.js';
import type { PoolWorker } from './pool-worker.js';
import { WorkerHandle } from './worker-handle.js';
import { WORKER_PROTOCOL_VERSION } from './worker-protocol.js';

// What becomes of requests when a model worker thread dies under them (a runtime that crashes
// the thread, an out-of-memory, `process.exit` in the worker): each caller gets a catalogue 5xx,
// nobody waits forever, and the pool serves the next request on a fresh thread. Both hand-off
// paths: by message and through the synchronous lane. The model workers started here run
// `test/support/dying-inference-worker.ts`, which ends its thread on a request holding DIE_ON.

/** Every worker thread started in this file, oldest first (the real Worker, recorded). */
const spawned = vi.hoisted(() => [] as Worker[]);
vi.mock('node:worker_threads', async (importOriginal) => {
  const actual = await importOriginal<typeof WorkerThreads>();
  const dying = new URL('../../../../test/support/dying-inference-worker.ts', import.meta.url).href;
  class RecordedWorker extends actual.Worker {
    constructor(script: string | URL, options?: ConstructorParameters<typeof actual.Worker>[1]) {
      // The engine starts its workers from the TypeScript sources through a tsx bootstrap.
      const entry =
        typeof script === 'string' && options?.eval === true
          ? script.replace(/"file:[^"]*\/inference-worker\.ts"/, JSON.stringify(dying))
          : script;
      super(entry, options);
      spawned.push(this);
    }
  }
  return { ...actual, Worker: RecordedWorker };
});

const { engine, step } = inferenceEngineFixture('quoll-worker-exit-');

/** The value the test worker dies on (`DIE_ON` of `dying-inference-worker.ts`, which is not imported here: it is a worker entry). */
const DIE_ON = 666;
const FAST = { kind: 'records' as const, records: [{ x: [1] }] };
/** A request the test worker dies on (see `dying-inference-worker.ts`). */
const DIE = { kind: 'records' as const, records: [{ x: [DIE_ON] }] };

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw new Error(`expected an ApiError, got ${String(error)}`);
  }
  throw new Error('expected a rejection');
}

/** The newest worker thread (the deployment's, in these tests). */
function newestWorker(): Worker {
  const worker = spawned.at(-1);
  if (!worker) throw new Error('no worker thread was started');
  return worker;
}

async function deployIdentity(
  syncHandoff: boolean,
): Promise<{ created: InferenceEngine; deployment: Deployment }> {
  const created = engine(syncHandoff);
  const deployment = await created.deploy('identity', [step('identity', makeSlowOnDemandModel())]);
  // Warm the session (and, with the lane, measure it: the first runs go by message).
  for (let i = 0; i < 3; i++) await deployment.infer(FAST, 0);
  return { created, deployment };
}

/** Lets a parked worker be parked: the lane is taken only while the worker waits in it. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 30));
}

/** Runs fast requests until one took the lane (the plan's first runs are measured by message). */
async function untilLane(pooled: PoolWorker, deployment: Deployment): Promise<void> {
  const before = pooled.laneRuns.sync;
  for (let i = 0; i < 100 && pooled.laneRuns.sync === before; i++) {
    await deployment.infer(FAST, 0);
    if (i % 10 === 9) await settle();
  }
  expect(pooled.laneRuns.sync).toBeGreaterThan(before);
}

function expectWorkerStopped(error: ApiError): void {
  expect(error.code).toBe('inference_failed');
  expect(ERROR_CODES[error.code].status).toBe(500);
  expect(error.message).toMatch(/inference worker stopped \(exit code 13\)/);
  expect(error.message).toMatch(/retry/i);
}

async function expectServed(deployment: Deployment, x: number): Promise<void> {
  const answer = await deployment.infer({ kind: 'records', records: [{ x: [x] }] }, 0);
  expect(answer.toRecords()[0]!['out.y']).toEqual([x]);
}

describe('a model worker that dies mid-request', () => {
  it('by message: every request the thread held fails with inference_failed; the queued ones and the next run on a fresh thread', async () => {
    const { created, deployment } = await deployIdentity(false);
    const before = spawned.length;
    // Two runs sent to the worker (the one it dies on, one behind it) and a third queued in the deployment.
    const dying = rejection(deployment.infer(DIE, 0));
    const behind = rejection(deployment.infer(FAST, 0));
    const queued = deployment.infer({ kind: 'records', records: [{ x: [2] }] }, 0);
    expectWorkerStopped(await dying);
    expectWorkerStopped(await behind);
    // The queued request waited for a place on the worker: the fresh thread answers it.
    expect((await queued).toRecords()[0]!['out.y']).toEqual([2]);
    expect(spawned.length).toBe(before + 1);
    expect(created.pool.threadCount).toBe(1);
    await expectServed(deployment, 7);
  });

  it('through the lane: the caller of a run whose thread dies in the lane gets inference_failed, and the next run is served', async () => {
    const { created, deployment } = await deployIdentity(true);
    // One eligible run in LANE_PROBE_EVERY goes by message anyway: try again if this one did.
    let late = false;
    for (let attempt = 0; attempt < 4 && !late; attempt++) {
      const pooled = created.pool.workers[0]!;
      await untilLane(pooled, deployment);
      const lateBefore = pooled.laneRuns.late;
      const dying = rejection(deployment.infer(DIE, 0));
      late = pooled.laneRuns.late === lateBefore + 1;
      expectWorkerStopped(await dying);
      expect(created.pool.threadCount).toBe(1);
      await expectServed(deployment, 3);
    }
    expect(late).toBe(true);
  });

  it('through the lane: a thread that dies while parked idle leaves no caller waiting; the next runs take a fresh thread', async () => {
    const { created, deployment } = await deployIdentity(true);
    await untilLane(created.pool.workers[0]!, deployment);
    await settle();
    const worker = newestWorker();
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    // Parked in Atomics.wait, not in onnxruntime: terminating it from outside is safe.
    await worker.terminate();
    await exited;
    for (let i = 0; i < 20; i++) await expectServed(deployment, i);
    expect(newestWorker()).not.toBe(worker);
  });

  it('JSON records decoded in the worker: the bodies the thread held fail with inference_failed, the next body is served', async () => {
    const { deployment } = await deployIdentity(false);
    const body = (x: number): { kind: 'undecoded-records'; body: Uint8Array; deadlineMs: number } => ({
      kind: 'undecoded-records',
      body: new TextEncoder().encode(JSON.stringify([{ x: [x] }])),
      deadlineMs: 5000,
    });
    expectWorkerStopped(await rejection(deployment.infer(body(DIE_ON), 0)));
    const next = await deployment.infer(body(4), 0);
    expect(next.toRecords()[0]).toMatchObject({ 'in.x': [4], 'out.y': [4] });
  });
});

describe('the worker’s message loop', () => {
  it('a message it cannot handle is answered as failed; the thread lives on and runs the next requests', async () => {
    const created = engine(false);
    const deployment = await created.deploy('sum', [step('sum', makeInt64SumModel())]);
    await deployment.infer({ kind: 'records', records: [{ x: [1, 2, 3] }] }, 0);
    const worker = newestWorker();
    const answers: unknown[] = [];
    worker.on('message', (message: unknown) => answers.push(message));
    const errors: unknown[] = [];
    worker.on('error', (error: unknown) => errors.push(error));
    // Not a message at all (handling it throws), then one of a type this worker does not know.
    worker.postMessage(null);
    worker.postMessage({ v: WORKER_PROTOCOL_VERSION, type: 'no-such-type', id: 987_654 });
    const answer = await deployment.infer({ kind: 'records', records: [{ x: [4, 5, 6] }] }, 0);
    expect(answer.toRecords()[0]!['out.sum']).toEqual([15]);
    expect(answers).toContainEqual(
      expect.objectContaining({ type: 'failed', id: 987_654, stage: 'protocol' }),
    );
    expect(errors).toEqual([]);
    expect(newestWorker()).toBe(worker);
  });

  it('a handle whose thread has stopped refuses new requests at once instead of leaving them unanswered', async () => {
    const handle = new WorkerHandle();
    const worker = newestWorker();
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await worker.terminate();
    await exited;
    await expect(handle.validate(makeInt64SumModel())).rejects.toThrow(/inference worker stopped/);
    await handle.close();
  }, 10_000);
});
