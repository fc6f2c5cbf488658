// A token scoped to workspace A, run against every route family while workspace B holds
// resources of every kind: each call on B's things answers "not found" (or `forbidden` on an
// admin-only route) and changes nothing anywhere; the same calls on A's own things succeed.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, Orchestration, Task, TaskRun, Workspace } from '@quoll/client';
import { readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

/** What one HTTP call answered. */
interface Answer {
  status: number;
  code: string | undefined;
  message: string | undefined;
  text: string;
}

/** One call of the matrix: method, path and body, as a scoped token makes it. */
interface Call {
  what: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  json?: unknown;
  bytes?: Uint8Array;
  contentType?: string;
}

/** A call that must be refused: `not_found` = any `*_not_found` code with 404. */
interface RefusedCall extends Call {
  refused: 'not_found' | 'forbidden';
  /** The same call on something that does not exist: it must answer the same code and message. */
  missing?: { path: string; hidden: string; absent: string };
}

const ROW = Array.from({ length: 18 }, (_, i) => i + 1);
/** One row for the Open Inference Protocol's infer route. */
const OIP_BODY = { inputs: [{ name: 'tensor', shape: [1, 18], datatype: 'FP32', data: ROW }] };
const MAIN = `console.log('hello from ' + process.env.QUOLL_TASK_ID);\n`;

let server: TestServer;
let admin: Client;
let wsA: Workspace;
let wsB: Workspace;
/** The admin client, current workspace A / B. */
let adminA: Client;
let adminB: Client;
/** A token that sees only workspace A. */
let tokenA: string;
let versionA: string;
let versionB: string;
/** B's version of the model named `twin`, which A also has. */
let twinB: string;
let inferUrlA: string;
let inferUrlB: string;
let orchA: Orchestration;
let orchB: Orchestration;
let taskA: Task;
let taskB: Task;
let runA: TaskRun;
let runB: TaskRun;

async function call(token: string, c: Call): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  let body: string | Uint8Array | undefined;
  if (c.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(c.json);
  } else if (c.bytes !== undefined) {
    headers['content-type'] = c.contentType ?? 'application/octet-stream';
    body = c.bytes;
  }
  const url = c.path.startsWith('http') ? c.path : `${server.url}${c.path}`;
  const res = await fetch(url, { method: c.method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let code: string | undefined;
  let message: string | undefined;
  try {
    const parsed = JSON.parse(text) as {
      error?: { code?: string; message?: string } | string;
      code?: string;
    };
    if (typeof parsed.error === 'string') {
      // The Open Inference Protocol's error body: the message as "error", the code beside it.
      code = parsed.code;
      message = parsed.error;
    } else {
      code = parsed.error?.code;
      message = parsed.error?.message;
    }
  } catch {
    // Not JSON (an event stream or Arrow): no error body.
  }
  return { status: res.status, code, message, text };
}

async function adminGet(path: string): Promise<unknown> {
  const a = await call(server.token, { what: path, method: 'GET', path });
  if (a.status !== 200) throw new Error(`admin GET ${path}: ${a.status} ${a.text}`);
  return JSON.parse(a.text) as unknown;
}

/** Everything the instance holds, as the admin sees it: what a refused call must not change. */
async function snapshot(): Promise<Record<string, unknown>> {
  const state: Record<string, unknown> = {
    workspaces: await adminGet('/v1/workspaces'),
    connections: await adminGet('/v1/connections'),
    audit: await adminGet('/v1/admin/audit?limit=10000'),
    orchestrations: await adminGet('/v1/orchestrations'),
    tasks: await adminGet('/v1/tasks?killed=true'),
  };
  for (const ws of [wsA, wsB]) {
    const base = `/v1/workspaces/${ws.id}`;
    state[`${ws.name} models`] = await adminGet(`${base}/models`);
    state[`${ws.name} connections`] = await adminGet(`${base}/connections`);
    const pipelines = (await adminGet(`${base}/pipelines`)) as { name: string }[];
    state[`${ws.name} pipelines`] = pipelines;
    for (const p of pipelines) {
      state[`${ws.name} ${p.name} status`] = await adminGet(`${base}/pipelines/${p.name}/status`);
      state[`${ws.name} ${p.name} versions`] = await adminGet(`${base}/pipelines/${p.name}/versions`);
      state[`${ws.name} ${p.name} logs`] = await adminGet(`${base}/pipelines/${p.name}/logs?limit=1000`);
    }
  }
  for (const task of [taskA, taskB])
    state[`runs of ${task.id}`] = await adminGet(`/v1/tasks/${task.id}/runs`);
  for (const run of [runA, runB]) state[`log of ${run.id}`] = await adminGet(`/v1/task-runs/${run.id}/logs`);
  return state;
}

beforeAll(async () => {
  server = await startTestServer();
  admin = server.client();
  wsA = await admin.createWorkspace('scope-a');
  wsB = await admin.createWorkspace('scope-b');
  adminA = server.client();
  adminA.setCurrentWorkspace(wsA);
  adminB = server.client();
  adminB.setCurrentWorkspace(wsB);

  // The same kinds of things in both workspaces, with distinct names, plus one shared name.
  versionA = (await adminA.uploadModel('model-a', makeScaleModel({ factor: 2 }))).version;
  versionB = (await adminB.uploadModel('model-b', makeScaleModel({ factor: 3 }))).version;
  await adminA.uploadModel('twin', makeScaleModel({ factor: 4 }));
  twinB = (await adminB.uploadModel('twin', makeScaleModel({ factor: 5 }))).version;
  const pipeA = await adminA.buildPipeline('pipe-a');
  await pipeA.addModelStep(await adminA.getModel('model-a'));
  await pipeA.deploy();
  inferUrlA = pipeA.url();
  const pipeB = await adminB.buildPipeline('pipe-b');
  await pipeB.addModelStep(await adminB.getModel('model-b'));
  await pipeB.deploy();
  inferUrlB = pipeB.url();
  await pipeB.infer([{ tensor: ROW }]);

  await admin.createConnection('conn_a', 'HTTP', { host: 'http://127.0.0.1:9/a' });
  await admin.createConnection('conn_a_only', 'HTTP', { host: 'http://127.0.0.1:9/a-only' });
  await admin.createConnection('conn_b', 'HTTP', { host: 'http://127.0.0.1:9/b', password: 'b-secret' });
  await admin.createConnection('conn_shared', 'HTTP', { host: 'http://127.0.0.1:9/shared' });
  await wsA.addConnection('conn_a');
  await wsA.addConnection('conn_a_only');
  await wsB.addConnection('conn_b');
  await wsA.addConnection('conn_shared');
  await wsB.addConnection('conn_shared');

  [orchA, orchB] = await Promise.all([
    readyOrchestration(adminA, 'orch-a', { 'main.mjs': MAIN }),
    readyOrchestration(adminB, 'orch-b', { 'main.mjs': MAIN }),
  ]);
  taskA = await orchA.runOnce({ name: 'task-a' });
  taskB = await orchB.runOnce({ name: 'task-b' });
  const finished = async (task: Task): Promise<TaskRun> =>
    waitFor(`a finished run of ${task.name}`, async () => {
      const [run] = await task.lastRuns({ limit: 1 });
      return run !== undefined && run.status !== 'running' ? run : undefined;
    });
  [runA, runB] = await Promise.all([finished(taskA), finished(taskB)]);

  tokenA = await admin.createWorkspaceToken(wsA, { subject: 'scoped-a' });
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

/** Every call a token of A makes on B's things (or on admin-only routes). */
function refusedCalls(zip: Uint8Array): RefusedCall[] {
  const A = `/v1/workspaces/${wsA.id}`;
  const B = `/v1/workspaces/${wsB.id}`;
  const absentWs = '/v1/workspaces/987654';
  const ghost = randomUUID();
  const bId = String(wsB.id);
  /** The call with `inPath` replaced by `absentInPath`; the messages may differ only in the names. */
  const sameAsMissing = (
    path: string,
    inPath: string,
    absentInPath: string,
    hidden = inPath,
    absent = absentInPath,
  ): RefusedCall['missing'] => ({ path: path.replace(inPath, absentInPath), hidden, absent });
  const nf = (c: Call, missing?: RefusedCall['missing']): RefusedCall => ({
    ...c,
    refused: 'not_found',
    ...(missing ? { missing } : {}),
  });
  const fb = (c: Call): RefusedCall => ({ ...c, refused: 'forbidden' });
  return [
    // workspaces and tokens
    nf({ what: 'get B by id', method: 'GET', path: B }, sameAsMissing(B, B, absentWs, bId, '987654')),
    nf({ what: 'get B by name', method: 'GET', path: '/v1/workspaces/by-name/scope-b' }),
    nf({
      what: 'get-or-create a new workspace',
      method: 'GET',
      path: '/v1/workspaces/by-name/scope-c?createIfNotExist=true',
    }),
    fb({ what: 'create a workspace', method: 'POST', path: '/v1/workspaces', json: { name: 'scope-d' } }),
    fb({ what: 'issue a token for B', method: 'POST', path: `${B}/tokens`, json: {} }),
    fb({ what: 'issue a token for A', method: 'POST', path: `${A}/tokens`, json: {} }),
    // models
    nf({ what: "list B's models", method: 'GET', path: `${B}/models` }),
    nf(
      { what: "get B's model", method: 'GET', path: `${B}/models/model-b` },
      sameAsMissing(`${B}/models/model-b`, B, absentWs, bId, '987654'),
    ),
    nf({ what: "get B's model version", method: 'GET', path: `${B}/models/model-b?version=${versionB}` }),
    nf({ what: "get B's model under A", method: 'GET', path: `${A}/models/model-b` }),
    nf({ what: "get B's twin version under A", method: 'GET', path: `${A}/models/twin?version=${twinB}` }),
    nf({
      what: 'upload a model into B',
      method: 'POST',
      path: `${B}/models?name=intruder`,
      bytes: makeScaleModel(),
    }),
    nf({
      what: "configure B's model",
      method: 'PATCH',
      path: `${B}/models/model-b/versions/${versionB}/config`,
      json: { batchConfig: 'single' },
    }),
    // pipelines
    nf({ what: 'build a pipeline in B', method: 'POST', path: `${B}/pipelines`, json: { name: 'intruder' } }),
    nf({ what: "list B's pipelines", method: 'GET', path: `${B}/pipelines` }),
    nf({ what: "get B's pipeline", method: 'GET', path: `${B}/pipelines/pipe-b` }),
    nf({ what: "get B's pipeline under A", method: 'GET', path: `${A}/pipelines/pipe-b` }),
    nf({
      what: "set B's pipeline steps",
      method: 'PUT',
      path: `${B}/pipelines/pipe-b/steps`,
      json: { steps: [] },
    }),
    nf({
      what: "put B's model version into A's pipeline",
      method: 'PUT',
      path: `${A}/pipelines/pipe-a/steps`,
      json: { steps: [{ modelName: 'model-b', modelVersion: versionB }] },
    }),
    nf({
      what: "put B's twin version into A's pipeline",
      method: 'PUT',
      path: `${A}/pipelines/pipe-a/steps`,
      json: { steps: [{ modelName: 'twin', modelVersion: twinB }] },
    }),
    nf({ what: "B's pipeline versions", method: 'GET', path: `${B}/pipelines/pipe-b/versions` }),
    nf({ what: "deploy B's pipeline", method: 'POST', path: `${B}/pipelines/pipe-b/deploy`, json: {} }),
    nf({ what: "undeploy B's pipeline", method: 'POST', path: `${B}/pipelines/pipe-b/undeploy` }),
    nf({ what: "B's pipeline status", method: 'GET', path: `${B}/pipelines/pipe-b/status` }),
    // inference and inference logs
    nf(
      { what: "infer on B's pipeline", method: 'POST', path: inferUrlB, json: [{ tensor: ROW }] },
      sameAsMissing(inferUrlB, `/workspaces/${bId}/`, '/workspaces/987654/', bId, '987654'),
    ),
    nf({
      what: "infer on B's pipeline name under A",
      method: 'POST',
      path: `${server.url}${A}/pipelines/pipe-b/infer`,
      json: [{ tensor: ROW }],
    }),
    nf({ what: "B's inference logs", method: 'GET', path: `${B}/pipelines/pipe-b/logs` }),
    // the Open Inference Protocol: B's pipeline by the token's workspace, or by B's name
    nf({ what: "OIP metadata of B's pipeline", method: 'GET', path: '/v2/models/pipe-b' }),
    nf({ what: "OIP readiness of B's pipeline", method: 'GET', path: '/v2/models/pipe-b/ready' }),
    nf({
      what: "OIP infer on B's pipeline",
      method: 'POST',
      path: '/v2/models/pipe-b/infer',
      json: OIP_BODY,
    }),
    nf(
      { what: 'OIP metadata in B', method: 'GET', path: '/v2/workspaces/scope-b/models/pipe-b' },
      sameAsMissing('/v2/workspaces/scope-b/models/pipe-b', 'scope-b', 'scope-zz'),
    ),
    nf({ what: 'OIP readiness in B', method: 'GET', path: '/v2/workspaces/scope-b/models/pipe-b/ready' }),
    nf({
      what: 'OIP infer in B',
      method: 'POST',
      path: '/v2/workspaces/scope-b/models/pipe-b/infer',
      json: OIP_BODY,
    }),
    // connections
    nf(
      { what: "get B's connection", method: 'GET', path: '/v1/connections/conn_b' },
      sameAsMissing('/v1/connections/conn_b', 'conn_b', 'conn_zz'),
    ),
    nf(
      { what: "B's connection details", method: 'GET', path: '/v1/connections/conn_b/details' },
      sameAsMissing('/v1/connections/conn_b/details', 'conn_b', 'conn_zz'),
    ),
    nf(
      { what: "delete B's connection", method: 'DELETE', path: '/v1/connections/conn_b' },
      sameAsMissing('/v1/connections/conn_b', 'conn_b', 'conn_zz'),
    ),
    nf({ what: "attach B's connection to A", method: 'PUT', path: `${A}/connections/conn_b` }),
    nf({ what: "detach B's connection from A", method: 'DELETE', path: `${A}/connections/conn_b` }),
    nf({ what: "list B's connections", method: 'GET', path: `${B}/connections` }),
    nf({ what: 'attach a shared connection to B', method: 'PUT', path: `${B}/connections/conn_a` }),
    nf({ what: 'detach a shared connection from B', method: 'DELETE', path: `${B}/connections/conn_shared` }),
    fb({ what: 'delete a connection B also uses', method: 'DELETE', path: '/v1/connections/conn_shared' }),
    fb({
      what: "create a connection named like B's",
      method: 'POST',
      path: '/v1/connections',
      json: { name: 'conn_b', type: 'HTTP', details: {} },
    }),
    fb({
      what: 'create a connection',
      method: 'POST',
      path: '/v1/connections',
      json: { name: 'conn_new', type: 'HTTP', details: {} },
    }),
    fb({ what: 'read the audit trail', method: 'GET', path: '/v1/admin/audit' }),
    fb({ what: 'read the Prometheus metrics of every workspace', method: 'GET', path: '/metrics' }),
    fb({ what: 'list console sessions', method: 'GET', path: '/v1/admin/sessions' }),
    fb({ what: 'revoke a console session', method: 'DELETE', path: '/v1/admin/sessions/some-session' }),
    fb({ what: 'list API tokens', method: 'GET', path: '/v1/admin/tokens' }),
    fb({ what: 'revoke an API token', method: 'DELETE', path: '/v1/admin/tokens/some-token' }),
    fb({ what: 'list the nodes', method: 'GET', path: '/v1/admin/nodes' }),
    // orchestrations
    nf({
      what: 'upload an orchestration into B',
      method: 'POST',
      path: `${B}/orchestrations?name=intruder&fileName=x.zip`,
      bytes: zip,
      contentType: 'application/zip',
    }),
    nf({
      what: "list B's orchestrations by name",
      method: 'GET',
      path: '/v1/orchestrations?workspaceName=scope-b',
    }),
    nf({
      what: "list B's orchestrations by id",
      method: 'GET',
      path: `/v1/orchestrations?workspaceId=${wsB.id}`,
    }),
    nf(
      { what: "get B's orchestration", method: 'GET', path: `/v1/orchestrations/${orchB.id}` },
      sameAsMissing(`/v1/orchestrations/${orchB.id}`, orchB.id, ghost),
    ),
    nf({ what: "B's packaging logs", method: 'GET', path: `/v1/orchestrations/${orchB.id}/packaging-logs` }),
    nf({ what: "B's orchestration tasks", method: 'GET', path: `/v1/orchestrations/${orchB.id}/tasks` }),
    nf({
      what: "create a task on B's orchestration",
      method: 'POST',
      path: `/v1/orchestrations/${orchB.id}/tasks`,
      json: { type: 'once', name: 'intruder' },
    }),
    // cross-workspace listings narrowed to B
    nf({ what: "list B's pipelines", method: 'GET', path: '/v1/pipelines?workspaceName=scope-b' }),
    nf({ what: "list B's models", method: 'GET', path: `/v1/models?workspaceId=${wsB.id}` }),
    // tasks and task runs
    nf({ what: "list B's tasks by name", method: 'GET', path: '/v1/tasks?workspaceName=scope-b' }),
    nf({ what: "list B's tasks by id", method: 'GET', path: `/v1/tasks?workspaceId=${wsB.id}&killed=true` }),
    nf(
      { what: "get B's task", method: 'GET', path: `/v1/tasks/${taskB.id}` },
      sameAsMissing(`/v1/tasks/${taskB.id}`, taskB.id, ghost),
    ),
    nf(
      { what: "kill B's task", method: 'POST', path: `/v1/tasks/${taskB.id}/kill` },
      sameAsMissing(`/v1/tasks/${taskB.id}/kill`, taskB.id, ghost),
    ),
    nf({ what: "B's task runs", method: 'GET', path: `/v1/tasks/${taskB.id}/runs` }),
    nf({ what: "B's task ticks", method: 'GET', path: `/v1/tasks/${taskB.id}/ticks` }),
    nf(
      { what: "get B's run", method: 'GET', path: `/v1/task-runs/${runB.id}` },
      sameAsMissing(`/v1/task-runs/${runB.id}`, runB.id, ghost),
    ),
    nf(
      { what: "B's run log", method: 'GET', path: `/v1/task-runs/${runB.id}/logs` },
      sameAsMissing(`/v1/task-runs/${runB.id}/logs`, runB.id, ghost),
    ),
    nf({ what: "follow B's run log", method: 'GET', path: `/v1/task-runs/${runB.id}/logs/follow` }),
  ];
}

/** The same kinds of calls on A's own things, with the status each must answer. */
function ownCalls(zip: Uint8Array): (Call & { status: number })[] {
  const A = `/v1/workspaces/${wsA.id}`;
  return [
    { what: 'who am I', method: 'GET', path: '/v1/me', status: 200 },
    { what: 'list workspaces', method: 'GET', path: '/v1/workspaces', status: 200 },
    { what: 'list connections', method: 'GET', path: '/v1/connections', status: 200 },
    { what: 'list tasks', method: 'GET', path: '/v1/tasks', status: 200 },
    { what: 'list pipelines', method: 'GET', path: '/v1/pipelines', status: 200 },
    { what: 'list models', method: 'GET', path: '/v1/models', status: 200 },
    { what: 'get A', method: 'GET', path: A, status: 200 },
    { what: 'get A by name', method: 'GET', path: '/v1/workspaces/by-name/scope-a', status: 200 },
    { what: "list A's models", method: 'GET', path: `${A}/models`, status: 200 },
    { what: "get A's model", method: 'GET', path: `${A}/models/model-a?version=${versionA}`, status: 200 },
    {
      what: 'upload a model into A',
      method: 'POST',
      path: `${A}/models?name=model-a2`,
      bytes: makeScaleModel(),
      status: 201,
    },
    {
      what: "configure A's model",
      method: 'PATCH',
      path: `${A}/models/model-a/versions/${versionA}/config`,
      json: { batchConfig: 'single' },
      status: 200,
    },
    {
      what: 'build a pipeline in A',
      method: 'POST',
      path: `${A}/pipelines`,
      json: { name: 'pipe-a2' },
      status: 200,
    },
    { what: "list A's pipelines", method: 'GET', path: `${A}/pipelines`, status: 200 },
    { what: "get A's pipeline", method: 'GET', path: `${A}/pipelines/pipe-a`, status: 200 },
    {
      what: "set A's pipeline steps",
      method: 'PUT',
      path: `${A}/pipelines/pipe-a/steps`,
      json: { steps: [{ modelName: 'model-a', modelVersion: versionA }] },
      status: 200,
    },
    { what: "A's pipeline versions", method: 'GET', path: `${A}/pipelines/pipe-a/versions`, status: 200 },
    { what: "undeploy A's pipeline", method: 'POST', path: `${A}/pipelines/pipe-a/undeploy`, status: 200 },
    {
      what: "deploy A's pipeline",
      method: 'POST',
      path: `${A}/pipelines/pipe-a/deploy`,
      json: {},
      status: 200,
    },
    { what: "A's pipeline status", method: 'GET', path: `${A}/pipelines/pipe-a/status`, status: 200 },
    {
      what: "infer on A's pipeline",
      method: 'POST',
      path: inferUrlA,
      json: [{ tensor: ROW }],
      status: 200,
    },
    { what: "A's inference logs", method: 'GET', path: `${A}/pipelines/pipe-a/logs`, status: 200 },
    { what: 'OIP server metadata', method: 'GET', path: '/v2', status: 200 },
    { what: "OIP metadata of A's pipeline", method: 'GET', path: '/v2/models/pipe-a', status: 200 },
    { what: "OIP readiness of A's pipeline", method: 'GET', path: '/v2/models/pipe-a/ready', status: 200 },
    {
      what: "OIP infer on A's pipeline",
      method: 'POST',
      path: '/v2/models/pipe-a/infer',
      json: OIP_BODY,
      status: 200,
    },
    { what: 'OIP metadata in A', method: 'GET', path: '/v2/workspaces/scope-a/models/pipe-a', status: 200 },
    {
      what: 'OIP readiness in A',
      method: 'GET',
      path: '/v2/workspaces/scope-a/models/pipe-a/ready',
      status: 200,
    },
    {
      what: 'OIP infer in A',
      method: 'POST',
      path: '/v2/workspaces/scope-a/models/pipe-a/infer',
      json: OIP_BODY,
      status: 200,
    },
    { what: "get A's connection", method: 'GET', path: '/v1/connections/conn_a', status: 200 },
    { what: "A's connection details", method: 'GET', path: '/v1/connections/conn_a/details', status: 200 },
    { what: "detach A's connection", method: 'DELETE', path: `${A}/connections/conn_a`, status: 204 },
    { what: "list A's attached connections", method: 'GET', path: `${A}/connections`, status: 200 },
    { what: 'get the shared connection', method: 'GET', path: '/v1/connections/conn_shared', status: 200 },
    {
      what: 'attach the shared connection to A again',
      method: 'PUT',
      path: `${A}/connections/conn_shared`,
      status: 200,
    },
    {
      what: "delete A's own connection",
      method: 'DELETE',
      path: '/v1/connections/conn_a_only',
      status: 204,
    },
    {
      what: 'upload an orchestration into A',
      method: 'POST',
      path: `${A}/orchestrations?name=orch-a2&fileName=a2.zip`,
      bytes: zip,
      contentType: 'application/zip',
      status: 201,
    },
    {
      what: "list A's orchestrations",
      method: 'GET',
      path: `/v1/orchestrations?workspaceId=${wsA.id}`,
      status: 200,
    },
    { what: "get A's orchestration", method: 'GET', path: `/v1/orchestrations/${orchA.id}`, status: 200 },
    {
      what: "A's packaging logs",
      method: 'GET',
      path: `/v1/orchestrations/${orchA.id}/packaging-logs`,
      status: 200,
    },
    {
      what: "A's orchestration tasks",
      method: 'GET',
      path: `/v1/orchestrations/${orchA.id}/tasks`,
      status: 200,
    },
    { what: "list A's tasks", method: 'GET', path: '/v1/tasks?workspaceName=scope-a', status: 200 },
    { what: "get A's task", method: 'GET', path: `/v1/tasks/${taskA.id}`, status: 200 },
    { what: "A's task runs", method: 'GET', path: `/v1/tasks/${taskA.id}/runs`, status: 200 },
    { what: "get A's run", method: 'GET', path: `/v1/task-runs/${runA.id}`, status: 200 },
    { what: "A's run log", method: 'GET', path: `/v1/task-runs/${runA.id}/logs`, status: 200 },
    {
      what: "follow A's run log",
      method: 'GET',
      path: `/v1/task-runs/${runA.id}/logs/follow`,
      status: 200,
    },
    { what: "the metrics window of A's pipelines", method: 'GET', path: '/v1/metrics/window', status: 200 },
    { what: "the console's overview of A", method: 'GET', path: '/v1/console/overview', status: 200 },
    { what: 'a console sign-in link', method: 'POST', path: '/v1/console/sign-in-links', status: 200 },
    {
      what: 'a console session from the pasted token',
      method: 'POST',
      path: '/v1/console/session',
      json: { token: tokenA },
      status: 200,
    },
    { what: 'who the console session is', method: 'GET', path: '/v1/console/session', status: 200 },
    { what: 'sign out of the console', method: 'DELETE', path: '/v1/console/session', status: 204 },
  ];
}

describe('a token scoped to workspace A, while workspace B holds one of everything', () => {
  it("answers not-found (or forbidden on admin-only routes) for every call on B's things, and changes nothing", async () => {
    const before = await snapshot();
    const zip = await createZip([{ path: 'main.mjs', content: MAIN }]);
    const wrong: string[] = [];
    for (const c of refusedCalls(zip)) {
      const a = await call(tokenA, c);
      const ok =
        c.refused === 'forbidden'
          ? a.status === 403 && a.code === 'forbidden'
          : a.status === 404 && /_not_found$/.test(a.code ?? '');
      if (!ok) wrong.push(`${c.what}: ${c.method} ${c.path} → ${a.status} ${a.text.slice(0, 200)}`);
      if (c.missing) {
        const m = await call(tokenA, { ...c, path: c.missing.path });
        const same =
          m.status === a.status &&
          m.code === a.code &&
          m.message?.replaceAll(c.missing.absent, 'X') === a.message?.replaceAll(c.missing.hidden, 'X');
        if (!same) wrong.push(`${c.what}: hidden and missing differ: ${a.text} vs ${m.text}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(await snapshot()).toEqual(before);
  });

  it('lists only what is in A, and names no other workspace', async () => {
    const get = async (path: string): Promise<unknown> => {
      const a = await call(tokenA, { what: path, method: 'GET', path });
      expect(a.status, `${path}: ${a.text}`).toBe(200);
      return JSON.parse(a.text) as unknown;
    };
    expect(((await get('/v1/workspaces')) as { name: string }[]).map((w) => w.name)).toEqual(['scope-a']);
    expect(((await get('/v1/me')) as { workspace: { name: string } }).workspace.name).toBe('scope-a');
    // (Other tests add A's own things, so these check membership: A's names in, B's out.)
    const connections = (await get('/v1/connections')) as { name: string; workspaceNames: string[] }[];
    expect(connections.map((c) => c.name)).toContain('conn_shared');
    expect(connections.map((c) => c.name)).not.toContain('conn_b');
    for (const c of connections) expect(c.workspaceNames, c.name).toEqual(['scope-a']);
    // The filter above is what hides B: the admin sees both workspaces on the shared one.
    expect(
      ((await adminGet('/v1/connections/conn_shared')) as { workspaceNames: string[] }).workspaceNames,
    ).toEqual(['scope-a', 'scope-b']);
    const attached = (await get(`/v1/workspaces/${wsA.id}/connections`)) as { workspaceNames: string[] }[];
    expect(attached.flatMap((c) => c.workspaceNames)).not.toContain('scope-b');
    const orchestrations = ((await get('/v1/orchestrations')) as { name: string }[]).map((o) => o.name);
    expect(orchestrations).toContain('orch-a');
    expect(orchestrations).not.toContain('orch-b');
    const tasks = ((await get('/v1/tasks?killed=true')) as { name: string }[]).map((t) => t.name);
    expect(tasks).toContain('task-a');
    expect(tasks).not.toContain('task-b');
    expect(await get(`/v1/tasks?orchestrationId=${orchB.id}`)).toEqual([]);
    // (A's orchestration may be the same zip: its tasks are A's to see, B's never.)
    const bySha = (await get(`/v1/tasks?orchestrationSha=${orchB.sha}&killed=true`)) as { name: string }[];
    expect(bySha.map((t) => t.name)).not.toContain('task-b');
    const pipelines = ((await get('/v1/pipelines')) as { name: string }[]).map((p) => p.name);
    expect(pipelines).toContain('pipe-a');
    expect(pipelines).not.toContain('pipe-b');
    const models = ((await get('/v1/models')) as { name: string }[]).map((m) => m.name);
    expect(models).toContain('model-a');
    expect(models).not.toContain('model-b');
    expect(await get('/v1/pipelines?name=pipe-b')).toEqual([]);
    // Nothing in any answer names workspace B.
    const all = [
      '/v1/workspaces',
      '/v1/connections',
      '/v1/orchestrations',
      '/v1/tasks?killed=true',
      `/v1/workspaces/${wsA.id}/models`,
      `/v1/workspaces/${wsA.id}/pipelines`,
      '/v1/pipelines',
      '/v1/models',
      '/v1/console/overview',
    ];
    for (const path of all) expect(JSON.stringify(await get(path)), path).not.toContain('scope-b');
  });

  it("succeeds at the same calls on A's own things", async () => {
    const zip = await createZip([{ path: 'main.mjs', content: MAIN }]);
    const own = ownCalls(zip);
    const wrong: string[] = [];
    const answers = new Map<string, Answer>();
    for (const c of own) {
      const a = await call(tokenA, c);
      answers.set(c.what, a);
      if (a.status !== c.status)
        wrong.push(`${c.what}: ${c.method} ${c.path} → ${a.status} ${a.text.slice(0, 200)}`);
    }
    expect(wrong).toEqual([]);
    expect(JSON.parse(answers.get("A's connection details")?.text ?? '{}')).toMatchObject({
      details: { host: 'http://127.0.0.1:9/a' },
      workspaceNames: ['scope-a'],
    });
    expect(JSON.parse(answers.get('attach the shared connection to A again')?.text ?? '{}')).toMatchObject({
      workspaceNames: ['scope-a'],
    });
    expect(answers.get("follow A's run log")?.text).toContain('event: end');
    expect(answers.get("A's run log")?.text).toContain('hello from');

    // A task on A's own orchestration: created, then killed, by the scoped token.
    const created = await call(tokenA, {
      what: 'create a task',
      method: 'POST',
      path: `/v1/orchestrations/${orchA.id}/tasks`,
      json: { type: 'scheduled', name: 'own-schedule', schedule: '0 0 1 1 *' },
    });
    expect(created.status, created.text).toBe(201);
    const { id } = JSON.parse(created.text) as { id: string };
    const killed = await call(tokenA, { what: 'kill', method: 'POST', path: `/v1/tasks/${id}/kill` });
    expect(killed.status, killed.text).toBe(202);

    // What the scoped token did landed in A, and B still has what it had.
    expect(
      ((await adminGet(`/v1/workspaces/${wsA.id}/models`)) as { name: string }[]).map((m) => m.name),
    ).toContain('model-a2');
    expect(((await adminGet('/v1/connections')) as { name: string }[]).map((c) => c.name)).toEqual([
      'conn_a',
      'conn_b',
      'conn_shared',
    ]);
    expect((await adminGet('/v1/connections/conn_a')) as { workspaceNames: string[] }).toMatchObject({
      workspaceNames: [],
    });
    expect(
      (await adminGet(`/v1/workspaces/${wsB.id}/pipelines/pipe-b/status`)) as { status: string },
    ).toMatchObject({
      status: 'Running',
    });
    // Put back the connections these calls detached or deleted: the other tests start from the setup.
    await admin.createConnection('conn_a_only', 'HTTP', { host: 'http://127.0.0.1:9/a-only' });
    await wsA.addConnection('conn_a');
    await wsA.addConnection('conn_a_only');
  });

  it('covers every route the server documents', async () => {
    const doc = (await adminGet('/v1/openapi.json')) as { paths: Record<string, Record<string, unknown>> };
    const zip = new Uint8Array(0);
    const calls: Call[] = [...refusedCalls(zip), ...ownCalls(zip)];
    const exercised = calls.map((c) => `${c.method} ${new URL(c.path, server.url).pathname}`);
    const uncovered: string[] = [];
    for (const [template, methods] of Object.entries(doc.paths)) {
      const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
      for (const method of Object.keys(methods).map((m) => m.toUpperCase())) {
        if (template === '/v1/health' || template.startsWith('/v2/health/')) continue; // public, holds nothing
        if (template.startsWith('/sdk/python/')) continue; // public: the Python client package index
        if (!exercised.some((e) => e.startsWith(`${method} `) && pattern.test(e.slice(method.length + 1))))
          uncovered.push(`${method} ${template}`);
      }
    }
    // A new route must join the matrices above, so its scoping is tested too.
    expect(uncovered).toEqual([]);
  });
});
