import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DecodeProgress } from './decode-progress.js';

describe('DecodeProgress', () => {
  it('tells the parent which body of which message is decoding, since when, and when all are decoded', async () => {
    const worker = new DecodeProgress();
    // The parent's view shares the worker's memory.
    const parent = new DecodeProgress(worker.buffer);
    expect(parent.read(1)).toEqual({ state: 'waiting' });
    worker.begin(1, 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const first = parent.read(1);
    expect(first).toMatchObject({ state: 'decoding', body: 0 });
    expect(first.state === 'decoding' && first.elapsedMs).toBeGreaterThanOrEqual(15);
    // The next body starts its own clock.
    worker.begin(1, 1);
    const second = parent.read(1);
    expect(second).toMatchObject({ state: 'decoding', body: 1 });
    expect(second.state === 'decoding' && second.elapsedMs).toBeLessThan(15);
    // Another message is not this one.
    expect(parent.read(2)).toEqual({ state: 'waiting' });
    worker.end(1);
    expect(parent.read(1)).toEqual({ state: 'decoded' });
    expect(parent.read(2)).toEqual({ state: 'waiting' });
  });
});

/** Starts a thread that runs `body` (an async function of `DecodeProgress`, `buffer` and `port`) from the sources. */
function progressThread(buffer: SharedArrayBuffer, body: string): Worker {
  const require = createRequire(import.meta.url);
  const manifestPath = require.resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  const tsx = pathToFileURL(join(dirname(manifestPath), manifest.exports['./esm/api']!.import.default)).href;
  const source = new URL('./decode-progress.ts', import.meta.url).href;
  const code = `const { parentPort: port, workerData } = require('node:worker_threads');
import(${JSON.stringify(tsx)})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); })
  .then(({ DecodeProgress }) => (${body})(DecodeProgress, workerData, port));`;
  return new Worker(code, { eval: true, workerData: buffer });
}

function next(worker: Worker): Promise<unknown> {
  return new Promise((resolve) => worker.once('message', resolve));
}

describe('DecodeProgress.abandon', () => {
  const worker = `async (DecodeProgress, buffer, port) => {
    const progress = new DecodeProgress(buffer);
    progress.begin(1, 0);
    port.postMessage('decoding');
    port.once('message', () => {
      progress.end(1);
      port.postMessage('ended');
    });
  }`;

  it('claims a decode under way: the worker never leaves it (it waits to be terminated), so it never starts a run', async () => {
    const parent = new DecodeProgress();
    const thread = progressThread(parent.buffer, worker);
    const said: unknown[] = [];
    expect(await next(thread)).toBe('decoding');
    thread.on('message', (message) => said.push(message));
    expect(parent.abandon(1)).toBe(true);
    thread.postMessage('finish the decode');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(said).toEqual([]);
    expect(parent.read(1)).not.toEqual({ state: 'decoded' });
    // Parked in Atomics.wait: terminate ends it.
    expect(await thread.terminate()).toBe(1);
  });

  it('refuses once the worker has left the decode (it may be running the model, which must not be interrupted)', async () => {
    const parent = new DecodeProgress();
    const thread = progressThread(parent.buffer, worker);
    expect(await next(thread)).toBe('decoding');
    thread.postMessage('finish the decode');
    expect(await next(thread)).toBe('ended');
    expect(parent.abandon(1)).toBe(false);
    expect(parent.read(1)).toEqual({ state: 'decoded' });
    await thread.terminate();
  });

  it('a worker that begins its next body after the claim stops there', async () => {
    const parent = new DecodeProgress();
    const thread = progressThread(
      parent.buffer,
      `async (DecodeProgress, buffer, port) => {
        const progress = new DecodeProgress(buffer);
        progress.begin(1, 0);
        port.postMessage('decoding');
        port.once('message', () => {
          progress.begin(1, 1);
          port.postMessage('next body');
        });
      }`,
    );
    expect(await next(thread)).toBe('decoding');
    expect(parent.abandon(1)).toBe(true);
    const said: unknown[] = [];
    thread.on('message', (message) => said.push(message));
    thread.postMessage('go on');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(said).toEqual([]);
    await thread.terminate();
  });
});
