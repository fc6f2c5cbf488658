import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NotDeployedError, type Client, type ModelVersion } from '@quoll/client';
import { makeHouseRows } from '../support/synthetic-data.js';
import { makeMultiIoModel, makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { serversOnPostgres, startTestServer, type TestServer } from '../support/test-server.js';

const servers: TestServer[] = [];

afterEach(async () => {
  // Restarts share a home: stop every server first, then delete each home once.
  const done = servers.splice(0);
  for (const s of done) await s.stop();
  const homes = new Map(done.map((s) => [s.home, s]));
  for (const s of homes.values()) await s.cleanup();
});

async function start(home?: string): Promise<TestServer> {
  const server = await startTestServer(home === undefined ? {} : { home });
  servers.push(server);
  return server;
}

/** Makes a stored model unloadable, as a lost or damaged disk would: its content file is gone. */
/** Loses a model's bytes: the home's file and, on a node of a cluster, the database's copy too. */
async function loseModelFile(server: TestServer, model: ModelVersion): Promise<void> {
  await rm(join(server.home, 'blobs', 'sha256', model.sha.slice(0, 2), model.sha));
  if (server.database !== null) {
    const client = new pg.Client({ connectionString: server.database });
    await client.connect();
    try {
      await client.query('DELETE FROM blobs WHERE sha = $1', [model.sha]);
    } finally {
      await client.end();
    }
  }
}

async function health(
  server: TestServer,
): Promise<{ status: string; inferenceLogs: string; database: string }> {
  return (await (await fetch(`${server.url}/v1/health`)).json()) as {
    status: string;
    inferenceLogs: string;
    database: string;
  };
}

async function inWorkspace(server: TestServer, name: string): Promise<Client> {
  const client = server.client();
  client.setCurrentWorkspace(await client.getWorkspace(name, { createIfNotExist: true }));
  return client;
}

describe('deploy outcomes', () => {
  it('a first deploy whose model fails to load is Error with the reason, and deploy() throws', async () => {
    const server = await start();
    const client = await inWorkspace(server, 'first');
    const model = await client.uploadModel('lost', makeTreeEnsembleRegressor({ seed: 101 }));
    await loseModelFile(server, model);
    const pipeline = await client.buildPipeline('firstfail');
    await pipeline.addModelStep(model);
    await expect(pipeline.deploy()).rejects.toBeInstanceOf(NotDeployedError);
    const status = await pipeline.status();
    expect(status.status).toBe('Error');
    expect(status.details.join(' ')).toMatch(/failed to load version/);
  });

  it('a failed redeploy keeps the running version serving, says why, and deploy() throws', async () => {
    const server = await start();
    const client = await inWorkspace(server, 'redeploy');
    const good = await client.uploadModel('rd', makeTreeEnsembleRegressor({ seed: 102 }));
    const bad = await client.uploadModel('rd', makeTreeEnsembleRegressor({ seed: 103 }));
    await loseModelFile(server, bad);
    const pipeline = await client.buildPipeline('redeployfail');
    await pipeline.addModelStep(good);
    await pipeline.deploy();
    const serving = (await pipeline.status()).version;
    const row = Array.from(makeHouseRows(1, 4));
    const [before] = await pipeline.infer([{ tensor: row }]);

    await pipeline.replaceWithModelStep(0, bad);
    const failed = await pipeline.deploy().then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(NotDeployedError);
    const status = await pipeline.status();
    expect(status.status).toBe('Running');
    expect(status.version).toBe(serving);
    expect(status.models.map((m) => m.version)).toEqual([good.version]);
    const newest = (await pipeline.versions())[0]?.version;
    expect(newest).not.toBe(serving);
    expect(status.details.join(' ')).toContain(`failed to load version ${String(newest)}`);
    const [after] = await pipeline.infer([{ tensor: row }]);
    expect(after?.['out.variable']).toEqual(before?.['out.variable']);

    // The version still serving is the one a restart restores.
    await server.stop();
    const again = await start(server.home);
    const restarted = (await inWorkspace(again, 'redeploy')).getPipeline('redeployfail');
    await vi.waitFor(async () => expect((await (await restarted).status()).status).toBe('Running'), {
      timeout: 30_000,
    });
    expect((await (await restarted).status()).version).toBe(serving);
  });
});

describe('restart', () => {
  it('a version keeps the model config it was deployed with, across configure() and a restart', async () => {
    const server = await start();
    const client = await inWorkspace(server, 'snap');
    const model = await (
      await client.uploadModel('two', makeMultiIoModel())
    ).configure({
      tensorFields: ['x', 'y'],
    });
    const pipeline = await client.buildPipeline('snapshot');
    await pipeline.addModelStep(model);
    await pipeline.deploy();
    const input = [{ x: [1, 2, 3], y: [4, 5] }];
    const [before] = await pipeline.infer(input);
    // Changes the model, not the deployed version.
    await model.configure({ tensorFields: ['p', 'q'] });
    expect((await pipeline.versions())[0]?.steps[0]?.config?.tensorFields).toEqual(['x', 'y']);

    await server.stop();
    const again = await start(server.home);
    const restarted = await (await inWorkspace(again, 'snap')).getPipeline('snapshot');
    await vi.waitFor(async () => expect((await restarted.status()).status).toBe('Running'), {
      timeout: 30_000,
    });
    const [after] = await restarted.infer(input);
    expect(after?.['out.sum_a']).toEqual(before?.['out.sum_a']);
    expect(after?.['out.scaled_b']).toEqual(before?.['out.scaled_b']);
  });

  it('right after a restart a deployed pipeline is Starting or Running, never not deployed; a lost model is Error', async () => {
    const server = await start();
    const client = await inWorkspace(server, 'restore');
    const kept = await client.uploadModel('kept', makeTreeEnsembleRegressor({ seed: 104 }));
    const lost = await client.uploadModel('gone', makeTreeEnsembleRegressor({ seed: 105 }));
    const ok = await client.buildPipeline('restored');
    await ok.addModelStep(kept);
    await ok.deploy();
    const broken = await client.buildPipeline('broken');
    await broken.addModelStep(lost);
    await broken.deploy();
    await server.stop();
    await loseModelFile(server, lost);

    const again = await start(server.home);
    const c2 = await inWorkspace(again, 'restore');
    const restored = await c2.getPipeline('restored');
    // The first request after the server says it listens.
    const res = await fetch(restored.url(), {
      method: 'POST',
      headers: { authorization: `Bearer ${again.token}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ tensor: Array.from(makeHouseRows(1, 2)) }]),
    });
    if (res.status !== 200) {
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('pipeline_not_ready');
    }
    expect(['Starting', 'Running']).toContain((await restored.status()).status);

    const status = await (await c2.getPipeline('broken')).status();
    expect(status.status).toBe('Error');
    expect(status.details.join(' ')).toMatch(/version .* (failed|could not)/);
  });
});

describe('inference log writer failures', () => {
  // The failure is a file standing where the home's segment folder goes; a node on PostgreSQL
  // keeps its inference log in the database (see postgres-node.test.ts for losing it).
  it.skipIf(serversOnPostgres)(
    'inference keeps answering while the log writer retries; health says so; the rows arrive once it recovers',
    async () => {
      const server = await start();
      const client = await inWorkspace(server, 'logfail');
      expect(await health(server)).toMatchObject({ status: 'ok', inferenceLogs: 'open', database: 'ok' });
      const model = await client.uploadModel('lf', makeTreeEnsembleRegressor({ seed: 106 }));
      const pipeline = await client.buildPipeline('logfail');
      await pipeline.addModelStep(model);
      await pipeline.deploy();
      // A plain file where the pipeline's segment directory goes: every segment write fails.
      const blocker = join(server.home, 'inference-logs', String(pipeline.id));
      await writeFile(blocker, 'not a directory');
      const row = Array.from(makeHouseRows(1, 3));
      await pipeline.infer([{ tensor: row }]);
      await vi.waitFor(
        async () =>
          expect(await health(server)).toMatchObject({
            status: 'degraded',
            inferenceLogs: 'retrying',
            database: 'ok',
          }),
        {
          timeout: 10_000,
        },
      );
      await pipeline.infer([{ tensor: row }]);

      await rm(blocker);
      await vi.waitFor(
        async () =>
          expect(await health(server)).toMatchObject({ status: 'ok', inferenceLogs: 'open', database: 'ok' }),
        {
          timeout: 15_000,
        },
      );
      const logs = await pipeline.logs();
      expect(logs.length).toBe(2);
    },
  );
});

describe('the shared model pool', () => {
  it('status() says which pool workers hold each model; --model-memory unloads idle ones and --pool-workers caps the threads', async () => {
    // A pool of 2 workers, each deployment on 1 of them, and a budget below one model per
    // worker: a worker keeps only the model of its last run.
    const server = await startTestServer({
      args: ['--pool-workers', '2', '--workers', '1', '--model-memory', '2'],
    });
    servers.push(server);
    const client = await inWorkspace(server, 'pool');
    const deploy = async (
      name: string,
      seed: number,
    ): Promise<Awaited<ReturnType<Client['buildPipeline']>>> => {
      const model = await client.uploadModel(name, makeTreeEnsembleRegressor({ seed }));
      const pipeline = await client.buildPipeline(name);
      await pipeline.addModelStep(model);
      return pipeline.deploy();
    };
    const a = await deploy('poola', 201);
    const b = await deploy('poolb', 202);
    const c = await deploy('poolc', 203);
    // Three deployments on a pool of two: the least assigned worker each time (0, 1, then 0);
    // c's load on worker 0 evicted a's model there.
    expect((await b.status()).models[0]?.loadedOn).toEqual([1]);
    expect((await c.status()).models[0]?.loadedOn).toEqual([0]);
    expect((await a.status()).models[0]?.loadedOn).toEqual([]);
    const row = Array.from(makeHouseRows(1, 5));
    const [answer] = await a.infer([{ tensor: row }]);
    expect(answer?.['out.variable']).toHaveLength(1);
    expect((await a.status()).models[0]?.loadedOn).toEqual([0]);
    expect((await c.status()).models[0]?.loadedOn).toEqual([]);
    expect(await c.infer([{ tensor: row }])).toHaveLength(1);
  });

  it('refuses a bad --model-memory or --pool-workers before starting', async () => {
    await expect(startTestServer({ args: ['--model-memory', 'lots'] })).rejects.toThrow(
      /Invalid --model-memory "lots"/,
    );
    await expect(startTestServer({ args: ['--pool-workers', '0'] })).rejects.toThrow(
      /Invalid pool worker count/,
    );
  });
});
