import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuollError } from '@quoll/client';
import { makeChainTree } from '../support/deep-tree-models.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import {
  serversOnPostgres,
  startTestServer,
  stopTestServer,
  type TestServer,
} from '../support/test-server.js';

// Review of 4 December, F2: a chain-shaped tree of 6000 levels (288 KB) made onnxruntime
// overflow the validating worker's stack at upload: the whole server died with SIGSEGV.

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ env: { QUOLL_INFERENCE_LOGS: 'off' } });
});

afterAll(() => stopTestServer(server));

async function refusal(promise: Promise<unknown>): Promise<QuollError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof QuollError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

async function healthy(): Promise<number> {
  return (await fetch(`${server.url}/v1/health`, { signal: AbortSignal.timeout(30_000) })).status;
}

describe('a tree too deep for onnxruntime to build', () => {
  it('F2: uploading a 6000-deep tree does not crash the server: invalid_model, nothing stored, the next upload works', async () => {
    const client = server.client();
    const error = await refusal(client.uploadModel('deep', makeChainTree({ depth: 6000 })));
    expect(error.code).toBe('invalid_model');
    expect(error.status).toBe(400);
    expect(error.message).toContain('is 6000 levels deep, more than the 1024 Quoll loads');
    expect(server.process.exitCode).toBeNull();
    expect(server.process.signalCode).toBeNull();
    expect(await healthy()).toBe(200);
    expect((await client.listModels()).filter((model) => model.name === 'deep')).toEqual([]);
    const next = await client.uploadModel('next', makeTreeEnsembleRegressor());
    expect(next.name).toBe('next');
  });

  it.skipIf(serversOnPostgres)(
    'deploying a model stored before the check (its file now a 6000-deep tree) fails with the reason, and the server serves on',
    async () => {
      const client = server.client();
      const model = await client.uploadModel('stored', makeTreeEnsembleRegressor({ seed: 3 }));
      // As if stored by a server without the check: the blob of the version is the deep tree.
      writeFileSync(
        join(server.home, 'blobs', 'sha256', model.sha.slice(0, 2), model.sha),
        makeChainTree({ depth: 6000 }),
      );
      const pipeline = await client.buildPipeline('stored');
      await pipeline.addModelStep(model);
      // A model that fails to load fails the deployment (status Error, the engine's invalid_model
      // message in its details), which the SDK throws as pipeline_not_ready.
      const error = await refusal(pipeline.deploy());
      expect(error.code).toBe('pipeline_not_ready');
      expect(error.message).toContain('is 6000 levels deep, more than the 1024 Quoll loads');
      expect(server.process.signalCode).toBeNull();
      expect(await healthy()).toBe(200);
    },
  );
});
