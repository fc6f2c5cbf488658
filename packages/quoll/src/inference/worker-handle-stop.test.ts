import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { makeScaleModel } from '../../../../test/support/synthetic-models.js';
import { inspectOnnxModel } from '../onnx/index.js';
import { WorkerHandle } from './worker-handle.js';

// How an inference thread is stopped: `Worker.terminate()` while onnxruntime-node is in a call on
// the thread (its binding loading as the thread starts, a load, a run) aborts the whole process,
// so a thread is asked to leave (it releases its sessions and ends on its own) unless it is known
// to run JavaScript. The abort itself is shown in inline-prober.test.ts ("still starting").

const dir = mkdtempSync(join(tmpdir(), 'quoll-worker-stop-'));
const model = join(dir, 'scale.onnx');
const bytes = makeScaleModel({ width: 2 });
writeFileSync(model, bytes);
const [input] = inspectOnnxModel(bytes).inputs;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

async function whenStarted(handle: WorkerHandle): Promise<void> {
  while (!handle.started) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('stopping an inference thread', () => {
  it('close(): after its requests, the thread leaves on its own (it releases its sessions), never terminated', async () => {
    const terminate = vi.spyOn(Worker.prototype, 'terminate');
    const handle = new WorkerHandle({ syncHandoff: true });
    await handle.loadModel('scale', model, 'scale', 1);
    await handle.plan('p', [
      {
        label: 'scale',
        sha: 'scale',
        path: model,
        inputs: [input!],
        feedsFrom: null,
        single: false,
        tensorFields: null,
      },
    ]);
    const feeds = [{ name: input!.name, type: 'float32' as const, dims: [1, 2], data: new Float32Array(2) }];
    const run = handle.infer('p', feeds, 1);
    const closed = handle.close();
    await expect(run).resolves.toHaveLength(1);
    await closed;
    expect(handle.exitCode).toBe(0);
    expect(terminate).not.toHaveBeenCalled();
  });

  it('terminate() of a thread still starting does not terminate it: it leaves once started', async () => {
    const terminate = vi.spyOn(Worker.prototype, 'terminate');
    const handle = new WorkerHandle();
    // Its modules (onnxruntime-node's binding among them) take far longer to load than this.
    expect(handle.started).toBe(false);
    await handle.terminate();
    expect(handle.exitCode).toBe(0);
    expect(terminate).not.toHaveBeenCalled();
  });

  it('terminate() of a started thread (in JavaScript, as its caller knows) terminates it at once', async () => {
    const terminate = vi.spyOn(Worker.prototype, 'terminate');
    const handle = new WorkerHandle();
    await whenStarted(handle);
    await handle.terminate();
    expect(handle.exitCode).toBe(1);
    expect(terminate).toHaveBeenCalledTimes(1);
  });
});
