// The Open Inference Protocol v2 (KServe / Triton HTTP) beside Quoll's own endpoint: the
// protocol's own example requests (JSON and the binary-tensor extension) give the same outputs
// as /v1, metadata matches the model, auth and logging are those of every inference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, InferenceRecord, Pipeline } from '@quoll/client';
import { makeHouseRows } from '../support/synthetic-data.js';
import {
  makeMultiIoModel,
  makeOpenInferenceExampleModel,
  makeTreeEnsembleRegressor,
} from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let client: Client;
let example: Pipeline;
let house: Pipeline;
let multi: Pipeline;

async function deployed(name: string, bytes: Uint8Array, tensorFields?: string[]): Promise<Pipeline> {
  let model = await client.uploadModel(`${name}-model`, bytes);
  if (tensorFields) model = await model.configure({ tensorFields });
  const pipeline = await client.buildPipeline(name);
  await pipeline.addModelStep(model);
  await pipeline.deploy();
  return pipeline;
}

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
  example = await deployed('oip-example', makeOpenInferenceExampleModel());
  house = await deployed('oip-house', makeTreeEnsembleRegressor(), ['tensor']);
  multi = await deployed('oip-multi', makeMultiIoModel());
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
  bytes: Uint8Array;
}

async function v2(
  path: string,
  init: {
    method?: string;
    body?: unknown;
    bytes?: Uint8Array;
    headers?: Record<string, string>;
    token?: string | null;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  const token = init.token === undefined ? server.token : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | Uint8Array | undefined;
  if (init.bytes !== undefined) body = init.bytes;
  else if (init.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(init.body);
  }
  const response = await fetch(`${server.url}${path}`, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const jsonLength = Number(response.headers.get('inference-header-content-length') ?? bytes.byteLength);
  const text = Buffer.from(bytes.subarray(0, jsonLength)).toString('utf8');
  return {
    status: response.status,
    headers: response.headers,
    json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
    bytes: bytes.subarray(jsonLength),
  };
}

/** Binary-extension body: JSON header, then the raw bytes, with the header length. */
function binaryBody(
  header: unknown,
  ...parts: Uint8Array[]
): { bytes: Uint8Array; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    bytes: Buffer.concat([json, ...parts]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(json.byteLength),
    },
  };
}

function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** `out.<name>` of Quoll's records answer, flattened row-major. */
function flatOut(records: InferenceRecord[], name: string): unknown[] {
  return records.flatMap((record) => (record[`out.${name}`] as unknown[]).flat(4));
}

async function versionOf(pipeline: Pipeline): Promise<string> {
  const status = await pipeline.status();
  return status.version!;
}

describe('health and metadata', () => {
  it('live and ready answer without a token', async () => {
    const live = await v2('/v2/health/live', { token: null });
    expect(live.status).toBe(200);
    expect(live.json).toEqual({ live: true });
    const ready = await v2('/v2/health/ready', { token: null });
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ ready: true });
  });

  it('server metadata names the binary-tensor extension', async () => {
    const meta = await v2('/v2');
    expect(meta.status).toBe(200);
    expect(meta.json).toMatchObject({ name: 'quoll', extensions: ['binary_tensor_data'] });
  });

  it("model metadata is the pipeline's inputs and outputs, with the served version", async () => {
    expect((await v2('/v2/models/oip-example')).json).toEqual({
      name: 'oip-example',
      versions: [await versionOf(example)],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'input0', datatype: 'UINT32', shape: [-1, 2] },
        { name: 'input1', datatype: 'BOOL', shape: [-1] },
      ],
      outputs: [
        { name: 'output0', datatype: 'FP32', shape: [-1, 2] },
        { name: 'output1', datatype: 'BOOL', shape: [-1] },
      ],
    });
    // A model configured with tensorFields takes the configured column name.
    const houseMeta = (await v2('/v2/models/oip-house')).json;
    expect(houseMeta.inputs).toEqual([{ name: 'tensor', datatype: 'FP32', shape: [-1, 18] }]);
    expect(houseMeta.outputs).toEqual([{ name: 'variable', datatype: 'FP32', shape: [-1, 1] }]);
    const multiMeta = (await v2('/v2/models/oip-multi')).json;
    expect(multiMeta.inputs).toEqual([
      { name: 'a', datatype: 'FP32', shape: [-1, 3] },
      { name: 'b', datatype: 'FP32', shape: [-1, 2] },
    ]);
    expect((await v2('/v2/models/oip-multi/ready')).json).toEqual({ name: 'oip-multi', ready: true });
  });
});

describe('inference', () => {
  it("the protocol's JSON example gives the same outputs as Quoll's endpoint", async () => {
    // The example request of the protocol's specification (input1 given one value per row).
    const answer = await v2('/v2/models/oip-example/infer', {
      body: {
        id: '42',
        inputs: [
          { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
          { name: 'input1', shape: [2], datatype: 'BOOL', data: [true, false] },
        ],
        outputs: [{ name: 'output0' }],
      },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(answer.json).toEqual({
      model_name: 'oip-example',
      model_version: await versionOf(example),
      id: '42',
      outputs: [{ name: 'output0', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4] }],
    });
    const quoll = await example.infer([
      // Quoll's records take a BOOL input as 0/1 (booleans are refused there as non-numbers).
      { input0: [1, 2], input1: 1 },
      { input0: [3, 4], input1: 0 },
    ]);
    expect(flatOut(quoll, 'output0')).toEqual((answer.json.outputs as { data: unknown[] }[])[0]!.data);

    // Without "outputs": every output, BOOL as true/false.
    const all = await v2('/v2/models/oip-example/infer', {
      body: {
        inputs: [
          {
            name: 'input0',
            shape: [2, 2],
            datatype: 'UINT32',
            data: [
              [1, 2],
              [3, 4],
            ],
          },
          { name: 'input1', shape: [2], datatype: 'BOOL', data: [true, false] },
        ],
      },
    });
    expect(all.json.outputs).toEqual([
      { name: 'output0', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4] },
      { name: 'output1', datatype: 'BOOL', shape: [2], data: [false, true] },
    ]);
    // Quoll's records carry BOOL outputs as 0/1; the protocol as false/true.
    expect(flatOut(quoll, 'output1').map((value) => value === 1 || value === true)).toEqual([false, true]);
  });

  it("the binary-tensor example (Triton's) gives the same outputs as the JSON form", async () => {
    const { bytes, headers } = binaryBody(
      {
        model_name: 'oip-example',
        inputs: [
          { name: 'input0', shape: [2, 2], datatype: 'UINT32', parameters: { binary_data_size: 16 } },
          { name: 'input1', shape: [2], datatype: 'BOOL', parameters: { binary_data_size: 2 } },
        ],
        outputs: [{ name: 'output0', parameters: { binary_data: true } }, { name: 'output1' }],
      },
      bytesOf(new Uint32Array([1, 2, 3, 4])),
      new Uint8Array([1, 0]),
    );
    const answer = await v2('/v2/models/oip-example/infer', { bytes, headers });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/octet-stream');
    expect(answer.json.outputs).toEqual([
      { name: 'output0', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } },
      { name: 'output1', datatype: 'BOOL', shape: [2], data: [false, true] },
    ]);
    expect(Array.from(new Float32Array(answer.bytes.slice().buffer))).toEqual([1, 2, 3, 4]);
  });

  it("a house-price model answers OIP JSON and binary exactly as Quoll's records endpoint", async () => {
    const flat = Array.from(makeHouseRows(5, 7));
    const rows = Array.from({ length: 5 }, (_, row) => flat.slice(row * 18, (row + 1) * 18));
    const quoll = await house.infer(rows.map((tensor) => ({ tensor })));
    const expected = flatOut(quoll, 'variable');
    const json = await v2('/v2/models/oip-house/infer', {
      body: { inputs: [{ name: 'tensor', shape: [5, 18], datatype: 'FP32', data: flat }] },
    });
    expect(json.status).toBe(200);
    expect(json.json.outputs).toEqual([
      { name: 'variable', datatype: 'FP32', shape: [5, 1], data: expected },
    ]);

    const { bytes, headers } = binaryBody(
      {
        inputs: [
          { name: 'tensor', shape: [5, 18], datatype: 'FP32', parameters: { binary_data_size: 5 * 18 * 4 } },
        ],
        parameters: { binary_data_output: true },
      },
      bytesOf(new Float32Array(flat)),
    );
    const binary = await v2('/v2/models/oip-house/infer', { bytes, headers });
    expect(binary.status).toBe(200);
    expect(Array.from(new Float32Array(binary.bytes.slice().buffer))).toEqual(expected);

    // Two inputs, two outputs.
    const multiAnswer = await v2('/v2/models/oip-multi/infer', {
      body: {
        inputs: [
          { name: 'a', shape: [1, 3], datatype: 'FP64', data: [1, 2, 3] },
          { name: 'b', shape: [1, 2], datatype: 'FP32', data: [4, 5] },
        ],
      },
    });
    expect(multiAnswer.json.outputs).toEqual([
      { name: 'sum_a', datatype: 'FP32', shape: [1, 1], data: [6] },
      { name: 'scaled_b', datatype: 'FP32', shape: [1, 2], data: [8, 10] },
    ]);
  });

  it('OIP inferences are logged like any other: input columns and outputs, same rows', async () => {
    const before = (await multi.logs({ limit: 1000 })) as InferenceRecord[];
    await v2('/v2/models/oip-multi/infer', {
      body: {
        inputs: [
          // FP64 as in the request before, so the log page holds both (one schema per page).
          { name: 'a', shape: [2, 3], datatype: 'FP64', data: [1, 1, 1, 2, 2, 2] },
          { name: 'b', shape: [2, 2], datatype: 'FP32', data: [7, 7, 9, 9] },
        ],
      },
    });
    const after = (await multi.logs({ limit: 1000 })) as InferenceRecord[];
    expect(after.length).toBe(before.length + 2);
    const newest = after.slice(0, 2).reverse();
    expect(newest.map((row) => row['in.a'])).toEqual([
      [1, 1, 1],
      [2, 2, 2],
    ]);
    expect(newest.map((row) => row['out.sum_a'])).toEqual([[3], [6]]);
    expect(newest.map((row) => row['out.scaled_b'])).toEqual([
      [14, 14],
      [18, 18],
    ]);
  });

  it('concurrent small requests, JSON and binary, with refused ones among them, each get their own values back and logged', async () => {
    // Small bodies' values are carved one after another out of a slab shared by every request
    // and fed to the model as they are: no request may see another's values, in the answer or
    // the log, whichever path (inline batch, worker) runs it.
    const before = ((await multi.logs({ limit: 1000 })) as InferenceRecord[]).length;
    const ks = Array.from({ length: 48 }, (_, i) => i + 1);
    const send = (k: number): Promise<Answer> => {
      if (k % 3 === 0) {
        const { bytes, headers } = binaryBody(
          {
            inputs: [
              { name: 'a', shape: [1, 3], datatype: 'FP64', parameters: { binary_data_size: 24 } },
              { name: 'b', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
            ],
          },
          bytesOf(new Float64Array([k, k, k])),
          bytesOf(new Float32Array([k, -k])),
        );
        return v2('/v2/models/oip-multi/infer', { bytes, headers });
      }
      return v2('/v2/models/oip-multi/infer', {
        body: {
          inputs: [
            { name: 'a', shape: [1, 3], datatype: 'FP64', data: [k, k, k] },
            { name: 'b', shape: [1, 2], datatype: 'FP32', data: [k, -k] },
          ],
        },
      });
    };
    // Refused after their first input was read into the slab.
    const refuse = (): Promise<Answer> =>
      v2('/v2/models/oip-multi/infer', {
        body: {
          inputs: [
            { name: 'a', shape: [1, 3], datatype: 'FP64', data: [99, 99, 99] },
            { name: 'b', shape: [1, 2], datatype: 'FP32', data: [99, 'x'] },
          ],
        },
      });
    const answers = await Promise.all(ks.flatMap((k) => (k % 4 === 0 ? [send(k), refuse()] : [send(k)])));
    const ok = answers.filter((answer) => answer.status === 200);
    const refused = answers.filter((answer) => answer.status !== 200).map((answer) => answer.json.code);
    expect(refused).toEqual(Array<string>(ks.length / 4).fill('non_numeric_value'));
    expect(ok.map((answer) => answer.json.outputs)).toEqual(
      ks.map((k) => [
        { name: 'sum_a', datatype: 'FP32', shape: [1, 1], data: [3 * k] },
        { name: 'scaled_b', datatype: 'FP32', shape: [1, 2], data: [2 * k, -2 * k] },
      ]),
    );
    const logged = ((await multi.logs({ limit: 1000 })) as InferenceRecord[]).slice(0, ks.length);
    expect(logged.length).toBe(ks.length);
    expect(((await multi.logs({ limit: 1000 })) as InferenceRecord[]).length).toBe(before + ks.length);
    const seen = logged
      .map((row) => [row['in.a'], row['in.b'], row['out.sum_a'], row['out.scaled_b']])
      .sort((x, y) => (x[0] as number[])[0]! - (y[0] as number[])[0]!);
    expect(seen).toEqual(ks.map((k) => [[k, k, k], [k, -k], [3 * k], [2 * k, -2 * k]]));
  });
});

describe('auth, workspaces and errors', () => {
  it('needs a bearer token; errors carry the message as "error" and the catalogue code', async () => {
    const none = await v2('/v2/models/oip-house', { token: null });
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: 'unauthenticated' });
    expect(typeof none.json.error).toBe('string');
    const wrong = await v2('/v2/models/oip-house/infer', { token: 'nope', body: { inputs: [] } });
    expect(wrong.status).toBe(401);
    expect(wrong.json.code).toBe('invalid_token');
  });

  it("a workspace token sees its workspace's pipelines; admins name other workspaces in the path", async () => {
    const ws = await client.createWorkspace('oip-other');
    const other = server.client();
    other.setCurrentWorkspace(ws);
    const model = await other.uploadModel('oip-other-model', makeMultiIoModel());
    const pipeline = await other.buildPipeline('oip-scoped');
    await pipeline.addModelStep(model);
    await pipeline.deploy();
    const token = await client.createWorkspaceToken(ws, { subject: 'oip' });
    const body = {
      inputs: [
        { name: 'a', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] },
        { name: 'b', shape: [1, 2], datatype: 'FP32', data: [1, 1] },
      ],
    };
    const scoped = await v2('/v2/models/oip-scoped/infer', { token, body });
    expect(scoped.status).toBe(200);
    // The admin's default workspace has no such pipeline; the workspace path reaches it.
    expect((await v2('/v2/models/oip-scoped/infer', { body })).json.code).toBe('pipeline_not_found');
    const admin = await v2('/v2/workspaces/oip-other/models/oip-scoped/infer', { body });
    expect(admin.json.outputs).toEqual(scoped.json.outputs);
    // A scoped token cannot reach another workspace's pipelines, by either path.
    expect((await v2('/v2/models/oip-house', { token })).json.code).toBe('pipeline_not_found');
    expect((await v2('/v2/workspaces/default/models/oip-house', { token })).json.code).toBe(
      'workspace_not_found',
    );
  });

  it('bad requests get clear errors with catalogue codes and log nothing', async () => {
    const before = ((await house.logs({ limit: 1000 })) as InferenceRecord[]).length;
    const cases: [unknown, string][] = [
      [
        { inputs: [{ name: 'tensor', shape: [1, 18], datatype: 'FP32', data: [1, 2] }] },
        'invalid_tensor_shape',
      ],
      [
        { inputs: [{ name: 'tensor', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] },
        'invalid_tensor_shape',
      ],
      [
        { inputs: [{ name: 'tensor', shape: [1, 2 ** 30], datatype: 'FP32', data: [1] }] },
        'invalid_tensor_shape',
      ],
      [
        { inputs: [{ name: 'tensor', shape: [1, 2], datatype: 'FP32', data: ['x', 1] }] },
        'non_numeric_value',
      ],
      [
        { inputs: [{ name: 'tensor', shape: [1, 1], datatype: 'FP16', data: [1] }] },
        'invalid_inference_input',
      ],
      // The model is configured with tensorFields ['tensor']: any other name leaves its input unfed.
      [
        { inputs: [{ name: 'other', shape: [1, 18], datatype: 'FP32', data: new Array(18).fill(1) }] },
        'missing_model_input',
      ],
      [
        {
          inputs: [{ name: 'tensor', shape: [1, 18], datatype: 'FP32', data: new Array(18).fill(1) }],
          outputs: [{ name: 'nope' }],
        },
        'unknown_output',
      ],
      [{ inputs: [] }, 'invalid_inference_input'],
    ];
    for (const [body, code] of cases) {
      const answer = await v2('/v2/models/oip-house/infer', { body });
      expect({ body, code: answer.json.code, status: answer.status }).toMatchObject({ code, status: 400 });
      expect(typeof answer.json.error).toBe('string');
    }
    const lying = await v2('/v2/models/oip-house/infer', {
      bytes: Buffer.from('{"inputs":[]}'),
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '999' },
    });
    expect(lying.status).toBe(400);
    expect(((await house.logs({ limit: 1000 })) as InferenceRecord[]).length).toBe(before);

    expect((await v2('/v2/models/no-such-pipeline')).json.code).toBe('pipeline_not_found');
    await client.buildPipeline('oip-never-deployed');
    expect((await v2('/v2/models/oip-never-deployed/ready')).json.code).toBe('pipeline_not_deployed');
  });
});
