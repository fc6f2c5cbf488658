import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { makeDeepChainTree, padModel } from '../support/hostile-inline-models.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Hostile input against a server with default settings (review of lane `inline`, 4 December,
// /work/review-inline.md): what a workspace user uploads or deploys must neither crash the
// server nor hold the thread that answers everyone.

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
});

afterAll(() => stopTestServer(server));

/** The slowest answer of GET /v1/health polled back to back while `action` runs (ms). */
async function slowestHealthDuring(action: () => Promise<unknown>): Promise<number> {
  let done = false;
  let worst = 0;
  const poller = (async () => {
    while (!done) {
      const started = performance.now();
      const health = await fetch(`${server.url}/v1/health`);
      await health.arrayBuffer();
      worst = Math.max(worst, performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  try {
    await action();
  } finally {
    done = true;
    await poller;
  }
  return worst;
}

describe('hostile models against the default server', () => {
  it('F2: uploading a 6000-deep tree (315 KB, within the work bound) does not crash the server', async () => {
    // A server of its own: on the code reviewed, this one dies (SIGSEGV).
    const own = await startTestServer();
    try {
      const deep = makeDeepChainTree({ depth: 6000 });
      // A refusal with a stable code is fine; the process must live.
      await own
        .client()
        .uploadModel('deep', deep)
        .catch((error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(own.process.signalCode).toBeNull();
      const health = await fetch(`${own.url}/v1/health`);
      expect(health.status).toBe(200);
    } finally {
      await own.kill();
      await own.cleanup();
    }
  });

  it('F1: deploying a 200 MiB model does not hold the HTTP thread (the inline check reads at most 1 MiB)', async () => {
    const big = padModel(makeScaleModel({ inputName: 'tensor', width: 2 }), 200 * 1024 * 1024);
    const uploaded = await client.uploadModel('big', big);
    const pipeline = await client.buildPipeline('big');
    await pipeline.addModelStep(uploaded);
    const worst = await slowestHealthDuring(() => pipeline.deploy());
    // Measured 145-462 ms by default, 9-18 ms with QUOLL_INLINE_RUNS=off (load 4-5).
    expect(worst).toBeLessThan(100);
  });
});
