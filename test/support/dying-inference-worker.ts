/**
 * A model worker for tests that can be made to die in the middle of a request: the real
 * `inference-worker.ts`, plus a thread exit (`process.exit`, as a runtime that crashes the
 * thread or an out-of-memory ends it) as soon as it receives a request whose feeds, or whose
 * JSON body, hold the value {@link DIE_ON}: by message, or read from the synchronous lane.
 *
 * (Terminating the thread from outside cannot stand in for this: `worker.terminate()` while
 * onnxruntime-node runs a model aborts the whole process.)
 */
import { parentPort } from 'node:worker_threads';
import { Lane } from '../../packages/quoll/src/inference/handoff-lane.js';
import type { WireTensor } from '../../packages/quoll/src/inference/tensor-data.js';

/** A request holding this value ends the worker thread (exit code {@link DIE_CODE}). */
export const DIE_ON = 666;
export const DIE_CODE = 13;

function marked(feeds: readonly WireTensor[]): boolean {
  return feeds.some((feed) =>
    Array.prototype.some.call(feed.data, (value: unknown) => Number(value) === DIE_ON),
  );
}

const lane = Lane.prototype as { readRequest: Lane['readRequest'] };
const readRequest = lane.readRequest;
lane.readRequest = function (this: Lane) {
  const request = readRequest.call(this);
  if (marked(request.feeds)) process.exit(DIE_CODE);
  return request;
};

await import('../../packages/quoll/src/inference/inference-worker.js');

// The worker's own listener only queues the request: this one, called right after it for the
// same message, ends the thread before the request is handled. (Registered after the worker's
// import, so that no message reaches the port before the worker listens.)
parentPort?.on(
  'message',
  (message: { type?: string; feeds?: WireTensor[]; bodies?: Uint8Array[] } | null) => {
    if (message?.type === 'infer' && marked(message.feeds ?? [])) process.exit(DIE_CODE);
    if (
      message?.type === 'infer-records' &&
      (message.bodies ?? []).some((body) => new TextDecoder().decode(body).includes(String(DIE_ON)))
    )
      process.exit(DIE_CODE);
  },
);
