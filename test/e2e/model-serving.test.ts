import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthError,
  Client,
  NotDeployedError,
  NotFoundError,
  ValidationError,
  type InferenceRecord,
  type Pipeline,
} from '@quoll/client';
import { hasSharedFixtures, SHARED_FIXTURES, SKIP_REASON } from '../support/shared-fixtures.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../support/synthetic-data.js';
import { makeMultiIoModel, makeScaleModel, makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let client: Client;
let dir: string;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
  dir = await mkdtemp(join(tmpdir(), 'quoll-e2e-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  // SIGTERM drains and exits cleanly.
  await stopTestServer(server);
});

function column(table: Table, name: string): number[][] {
  const col = table.getChild(name);
  if (!col) throw new Error(`no column ${name}`);
  return Array.from({ length: table.numRows }, (_, i) => Array.from(col.get(i) as ArrayLike<number>));
}

async function deployed(
  name: string,
  modelName: string,
  modelBytes: Uint8Array,
  tensorFields?: string[],
): Promise<Pipeline> {
  let model = await client.uploadModel(modelName, modelBytes);
  if (tensorFields) model = await model.configure({ tensorFields });
  const pipeline = await client.buildPipeline(name);
  await pipeline.clear();
  await pipeline.addModelStep(model);
  await pipeline.deploy();
  return pipeline;
}

describe('the seed flow (workspace → model → pipeline → deploy → infer)', () => {
  it.skipIf(!hasSharedFixtures)(
    'serves the tutorial rf_model on xtest-1k.arrow within ±1.0 of the expected outputs',
    async () => {
      if (!hasSharedFixtures) console.warn(SKIP_REASON);
      const workspace = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
      client.setCurrentWorkspace(workspace);
      const model = await (
        await client.uploadModel('orchestrationmodel', `${SHARED_FIXTURES}rf_model.onnx`)
      ).configure({
        tensorFields: ['tensor'],
      });
      expect(model.sha).toMatch(/^e22a0831/);
      expect(model.inputs).toEqual([{ name: 'float_input', type: 'float32', shape: [null, 18] }]);
      expect(model.outputs.map((o) => o.name)).toEqual(['variable']);
      const pipeline = await client.buildPipeline('orchestrationpipeline');
      await pipeline.addModelStep(model);
      await pipeline.deploy();
      expect((await pipeline.status()).status).toBe('Running');

      const result = (await pipeline.inferFromFile(`${SHARED_FIXTURES}xtest-1k.arrow`)) as Table;
      expect(result.numRows).toBe(1000);
      expect(result.schema.fields.map((f) => f.name)).toEqual([
        'time',
        'in.tensor',
        'out.variable',
        'check_failures',
      ]);
      const expected = JSON.parse(
        await readFile(`${SHARED_FIXTURES}expected-rf_model-xtest-1k.json`, 'utf8'),
      ) as unknown;
      const expectedValues = (
        Array.isArray(expected) ? expected : (expected as { 'out.variable': unknown[] })['out.variable']
      ).map((v) => (Array.isArray(v) ? Number(v[0]) : Number(v)));
      const got = column(result, 'out.variable').map((v) => v[0] ?? NaN);
      expect(got).toHaveLength(1000);
      got.forEach((v, i) => expect(Math.abs(v - (expectedValues[i] ?? NaN))).toBeLessThanOrEqual(1.0));
      // One time value per request.
      expect(
        new Set(Array.from({ length: 1000 }, (_, i) => Number(result.getChild('time')?.get(i)))).size,
      ).toBe(1);

      const records = (await pipeline.inferFromFile(
        `${SHARED_FIXTURES}xtest-1.df.json`,
      )) as InferenceRecord[];
      expect(records).toHaveLength(1);
      expect(Math.abs(((records[0]?.['out.variable'] as number[])[0] ?? 0) - 718013.75)).toBeLessThanOrEqual(
        1.0,
      );
      await pipeline.undeploy();
      expect((await pipeline.status()).status).toBe('Undeployed');
    },
  );

  it("serves the project's own tree-ensemble model and matches onnxruntime run directly", async () => {
    const ws = await client.getWorkspace('synthetic', { createIfNotExist: true });
    client.setCurrentWorkspace(ws);
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 10, depth: 4, seed: 7 });
    const pipeline = await deployed('synthpipeline', 'synthmodel', bytes, ['tensor']);
    const rows = makeHouseRows(1000, 3);
    const table = makeArrowTensorTable(rows, 18);
    const file = join(dir, 'synthetic-1k.arrow');
    await writeFile(file, tableToIpcFile(table));

    const result = (await pipeline.inferFromFile(file)) as Table;
    expect(result.numRows).toBe(1000);
    const session = await ort.InferenceSession.create(bytes);
    const direct = await session.run({
      [session.inputNames[0] ?? 'float_input']: new ort.Tensor('float32', rows, [1000, 18]),
    });
    const want = direct[session.outputNames[0] ?? 'variable']?.data as Float32Array;
    const got = column(result, 'out.variable').map((v) => v[0] ?? NaN);
    // Batch splitting across workers may change the last float32 ulp (0.0625 near 1e6).
    got.forEach((v, i) => expect(Math.abs(v - (want[i] ?? NaN))).toBeLessThanOrEqual(0.125));
    expect(column(result, 'in.tensor')[5]).toEqual(Array.from(rows.subarray(5 * 18, 6 * 18)));

    // JSON records in → records out, same numbers.
    const recs = await pipeline.infer([{ tensor: Array.from(rows.subarray(0, 18)) }]);
    expect(Object.keys(recs[0] ?? {})).toEqual(['time', 'in.tensor', 'out.variable', 'check_failures']);
    expect(Math.abs((recs[0]?.['out.variable'] as number[])[0]! - (want[0] ?? NaN))).toBeLessThanOrEqual(
      0.125,
    );
    expect(recs[0]?.check_failures).toBe(0);
    await pipeline.undeploy();
  });
});

describe('models with several inputs and outputs, and pipelines with several steps', () => {
  it('maps columns to a multi-input model by name and returns every output', async () => {
    client.setCurrentWorkspace(await client.getWorkspace('multi', { createIfNotExist: true }));
    const pipeline = await deployed('multiio', 'multiio', makeMultiIoModel());
    const out = await pipeline.infer([
      { a: [1, 2, 3], b: [10, 20] },
      { a: [0.5, 0.5, 1], b: [-1, 1] },
    ]);
    expect(out).toHaveLength(2);
    const keys = Object.keys(out[0] ?? {});
    expect(keys[0]).toBe('time');
    expect(keys).toContain('in.a');
    expect(keys).toContain('in.b');
    expect(keys.filter((k) => k.startsWith('out.')).length).toBe(2);
    expect(keys.at(-1)).toBe('check_failures');
    await pipeline.undeploy();
  });

  it("feeds each step's outputs to the next step", async () => {
    client.setCurrentWorkspace(await client.getWorkspace('multi', { createIfNotExist: true }));
    const double = await client.uploadModel(
      'double',
      makeScaleModel({ inputName: 'tensor', outputName: 'features', width: 18, factor: 2 }),
    );
    const tree = await client.uploadModel(
      'tree',
      makeTreeEnsembleRegressor({ features: 18, inputName: 'features', seed: 5 }),
    );
    const pipeline = await client.buildPipeline('twostep');
    await pipeline.addModelStep(double);
    await pipeline.addModelStep(tree);
    expect((await pipeline.steps()).map((s) => s.model.name)).toEqual(['double', 'tree']);
    await pipeline.deploy();
    const row = Array.from(makeHouseRows(1, 9));
    const [viaPipeline] = await pipeline.infer([{ tensor: row }]);
    // The same tree on doubled inputs, as a one-step pipeline.
    const single = await client.buildPipeline('treeonly');
    await single.addModelStep(tree);
    await single.deploy();
    const [direct] = await single.infer([{ tensor: row.map((x) => x * 2) }]);
    expect(viaPipeline?.['out.variable']).toEqual(direct?.['out.variable']);
    expect((await pipeline.versions()).length).toBe(1);
    await pipeline.undeploy();
    await single.undeploy();
  });
});

describe('pipeline management', () => {
  it('buildPipeline is idempotent, pipelinesByName throws NotFoundError when none, steps can be replaced and removed', async () => {
    client.setCurrentWorkspace(await client.getWorkspace('mgmt', { createIfNotExist: true }));
    const a = await client.buildPipeline('same');
    const b = await client.buildPipeline('same');
    expect(b.id).toBe(a.id);
    await expect(client.pipelinesByName('nope')).rejects.toBeInstanceOf(NotFoundError);
    expect((await client.pipelinesByName('same')).map((p) => p.id)).toEqual([a.id]);
    const m1 = await client.uploadModel('m', makeTreeEnsembleRegressor({ seed: 1 }));
    const m2 = await client.uploadModel('m', makeTreeEnsembleRegressor({ seed: 2 }));
    expect(m2.version).not.toBe(m1.version);
    expect((await client.getModel('m')).version).toBe(m2.version);
    expect((await client.getModel('m', m1.version)).sha).toBe(m1.sha);
    await a.addModelStep(m1);
    await a.replaceWithModelStep(0, m2);
    expect((await a.steps())[0]?.model.version).toBe(m2.version);
    await expect(a.removeStep(3)).rejects.toBeInstanceOf(ValidationError);
    await a.removeStep(0);
    expect(await a.steps()).toEqual([]);
    await expect(a.deploy()).rejects.toMatchObject({ code: 'invalid_step' });
  });

  it('a new version of a running pipeline takes over without a failed request', async () => {
    client.setCurrentWorkspace(await client.getWorkspace('switch', { createIfNotExist: true }));
    const m1 = await client.uploadModel('sw', makeTreeEnsembleRegressor({ seed: 11 }));
    const m2 = await client.uploadModel('sw', makeTreeEnsembleRegressor({ seed: 12 }));
    const pipeline = await client.buildPipeline('switchover');
    await pipeline.addModelStep(m1);
    await pipeline.deploy();
    const row = Array.from(makeHouseRows(1, 1));
    let stop = false;
    let ok = 0;
    const failures: unknown[] = [];
    // Several loops, so requests are in flight at the moment the new version takes over.
    const load = Promise.all(
      Array.from({ length: 6 }, async () => {
        while (!stop) {
          try {
            await pipeline.infer([{ tensor: row }]);
            ok++;
          } catch (err) {
            failures.push(err);
          }
        }
      }),
    );
    await pipeline.replaceWithModelStep(0, m2);
    await pipeline.deploy();
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    expect((await pipeline.status()).version).toBe((await pipeline.versions())[0]?.version);
    await pipeline.undeploy();
  });
});

describe('bad input gets a clear error with a stable code and changes nothing', () => {
  let pipeline: Pipeline;
  const row = Array.from({ length: 18 }, (_, i) => i + 1);

  beforeAll(async () => {
    client.setCurrentWorkspace(await client.getWorkspace('errors', { createIfNotExist: true }));
    pipeline = await deployed('errpipe', 'errmodel', makeTreeEnsembleRegressor({ seed: 3 }), ['tensor']);
  });

  it('a tensor of the wrong width is invalid_tensor_shape', async () => {
    await expect(pipeline.infer([{ tensor: row.slice(0, 17) }])).rejects.toMatchObject({
      name: 'ValidationError',
      code: 'invalid_tensor_shape',
    });
  });

  it('an unknown column is unknown_input_column', async () => {
    await expect(pipeline.infer([{ tensor: row, extra: [1] }])).rejects.toMatchObject({
      code: 'unknown_input_column',
    });
  });

  it('a non-numeric value is non_numeric_value', async () => {
    await expect(pipeline.infer([{ tensor: [...row.slice(0, 17), 'x'] }])).rejects.toMatchObject({
      code: 'non_numeric_value',
    });
  });

  it('an undeployed pipeline is NotDeployedError', async () => {
    const idle = await client.buildPipeline('idle');
    await expect(idle.infer([{ tensor: row }])).rejects.toBeInstanceOf(NotDeployedError);
  });

  it('unknown names are NotFoundError', async () => {
    await expect(client.getPipeline('missing')).rejects.toMatchObject({ code: 'pipeline_not_found' });
    await expect(client.getModel('missing')).rejects.toMatchObject({ code: 'model_not_found' });
    await expect(client.getWorkspace('missing')).rejects.toMatchObject({ code: 'workspace_not_found' });
  });

  it('a file that is not ONNX is refused and nothing is stored', async () => {
    const before = (await client.listModels()).length;
    await expect(
      client.uploadModel('notonnx', new TextEncoder().encode('{"hello": "world"}')),
    ).rejects.toMatchObject({
      code: 'invalid_model',
    });
    const truncated = makeTreeEnsembleRegressor({ seed: 4 }).subarray(0, 200);
    await expect(client.uploadModel('truncated', truncated)).rejects.toMatchObject({ code: 'invalid_model' });
    expect((await client.listModels()).length).toBe(before);
  });

  it('tensorFields given with an upload are checked before anything is stored', async () => {
    const before = (await client.listModels()).length;
    await expect(
      client.uploadModel('twofields', makeTreeEnsembleRegressor({ seed: 4 }), { tensorFields: ['a', 'b'] }),
    ).rejects.toMatchObject({ code: 'invalid_model_config' });
    expect((await client.listModels()).length).toBe(before);
    const ok = await client.uploadModel('onefield', makeTreeEnsembleRegressor({ seed: 4 }), {
      tensorFields: ['tensor'],
    });
    expect(ok.config.tensorFields).toEqual(['tensor']);
  });

  it('invalid names are invalid_name', async () => {
    await expect(client.buildPipeline('bad name/x')).rejects.toMatchObject({ code: 'invalid_name' });
    await expect(client.createWorkspace('')).rejects.toMatchObject({ code: 'invalid_name' });
  });

  it('a missing or wrong token is AuthError', async () => {
    await expect(new Client({ url: server.url, token: 'qk_wrong' }).listWorkspaces()).rejects.toBeInstanceOf(
      AuthError,
    );
    const res = await fetch(`${server.url}/v1/workspaces`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthenticated');
  });

  it('the server keeps serving after every bad request', async () => {
    const [ok] = await pipeline.infer([{ tensor: row }]);
    expect((ok?.['out.variable'] as number[]).length).toBe(1);
  });
});

describe('workspace-scoped tokens', () => {
  it('see their own workspace and nothing outside it', async () => {
    const mine = await client.getWorkspace('scoped-a', { createIfNotExist: true });
    const other = await client.getWorkspace('scoped-b', { createIfNotExist: true });
    client.setCurrentWorkspace(other);
    await client.buildPipeline('secretpipe');
    const token = await client.createWorkspaceToken(mine);
    const scoped = new Client({ url: server.url, token });
    expect((await scoped.listWorkspaces()).map((w) => w.name)).toEqual(['scoped-a']);
    expect((await scoped.getCurrentWorkspace()).name).toBe('scoped-a');
    await expect(scoped.getWorkspace('scoped-b')).rejects.toBeInstanceOf(NotFoundError);
    scoped.setCurrentWorkspace(other);
    await expect(scoped.getPipeline('secretpipe')).rejects.toBeInstanceOf(NotFoundError);
    await expect(scoped.createWorkspace('new')).rejects.toBeInstanceOf(AuthError);
  });
});

describe('the HTTP API', () => {
  it('serves an OpenAPI document and a public health check', async () => {
    expect((await fetch(`${server.url}/v1/health`)).status).toBe(200);
    const doc = (await (
      await fetch(`${server.url}/v1/openapi.json`, { headers: { authorization: `Bearer ${server.token}` } })
    ).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toContain('/v1/workspaces/{workspaceId}/pipelines/{name}/infer');
  });

  it('answers Arrow stream when Accept asks for it, and 406 for a format it cannot produce', async () => {
    client.setCurrentWorkspace(await client.getWorkspace('errors'));
    const p = await client.getPipeline('errpipe');
    const body = JSON.stringify([{ tensor: Array.from({ length: 18 }, () => 1) }]);
    const res = await fetch(p.url(), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.token}`,
        'content-type': 'application/json',
        accept: 'application/vnd.apache.arrow.stream',
      },
      body,
    });
    expect(res.headers.get('content-type')).toContain('application/vnd.apache.arrow.stream');
    expect(tableFromIPC(new Uint8Array(await res.arrayBuffer())).numRows).toBe(1);
    const bad = await fetch(p.url(), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.token}`,
        'content-type': 'application/json',
        accept: 'text/csv',
      },
      body,
    });
    expect(bad.status).toBe(406);
  });

  it('matches Accept case-insensitively and by q-value and order: "application/json, */*" answers JSON', async () => {
    client.setCurrentWorkspace(await client.getWorkspace('errors'));
    const p = await client.getPipeline('errpipe');
    const body = tableToIpcFile(makeArrowTensorTable(makeHouseRows(2, 5), 18));
    const answer = async (accept: string): Promise<string | null> => {
      const res = await fetch(p.url(), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${server.token}`,
          'content-type': 'application/vnd.apache.arrow.file',
          accept,
        },
        body,
      });
      expect(res.status, accept).toBe(200);
      return res.headers.get('content-type');
    };
    expect(await answer('application/json, */*')).toContain('application/json');
    expect(await answer('APPLICATION/JSON')).toContain('application/json');
    expect(await answer('application/json;q=0.2, application/vnd.apache.arrow.stream;q=0.9')).toContain(
      'application/vnd.apache.arrow.stream',
    );
    // A wildcard alone answers in the request's own format.
    expect(await answer('*/*')).toContain('application/vnd.apache.arrow.file');
  });
});
