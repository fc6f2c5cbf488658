import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { deployModelPipeline } from '../support/deploy-model-pipeline.js';
import { makeCraftedSlowModel, makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Inline runs through a real server: a model whose run the request can make long (its work
// grows with the cube of the values fed) is not run on the HTTP thread, so while one such run
// goes on in a model worker, the server's other requests, inline ones included, are answered.

let server: TestServer;
let client: Client;

beforeAll(async () => {
  // On by default; said here so the test means the same whatever the default.
  server = await startTestServer({ env: { QUOLL_INLINE_RUNS: 'on' } });
  client = server.client();
});

afterAll(() => stopTestServer(server));

describe('inline runs', () => {
  it('a crafted model that multiplies its input by itself does not hold other requests while it runs long', async () => {
    const crafted = await deployModelPipeline(
      client,
      'crafted',
      'selfproduct',
      makeCraftedSlowModel('self-product'),
    );
    const scale = await deployModelPipeline(
      client,
      'scale',
      'scale',
      makeScaleModel({ inputName: 'tensor', width: 2 }),
    );
    // Small runs, one at a time (what an inline runner takes, past its warm-up runs).
    for (let i = 0; i < 8; i++) expect(await crafted.infer([{ x: [1, 2] }])).toHaveLength(1);

    // One row of 1536 values: a 1536 × 1536 square multiplied by itself, billions of multiply-adds.
    const x = Array.from({ length: 1536 }, (_, i) => i % 3);
    let finished = false;
    const slow = crafted.infer([{ x }]).finally(() => {
      finished = true;
    });
    let answeredDuring = 0;
    await new Promise((resolve) => setTimeout(resolve, 5));
    while (!finished) {
      const health = await fetch(`${server.url}/v1/health`);
      expect(health.status).toBe(200);
      await health.arrayBuffer();
      expect(await scale.infer([{ tensor: [1, 2] }])).toHaveLength(1);
      if (!finished) answeredDuring++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const answer = await slow;
    expect(answer).toHaveLength(1);
    // Answered while the long run went on: it was not on the thread that answers them. (Run on
    // that thread, the health check sent during it would be answered only after the long answer,
    // and the scale request after that: none counted. At least one, not more: under a loaded CI
    // run a round of the two requests took ~1 s of the run's ~1.9 s, and 2 were counted.)
    expect(answeredDuring).toBeGreaterThanOrEqual(1);
  });
});
