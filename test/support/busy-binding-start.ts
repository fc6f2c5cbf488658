/**
 * Imported first in worker threads that must be caught starting (`--import` does not reach worker
 * threads: the test puts it in front of the thread's entry): in every
 * worker thread, onnxruntime-node's native binding, once loaded, runs a model over and over
 * (native code of the binding, where `Worker.terminate()` aborts the whole process) for
 * `BUSY_BINDING_MS` ms before the thread's other modules go on loading. It stands in for the
 * binding's own load, the native code every inference thread runs as it starts, made long enough
 * for a test to stop the thread there. When it begins, it writes the file `BUSY_BINDING_MARKER`.
 *
 * Environment: `BUSY_BINDING_MODEL` (an ONNX file taking float32 [N, 2]), `BUSY_BINDING_MS`,
 * `BUSY_BINDING_MARKER`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  readonly inputMetadata: { name: string }[];
  readonly outputMetadata: { name: string }[];
  run(feeds: object, fetches: object, options: object): unknown;
  dispose(): void;
}

interface NativeBinding {
  InferenceSession: new () => NativeSession;
  initOrtOnce(logLevel: number, tensor: unknown, isMainThread: boolean): void;
}

type Loader = (module: { exports: unknown }, filename: string) => void;

if (!isMainThread) {
  const require = createRequire(import.meta.url);
  const extensions = (require('node:module') as { _extensions: Record<string, Loader> })._extensions;
  const load = extensions['.node']!;
  extensions['.node'] = function (module, filename) {
    load.call(this, module, filename);
    if (!filename.endsWith('onnxruntime_binding.node')) return;
    const native = module.exports as NativeBinding;
    const { Tensor } = require('onnxruntime-common') as { Tensor: new (...args: unknown[]) => unknown };
    native.initOrtOnce(2, Tensor, false);
    // The package's own init (binding.js) comes next: once per thread is all the binding takes.
    native.initOrtOnce = () => undefined;
    const bytes = readFileSync(process.env.BUSY_BINDING_MODEL!);
    const session = new native.InferenceSession();
    session.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, {});
    // Runs of a few milliseconds: the thread is in native code nearly all of the time.
    const feeds = {
      [session.inputMetadata[0]!.name]: new Tensor('float32', new Float32Array(400_000), [200_000, 2]),
    };
    const fetches = Object.fromEntries(session.outputMetadata.map((meta) => [meta.name, null]));
    writeFileSync(process.env.BUSY_BINDING_MARKER!, 'busy');
    const until = Date.now() + Number(process.env.BUSY_BINDING_MS ?? 2000);
    while (Date.now() < until) session.run(feeds, { ...fetches }, {});
    session.dispose();
  };
}
