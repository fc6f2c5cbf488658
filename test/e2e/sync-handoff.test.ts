import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { makeSlowOnDemandModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// The synchronous hand-off (on by default) through a real server: the HTTP thread may wait for a
// small run in Atomics.wait, but never beyond its bound, so a run the request made slow does
// not hold up the server's other answers.

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
});

afterAll(() => stopTestServer(server));

describe('synchronous hand-off', () => {
  it('/v1/health answers promptly while a model the lane took runs long', async () => {
    const model = await client.uploadModel('slowondemand', makeSlowOnDemandModel());
    const pipeline = await client.buildPipeline('slowondemand');
    await pipeline.addModelStep(model);
    await pipeline.deploy();
    // Fast runs, one at a time: the model is measured by message, then its runs take the lane.
    for (let i = 0; i < 60; i++) expect(await pipeline.infer([{ x: [1] }])).toHaveLength(1);

    const started = performance.now();
    let finished = 0;
    const slow = pipeline.infer([{ x: [2500] }]).then((answer) => {
      finished = performance.now();
      return answer;
    });
    const healthMs: number[] = [];
    await new Promise((resolve) => setTimeout(resolve, 5));
    while (finished === 0) {
      const asked = performance.now();
      const response = await fetch(`${server.url}/v1/health`);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      if (finished === 0) healthMs.push(performance.now() - asked);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const answer = await slow;
    expect(answer).toHaveLength(1);
    // The run was long, and health was asked and answered several times while it ran, each promptly.
    expect(finished - started).toBeGreaterThan(150);
    expect(healthMs.length).toBeGreaterThan(3);
    expect(Math.max(...healthMs)).toBeLessThan(100);
  });
});
