import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, NotFoundError, ValidationError, type Task } from '@quoll/client';
import { readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { serversOnPostgres, startTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

/** What users of the original (Wallaroo) rely on, as the public tutorials use it. */

let server: TestServer;
let client: Client;
let zip: Uint8Array;

beforeAll(async () => {
  // Workspace-token tasks run here even where no sandbox is available.
  server = await startTestServer({ args: ['--allow-unsandboxed-runs'] });
  client = server.client();
  zip = await createZip([{ path: 'main.mjs', content: "console.log('parity')" }]);
});

afterAll(async () => {
  await server.stop();
  await server.cleanup();
});

/** A multipart form as Wallaroo's API clients send it: the file, then a JSON metadata part (or the other way round). */
function form(
  file: Uint8Array,
  fileName: string,
  metadata: Record<string, unknown>,
  metadataFirst = false,
): FormData {
  const data = new FormData();
  const meta = new Blob([JSON.stringify(metadata)], { type: 'application/json' });
  if (metadataFirst) data.append('metadata', meta);
  data.append('file', new Blob([file], { type: 'application/octet-stream' }), fileName);
  if (!metadataFirst) data.append('metadata', meta);
  return data;
}

async function api(
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { ...client.authHeader(), ...(init.headers as Record<string, string> | undefined) },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('uploads', () => {
  it('take multipart forms (file part and JSON metadata, in either order) through the same rules', async () => {
    const ws = await client.getCurrentWorkspace();
    const orchestration = await api(`/v1/workspaces/${ws.id}/orchestrations`, {
      method: 'POST',
      body: form(zip, 'api_inference_orchestration.zip', {
        name: 'apiorchestrationsample',
        workspace_id: ws.id,
      }),
    });
    expect(orchestration.status, JSON.stringify(orchestration.body)).toBe(201);
    expect(orchestration.body).toMatchObject({
      name: 'apiorchestrationsample',
      fileName: 'api_inference_orchestration.zip',
      status: 'pending_packaging',
    });
    const model = await api(`/v1/workspaces/${ws.id}/models`, {
      method: 'POST',
      body: form(makeScaleModel({ width: 2 }), 'scale.onnx', { name: 'formmodel' }, true),
    });
    expect(model.status, JSON.stringify(model.body)).toBe(201);
    expect(model.body).toMatchObject({ name: 'formmodel', fileName: 'scale.onnx' });
    const bad = await api(`/v1/workspaces/${ws.id}/orchestrations`, {
      method: 'POST',
      body: form(new Uint8Array([1, 2, 3]), 'x.zip', { name: 'notazip' }),
    });
    expect(bad.status).toBe(400);
    const noFile = new FormData();
    noFile.append('metadata', JSON.stringify({ name: 'nofile' }));
    const missing = await api(`/v1/workspaces/${ws.id}/models`, { method: 'POST', body: noFile });
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toContain('no file part');
  });

  it('a multipart form that cannot be parsed (no boundary, cut short) is refused 400 invalid_request, not 500', async () => {
    const ws = await client.getCurrentWorkspace();
    const forms = [
      { type: 'multipart/form-data', body: 'garbage' },
      { type: 'multipart/form-data; boundary=zzz', body: '--yyy\r\ngarbage' },
      {
        type: 'multipart/form-data; boundary=zzz',
        body: '--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\nPK\u0003\u0004',
      },
    ];
    for (const route of ['orchestrations', 'models?name=formcut']) {
      for (const { type, body } of forms) {
        const answer = await api(`/v1/workspaces/${ws.id}/${route}`, {
          method: 'POST',
          body,
          headers: { 'content-type': type },
        });
        const what = `${route} ${type}: ${JSON.stringify(answer.body)}`;
        expect(answer.status, what).toBe(400);
        expect((answer.body.error as { code: string }).code, what).toBe('invalid_request');
        expect((answer.body.error as { message: string }).message, what).toMatch(
          /^The multipart form is not readable: /,
        );
      }
    }
    expect((await client.listModels()).map((m) => m.name)).not.toContain('formcut');
  });

  it('a content type they do not take is refused with the accepted ones named', async () => {
    const ws = await client.getCurrentWorkspace();
    const answer = await api(`/v1/workspaces/${ws.id}/orchestrations`, {
      method: 'POST',
      body: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(answer.status).toBe(415);
    expect((answer.body.error as { message: string }).message).toBe(
      'Content-Type "text/plain" is not accepted here; send one of: application/zip, application/x-zip-compressed, application/octet-stream, multipart/form-data.',
    );
  });

  it('a raw upload without a file name is named after the orchestration, else orchestration.zip', async () => {
    const ws = await client.getCurrentWorkspace();
    const post = (query: string): Promise<{ status: number; body: Record<string, unknown> }> =>
      api(`/v1/workspaces/${ws.id}/orchestrations${query}`, {
        method: 'POST',
        body: zip,
        headers: { 'content-type': 'application/zip' },
      });
    expect((await post('?name=houseprice')).body.fileName).toBe('houseprice.zip');
    expect((await post('')).body.fileName).toBe('orchestration.zip');
    const disposition = await api(`/v1/workspaces/${ws.id}/orchestrations`, {
      method: 'POST',
      body: zip,
      headers: {
        'content-type': 'application/zip',
        'content-disposition': 'attachment; filename="remote_inference.zip"',
      },
    });
    expect(disposition.body.fileName).toBe('remote_inference.zip');
  });

  it('the SDK reports upload progress up to the whole size', async () => {
    const bytes = makeScaleModel({ width: 4 });
    const seen: [number, number | null][] = [];
    await client.uploadModel('progressed', new Blob([bytes]), {
      onProgress: (sent, total) => seen.push([sent, total]),
    });
    expect(seen.at(-1)).toEqual([bytes.byteLength, bytes.byteLength]);
  });
});

describe('validation errors name the field and what is accepted', () => {
  it('an unknown body field', async () => {
    const pipeline = await client.buildPipeline('namedfields');
    const ws = await client.getCurrentWorkspace();
    const answer = await api(`/v1/workspaces/${ws.id}/pipelines/${pipeline.name}/deploy`, {
      method: 'POST',
      body: JSON.stringify({ config: { gpus: 1 } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(answer.status).toBe(400);
    const error = answer.body.error as { message: string; details: { field: string; accepted: string[] } };
    expect(error.message).toMatch(/^body\/config has an unknown field "gpus"; accepted: .*"workers"/);
    expect(error.details.field).toBe('body/config/gpus');
  });

  it("a task body with the original's json field", async () => {
    const ws = await client.getCurrentWorkspace();
    const up = await api(`/v1/workspaces/${ws.id}/orchestrations?name=jsonfield`, {
      method: 'POST',
      body: zip,
      headers: { 'content-type': 'application/zip' },
    });
    const answer = await api(`/v1/orchestrations/${String(up.body.id)}/tasks`, {
      method: 'POST',
      body: JSON.stringify({ type: 'once', name: 't', json: { a: 1 } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(answer.status).toBe(400);
    expect((answer.body.error as { message: string }).message).toMatch(
      /^body has an unknown field "json"; accepted: "type", "name", "jsonArgs"/,
    );
  });
});

describe("deployment config: the tutorials' names, mapped honestly", () => {
  async function deployable(name: string): Promise<Awaited<ReturnType<Client['buildPipeline']>>> {
    const model = await client.uploadModel(`${name}-model`, makeScaleModel({ width: 2 }));
    const pipeline = await client.buildPipeline(name);
    await pipeline.addModelStep(model);
    return pipeline;
  }

  it('replicas 1, cpus 0.5 and memory "1Gi" (DeploymentConfigBuilder().replica_count(1).cpus(0.5).memory("1Gi")) deploy one worker', async () => {
    const pipeline = await deployable('cfgtutorial');
    await pipeline.deploy({ config: { replicas: 1, cpus: 0.5, memory: '1Gi' } });
    const status = await pipeline.status();
    expect(status).toMatchObject({ status: 'Running', workers: 1 });
    await pipeline.deploy({ config: { cpus: 2 } });
    expect(await pipeline.status()).toMatchObject({ status: 'Running', workers: 2 });
    await pipeline.deploy({ config: { workers: 1 } });
    expect(await pipeline.status()).toMatchObject({ status: 'Running', workers: 1 });
    await pipeline.undeploy();
  });

  it('what the server cannot honour is refused naming the field, and changes nothing', async () => {
    const pipeline = await deployable('cfgrefused');
    const refusal = async (config: Record<string, unknown>): Promise<ValidationError> => {
      const err = await pipeline.deploy({ config }).catch((e: unknown) => e);
      expect(err, JSON.stringify(config)).toBeInstanceOf(ValidationError);
      return err as ValidationError;
    };
    // An embedded server is one node; a node of a cluster places replicas (see below).
    if (!serversOnPostgres) {
      const replicas = await refusal({ replicas: 3 });
      expect(replicas.code).toBe('invalid_deployment_config');
      expect(replicas.message).toMatch(
        /^config\.replicas is 3, but this server runs at most 1 replica of a pipeline \(an embedded server is one node\)/,
      );
      expect(replicas.details).toMatchObject({ field: 'config.replicas', value: 3, max: 1 });
    }
    const disagree = await refusal({ workers: 4, cpus: 1 });
    expect(disagree.message).toMatch(/^config\.workers 4 and config\.cpus 1 disagree/);
    const small = await refusal({ memory: 16 });
    expect(small.message).toMatch(
      /^config\.memory 16 \(16 bytes\) is too small: \d+ workers each hold the pipeline's models/,
    );
    const notSize = await refusal({ memory: 'lots' });
    expect(notSize.message).toMatch(/^config\.memory "lots" is not a memory size/);
    const original = await refusal({ replicaCount: 1, cpus: 0.5 });
    expect(original.code).toBe('invalid_request');
    expect(original.message).toBe(
      'body/config has an unknown field "replicaCount"; accepted: "replicas", "workers", "cpus", "memory".',
    );
    const negative = await refusal({ cpus: -1 });
    expect(negative.message).toMatch(/^body\/config\/cpus /);
    expect(await pipeline.versions()).toEqual([]);
    expect((await pipeline.status()).status).toBe('Undeployed');
  });
});

describe.runIf(serversOnPostgres)(
  'replicas on a node of a cluster (QUOLL_TEST_SERVER_DATABASE=postgres)',
  () => {
    it('more replicas than inference nodes are placed on those there are, and status() says so', async () => {
      const model = await client.uploadModel('cfgreplicas-model', makeScaleModel({ width: 2 }));
      const pipeline = await client.buildPipeline('cfgreplicas');
      await pipeline.addModelStep(model);
      const status = await pipeline.deploy({ config: { replicas: 3 } }).then(() => pipeline.status());
      expect(status.status).toBe('Running');
      expect(status.replicas).toHaveLength(1);
      expect(status.replicas[0]).toMatchObject({
        nodeStatus: 'up',
        status: 'Running',
        version: status.version,
      });
      expect(status.details).toContain('1 of 3 replicas placed: only 1 inference nodes are up');
      await pipeline.undeploy();
      expect((await pipeline.status()).replicas).toEqual([]);
    });
  },
);

describe('a deploy of an unchanged pipeline reuses its version', () => {
  it('same steps: same version, nothing reloaded; a changed config reloads it; changed steps make a new one', async () => {
    const first = await client.uploadModel('reuse-model', makeScaleModel({ width: 2, factor: 2 }));
    const pipeline = await client.buildPipeline('reusepipe');
    await pipeline.addModelStep(first);
    await pipeline.deploy();
    const deployed = await pipeline.status();
    await pipeline.deploy();
    const again = await pipeline.status();
    expect(again.version).toBe(deployed.version);
    expect(again.deployedAt).toBe(deployed.deployedAt);
    expect((await pipeline.versions()).map((v) => v.version)).toEqual([deployed.version]);
    await pipeline.deploy({ config: { workers: 1 } });
    const reloaded = await pipeline.status();
    expect(reloaded).toMatchObject({ status: 'Running', version: deployed.version, workers: 1 });
    expect(await pipeline.versions()).toHaveLength(1);
    const second = await client.uploadModel('reuse-model', makeScaleModel({ width: 2, factor: 3 }));
    await pipeline.clear();
    await pipeline.addModelStep(second);
    await pipeline.deploy();
    const changed = await pipeline.status();
    expect(changed.version).not.toBe(deployed.version);
    expect(await pipeline.versions()).toHaveLength(2);
    expect(await pipeline.infer([{ tensor: [1, 2] }])).toMatchObject([{ 'out.scaled': [3, 6] }]);
    await pipeline.undeploy();
  });
});

describe("a run acts with its creator's rights", () => {
  /** Prints what the run sees: who it is, its workspace, and the connection named in its args. */
  const READER = `import { Client, taskArgs } from '@quoll/client';
const client = new Client();
const { connection, keepRunning } = taskArgs();
console.log('kind ' + (await client.whoAmI()).kind);
console.log('workspace ' + (await client.getCurrentWorkspace()).name);
try {
  const c = await client.getConnection(connection);
  const details = await c.details();
  console.log('found ' + c.name + ' ' + c.type + ' ' + Object.keys(details).join(','));
} catch (e) {
  console.log('error ' + e.code + ': ' + e.message);
}
if (keepRunning) await new Promise(() => setInterval(() => undefined, 60_000));
`;

  async function lines(task: Task, prefix: string): Promise<string> {
    return waitFor(
      `a "${prefix}" line from ${task.name}`,
      async () => {
        const [run] = await task.lastRuns();
        const logs = run === undefined ? [] : await run.logs();
        return logs.find((l) => l.line.startsWith(prefix))?.line;
      },
      60_000,
    );
  }

  it("the run-continuously tutorial: an admin's task reads a connection never attached to its workspace", async () => {
    await client.createConnection('continuous_data_sample', 'HTTP', {
      host: 'http://127.0.0.1:9/xtest-1k.arrow',
    });
    const admin = server.client();
    admin.setCurrentWorkspace(await admin.getWorkspace('runcontinuouslyws', { createIfNotExist: true }));
    const orchestration = await readyOrchestration(admin, 'continuousreader', { 'main.mjs': READER });
    const task = await orchestration.runContinuously({
      name: 'run continuous sample',
      jsonArgs: { connection: 'continuous_data_sample', keepRunning: true },
    });
    expect(await lines(task, 'found ')).toBe('found continuous_data_sample HTTP host');
    expect(await lines(task, 'kind ')).toBe('kind admin');
    // Admin rights, but the task's workspace stays the run's default one.
    expect(await lines(task, 'workspace ')).toBe('workspace runcontinuouslyws');
    expect(await task.kill()).toBe('pending_kill');
  });

  it("a workspace token's task sees what that token sees, and not-found says so", async () => {
    await client.createConnection('scoped_run_source', 'HTTP', { host: 'http://127.0.0.1:9/data' });
    const ws = await client.getWorkspace('scopedrunws', { createIfNotExist: true });
    const scoped = new Client({ url: server.url, token: await client.createWorkspaceToken(ws) });
    const orchestration = await readyOrchestration(scoped, 'scopedreader', { 'main.mjs': READER });
    const hidden = await orchestration.runOnce({
      name: 'scoped read',
      jsonArgs: { connection: 'scoped_run_source' },
    });
    expect(await lines(hidden, 'kind ')).toBe('kind workspace');
    expect(await lines(hidden, 'error ')).toBe(
      'error connection_not_found: No connection is named "scoped_run_source" among those this token can see: ' +
        'it is bounded to workspace "scopedrunws" and sees only the connections attached to it. ' +
        'Attach the connection to that workspace (workspace.addConnection(name), with an admin token), ' +
        'or create the task with an admin token so its runs see every connection.',
    );
    await ws.addConnection('scoped_run_source');
    const visible = await orchestration.runOnce({
      name: 'scoped read 2',
      jsonArgs: { connection: 'scoped_run_source' },
    });
    expect(await lines(visible, 'found ')).toBe('found scoped_run_source HTTP host');
  });
});

describe('listings and lookups across workspaces', () => {
  it('filter orchestrations and tasks by workspace id or name, and tasks by orchestration SHA', async () => {
    const other = await client.getWorkspace('parity-other', { createIfNotExist: true });
    const scoped = server.client();
    scoped.setCurrentWorkspace(other);
    const orchestration = await (
      await scoped.uploadOrchestration({ bytes: zip, fileName: 'o.zip' }, { name: 'elsewhere' })
    ).waitUntilReady();
    const task = await orchestration.runOnce({ name: 'by-sha' });
    expect((await client.listOrchestrations({ workspaceId: other.id })).map((o) => o.name)).toEqual([
      'elsewhere',
    ]);
    expect((await client.listOrchestrations({ workspaceName: 'parity-other' })).map((o) => o.name)).toEqual([
      'elsewhere',
    ]);
    expect((await client.listTasks({ workspaceId: other.id })).map((t) => t.id)).toEqual([task.id]);
    const bySha = await client.listTasks({ orchestrationSha: orchestration.sha, workspaceId: other.id });
    expect(bySha.map((t) => t.id)).toEqual([task.id]);
    expect(await client.listTasks({ orchestrationSha: '0'.repeat(64) })).toHaveLength(0);
  });

  it('pipelinesByName finds a pipeline in every visible workspace and says when there is none', async () => {
    for (const name of ['pbn-one', 'pbn-two']) {
      const c = server.client();
      c.setCurrentWorkspace(await c.getWorkspace(name, { createIfNotExist: true }));
      await c.buildPipeline('shared-name');
    }
    const found = await client.pipelinesByName('shared-name');
    expect(found.map((p) => p.workspaceId).length).toBe(2);
    const err = await client.pipelinesByName('does-not-exist').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain('does-not-exist');
    const pbn = await client.getWorkspace('pbn-one');
    expect((await client.listPipelines({ workspaceId: pbn.id })).map((p) => p.name)).toEqual(['shared-name']);
  });
});
