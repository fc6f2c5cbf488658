import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { padModel } from '../support/hostile-inline-models.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Hostile input against a server with default settings (review of lane `inline`, 4 December,
// /work/review-inline.md): what a workspace user deploys must not hold the thread that answers
// everyone. (The review's F2, a deep tree that crashed the server at upload, is lane deeptree's.)

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
