import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { tableFromIPC } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import type { ModelConfigDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { inspectOnnxModel } from '../onnx/index.js';
import {
  makeArrowTensorTable,
  makeHouseRows,
  tableToIpcFile,
} from '../../../../test/support/synthetic-data.js';
import {
  makeInt64SumModel,
  makeMultiIoModel,
  makeScaleModel,
  makeTreeEnsembleRegressor,
} from '../../../../test/support/synthetic-models.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../../../../test/support/shared-fixtures.js';
import { decodeInferenceBody, encodeInferenceResult, InferenceEngine } from './index.js';
import type { Deployment, InferenceResult, StepModel } from './index.js';
import type { EngineInput } from './inference-input.js';
import { echoBuffers } from './echo-buffers.js';

const FIXTURES = SHARED_FIXTURES;
const hasFixtures = hasSharedFixtures;

let dir: string;
const engines: InferenceEngine[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-inference-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
});

function engine(options?: ConstructorParameters<typeof InferenceEngine>[0]): InferenceEngine {
  const created = new InferenceEngine(options);
  engines.push(created);
  return created;
}

let fileCounter = 0;
function step(
  name: string,
  bytesOrPath: Uint8Array | string,
  config: Partial<ModelConfigDto> = {},
): StepModel {
  let path: string;
  if (typeof bytesOrPath === 'string') path = bytesOrPath;
  else {
    path = join(dir, `${name}-${fileCounter++}.onnx`);
    writeFileSync(path, bytesOrPath);
  }
  const bytes = readFileSync(path);
  const info = inspectOnnxModel(bytes);
  return {
    name,
    version: '1',
    // The pool shares sessions by SHA: it must be the model's own, as the registry's is.
    sha: createHash('sha256').update(bytes).digest('hex'),
    path,
    inputs: info.inputs,
    outputs: info.outputs,
    config: { tensorFields: null, batchConfig: null, ...config },
  };
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** Float32 sums may differ in the last ulp with thread count and batch split; ±1.0 is the seed's tolerance. */
function expectClose(got: readonly number[], want: readonly number[]): void {
  expect(got).toHaveLength(want.length);
  const worst = Math.max(0, ...got.map((value, i) => Math.abs(value - want[i]!)));
  expect(worst).toBeLessThanOrEqual(1.0);
}

function column(table: Table, name: string): number[][] {
  return Array.from({ length: table.numRows }, (_, row) =>
    Array.from(table.getChild(name)!.get(row) as Iterable<number>),
  );
}

/** The scale model with a free row width ([N, D]) and a factor of shape `factorDims`. */
function freeWidthScaleModel(factor: number[], factorDims: number[]): Uint8Array {
  const { onnx } = onnxProto;
  const model = onnx.ModelProto.decode(makeScaleModel({ inputName: 'x', outputName: 'y' }));
  const graph = model.graph!;
  for (const info of [...graph.input!, ...graph.output!])
    info.type!.tensorType!.shape!.dim![1] = { dimParam: 'D' };
  graph.initializer![0] = onnx.TensorProto.create({
    name: 'factor',
    dataType: onnx.TensorProto.DataType.FLOAT,
    dims: factorDims,
    floatData: factor,
  });
  return onnx.ModelProto.encode(model).finish();
}

describe('InferenceEngine with the tutorial model', () => {
  it.skipIf(!hasFixtures)(
    'runs xtest-1k.arrow through rf_model.onnx within ±1.0 of the expected outputs',
    async () => {
      const deployment = await engine().deploy('rf', [
        step('rf', join(FIXTURES, 'rf_model.onnx'), { tensorFields: ['tensor'] }),
      ]);
      const body = readFileSync(join(FIXTURES, 'xtest-1k.arrow'));
      const result = await deployment.infer(
        decodeInferenceBody('application/vnd.apache.arrow.file', body),
        1_700_000_000_123,
      );
      const table = result.toArrowTable();
      expect(table.schema.fields.map((field) => `${field.name}:${String(field.type)}`)).toEqual([
        'time:Timestamp<MILLISECOND>',
        'in.tensor:FixedSizeList[18]<Float32>',
        'out.variable:FixedSizeList[1]<Float32>',
        'check_failures:Uint32',
      ]);
      expect(table.numRows).toBe(1000);
      const expected = JSON.parse(
        readFileSync(join(FIXTURES, 'expected-rf_model-xtest-1k.json'), 'utf8'),
      ) as unknown;
      const flat = (
        Array.isArray(expected)
          ? expected
          : (Object.values(expected as object).find(Array.isArray) as unknown[])
      ).flat(2) as number[];
      const got = column(table, 'out.variable').flat();
      expect(got).toHaveLength(1000);
      expect(flat).toHaveLength(1000);
      for (let row = 0; row < 1000; row++) expect(Math.abs(got[row]! - flat[row]!)).toBeLessThanOrEqual(1.0);
      expect(new Set(Array.from(table.getChild('time')!, Number))).toEqual(new Set([1_700_000_000_123]));
      expect(Array.from(table.getChild('check_failures')!)).toEqual(new Array(1000).fill(0));
      expect(column(table, 'in.tensor')[0]).toEqual(
        Array.from(tableFromIPC(body).getChild('tensor')!.get(0) as Iterable<number>),
      );
    },
  );
});

describe('InferenceEngine', () => {
  it('gives the same outputs as a direct onnxruntime run for the synthetic tree model (Arrow and records)', async () => {
    const bytes = makeTreeEnsembleRegressor();
    const rows = makeHouseRows(700, 5);
    const session = await ort.InferenceSession.create(bytes);
    const direct = Array.from(
      (await session.run({ float_input: new ort.Tensor('float32', rows.slice(), [700, 18]) })).variable!
        .data as Float32Array,
    );
    const deployment = await engine().deploy('tree', [step('tree', bytes)]);

    const arrow = await deployment.infer({ kind: 'arrow', table: makeArrowTensorTable(rows, 18) }, 1);
    expectClose(column(arrow.toArrowTable(), 'out.variable').flat(), direct);
    const encoded = encodeInferenceResult(arrow, 'arrow-file');
    expect(encoded.contentType).toBe('application/vnd.apache.arrow.file');
    const decoded = tableFromIPC(encoded.body as Uint8Array);
    expect(decoded.numRows).toBe(700);
    expect(column(decoded, 'in.tensor')[699]).toEqual(Array.from(rows.subarray(699 * 18)));
    expectClose(column(decoded, 'out.variable').flat(), direct);

    const records = Array.from({ length: 700 }, (_, row) => ({
      tensor: Array.from(rows.subarray(row * 18, row * 18 + 18)),
    }));
    const fromRecords = (await deployment.infer({ kind: 'records', records }, 42)).toRecords();
    expectClose(
      fromRecords.map((record) => (record['out.variable'] as number[])[0]!),
      direct,
    );
    expect(fromRecords[3]).toEqual({
      time: 42,
      'in.tensor': records[3]!.tensor,
      'out.variable': [expect.closeTo(direct[3]!, 0)],
      check_failures: 0,
    });
    expect(Object.keys(fromRecords[0]!)).toEqual(['time', 'in.tensor', 'out.variable', 'check_failures']);
  });

  it('accepts a List column and a multi-batch Arrow stream, answering one result batch per input batch', async () => {
    const bytes = makeTreeEnsembleRegressor({ seed: 3 });
    const deployment = await engine().deploy('tree', [step('tree', bytes)]);
    const rows = makeHouseRows(6, 2);
    const records = Array.from({ length: 6 }, (_, row) => ({
      tensor: Array.from(rows.subarray(row * 18, row * 18 + 18)),
    }));
    const expected = (await deployment.infer({ kind: 'records', records }, 0))
      .toRecords()
      .map((record) => record['out.variable']);

    const fixed = makeArrowTensorTable(rows, 18);
    const twoBatches = fixed.slice(0, 2).concat(fixed.slice(2));
    const fromBatches = await deployment.infer({ kind: 'arrow', table: twoBatches }, 0);
    const table = fromBatches.toArrowTable();
    expect(table.batches).toHaveLength(2);
    expect(column(table, 'out.variable')).toEqual(expected);

    const json = Buffer.from(JSON.stringify(records));
    const asList = decodeInferenceBody('application/json', json);
    const { body } = encodeInferenceResult(await deployment.infer(asList, 0), 'arrow-stream');
    expect(column(tableFromIPC(body as Uint8Array), 'out.variable')).toEqual(expected);
  });

  it('feeds multi-input models by column name and returns every output', async () => {
    const deployment = await engine().deploy('multi', [step('multi', makeMultiIoModel())]);
    const result = await deployment.infer(
      {
        kind: 'records',
        records: [
          { b: [1, 2], a: [1, 2, 3] },
          { b: [0.5, -1], a: [10, 20, 30] },
        ],
      },
      7,
    );
    expect(result.toRecords()).toEqual([
      {
        time: 7,
        'in.b': [1, 2],
        'in.a': [1, 2, 3],
        'out.sum_a': [6],
        'out.scaled_b': [2, 4],
        check_failures: 0,
      },
      {
        time: 7,
        'in.b': [0.5, -1],
        'in.a': [10, 20, 30],
        'out.sum_a': [60],
        'out.scaled_b': [1, -2],
        check_failures: 0,
      },
    ]);
    expect(result.toArrowTable().schema.fields.map((field) => field.name)).toEqual([
      'time',
      'in.b',
      'in.a',
      'out.sum_a',
      'out.scaled_b',
      'check_failures',
    ]);
  });

  it('maps columns by tensorFields in model-input order', async () => {
    const deployment = await engine().deploy('multi', [
      step('multi', makeMultiIoModel(), { tensorFields: ['first', 'second'] }),
    ]);
    const result = await deployment.infer(
      { kind: 'records', records: [{ first: [1, 1, 1], second: [3, 4] }] },
      0,
    );
    expect(result.toRecords()[0]).toMatchObject({ 'out.sum_a': [3], 'out.scaled_b': [6, 8] });
  });

  it('feeds each step of a two-step pipeline with the previous step outputs, by name', async () => {
    const deployment = await engine().deploy('chain', [
      step('double', makeScaleModel({ width: 18, factor: 2, outputName: 'float_input' })),
      step('tree', makeTreeEnsembleRegressor()),
    ]);
    const rows = makeHouseRows(3, 8);
    const doubled = rows.map((value) => value * 2);
    const session = await ort.InferenceSession.create(makeTreeEnsembleRegressor());
    const direct = Array.from(
      (await session.run({ float_input: new ort.Tensor('float32', doubled, [3, 18]) })).variable!
        .data as Float32Array,
    );
    const result = await deployment.infer({ kind: 'arrow', table: makeArrowTensorTable(rows, 18) }, 0);
    const table = result.toArrowTable();
    expect(table.schema.fields.map((field) => field.name)).toEqual([
      'time',
      'in.tensor',
      'out.variable',
      'check_failures',
    ]);
    expectClose(column(table, 'out.variable').flat(), direct);
  });

  it('chains a single output into a single input with another name', async () => {
    const deployment = await engine().deploy('chain', [
      step('double', makeScaleModel({ width: 2, factor: 2 })),
      step('triple', makeScaleModel({ width: 2, factor: 3, inputName: 'other', outputName: 'final' })),
    ]);
    const result = await deployment.infer({ kind: 'records', records: [{ tensor: [1, 2] }] }, 0);
    expect(result.toRecords()[0]).toMatchObject({ 'out.final': [6, 12] });
  });

  it('casts JSON numbers to an int64 input and returns int64 outputs as numbers', async () => {
    const deployment = await engine().deploy('int', [step('int', makeInt64SumModel())]);
    const result = await deployment.infer(
      { kind: 'records', records: [{ x: [1, 2, 3] }, { x: [1.9, 2.9, -5] }] },
      0,
    );
    expect(result.toRecords().map((record) => record['out.sum'])).toEqual([[6], [-2]]);
    expect(String(result.toArrowTable().schema.fields[2]!.type)).toBe('FixedSizeList[1]<Int64>');
    const arrow = await deployment.infer(
      { kind: 'arrow', table: makeArrowTensorTable(Float32Array.from([4, 5, 6]), 3, 'x') },
      0,
    );
    expect(arrow.toRecords()[0]).toMatchObject({ 'in.x': [4, 5, 6], 'out.sum': [15] });
  });

  it('splits a large batch across idle workers and keeps row order', async () => {
    const bytes = makeTreeEnsembleRegressor({ seed: 11 });
    const rows = makeHouseRows(1001, 4);
    const created = engine({ workersPerDeployment: 2, splitRows: 10 });
    const split = await created.deploy('split', [step('tree', bytes)]);
    const whole = await created.deploy('whole', [step('tree', bytes)], { workers: 1 });
    // One shared pool of 2: both deployments run on it, the model loaded once per worker.
    expect(created.workerCount).toBe(2);
    expect(created.pool.loadCount).toBe(2);
    const table = makeArrowTensorTable(rows, 18);
    const a = column((await split.infer({ kind: 'arrow', table }, 0)).toArrowTable(), 'out.variable');
    const b = column((await whole.infer({ kind: 'arrow', table }, 0)).toArrowTable(), 'out.variable');
    expect(a).toHaveLength(1001);
    expectClose(a.flat(), b.flat());
  });

  describe('dynamic batching', () => {
    /** A records request: `rows` rows of `width` values, all distinct per request. */
    function request(
      n: number,
      width: number,
      rows: number,
    ): { kind: 'records'; records: { x: number[] }[] } {
      return {
        kind: 'records',
        records: Array.from({ length: rows }, (_, row) => ({
          x: Array.from({ length: width }, (_, i) => n * 100 + row * 10 + i),
        })),
      };
    }

    it('merges concurrent requests of mixed shapes and answers each caller with its own rows and time', async () => {
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('free', [
        step('free', freeWidthScaleModel([2], [])),
      ]);
      const widths = [2, 3, 5];
      const requests = Array.from({ length: 60 }, (_, n) => request(n, widths[n % 3]!, n % 7 === 0 ? 3 : 1));
      const results = await Promise.all(requests.map((input, n) => deployment.infer(input, 1000 + n)));
      // 60 requests could not all have run alone: the queued ones shared runs.
      expect(deployment.runCount).toBeLessThan(30);
      for (const [n, result] of results.entries()) {
        const sent = requests[n]!.records.map((record) => record.x);
        expect(result.rowCount).toBe(sent.length);
        expect(result.time).toBe(1000 + n);
        const records = result.toRecords();
        expect(records.map((record) => record['in.x'])).toEqual(sent);
        expect(records.map((record) => record['out.y'])).toEqual(sent.map((row) => row.map((v) => v * 2)));
        const table = result.toArrowTable();
        expect(column(table, 'out.y')).toEqual(sent.map((row) => row.map((v) => v * 2)));
        expect(new Set(Array.from(table.getChild('time')!, Number))).toEqual(new Set([1000 + n]));
      }
    });

    it('gives a tree ensemble the same outputs merged as run one request at a time', async () => {
      const bytes = makeTreeEnsembleRegressor({ seed: 5 });
      const merged = await engine({ workersPerDeployment: 1 }).deploy('merged', [step('tree', bytes)]);
      const alone = await engine({ workersPerDeployment: 1, maxBatchRows: 1 }).deploy('alone', [
        step('tree', bytes),
      ]);
      const rows = makeHouseRows(40, 9);
      const inputs = Array.from({ length: 40 }, (_, row) => ({
        kind: 'records' as const,
        records: [{ tensor: Array.from(rows.subarray(row * 18, row * 18 + 18)) }],
      }));
      const a = await Promise.all(inputs.map((input) => merged.infer(input, 0)));
      const b = await Promise.all(inputs.map((input) => alone.infer(input, 0)));
      expect(merged.runCount).toBeLessThan(40);
      expect(alone.runCount).toBe(40);
      expect(a.map((result) => result.toRecords()[0]!['out.variable'])).toEqual(
        b.map((result) => result.toRecords()[0]!['out.variable']),
      );
    });

    it('reports a failed merged run to each of its callers and answers the other shapes', async () => {
      // factor has 3 values: rows of width 3 multiply, rows of width 4 make onnxruntime fail.
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('picky', [
        step('picky', freeWidthScaleModel([1, 2, 3], [3])),
      ]);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 30 }, (_, n) => deployment.infer(request(n, n % 2 === 0 ? 3 : 4, 1), 0)),
      );
      expect(deployment.runCount).toBeLessThan(30);
      for (const [n, outcome] of outcomes.entries()) {
        if (n % 2 === 0) {
          expect(outcome.status).toBe('fulfilled');
          const record = (outcome as PromiseFulfilledResult<InferenceResult>).value.toRecords()[0]!;
          expect(record['out.y']).toEqual([n * 100, (n * 100 + 1) * 2, (n * 100 + 2) * 3]);
        } else {
          expect(outcome.status).toBe('rejected');
          const error = (outcome as PromiseRejectedResult).reason as ApiError;
          expect(error).toBeInstanceOf(ApiError);
          expect(error.code).toBe('inference_failed');
        }
      }
      // The deployment still serves afterwards.
      expect((await deployment.infer(request(1, 3, 2), 0)).rowCount).toBe(2);
    });

    it('close() answers every queued request before stopping the workers', async () => {
      const created = new InferenceEngine({ workersPerDeployment: 1 });
      const deployment = await created.deploy('drain', [step('free', freeWidthScaleModel([2], []))]);
      const pending = Array.from({ length: 40 }, (_, n) => deployment.infer(request(n, 2 + (n % 2), 2), n));
      const closed = created.close();
      const results = await Promise.all(pending);
      await closed;
      expect(results.map((result) => result.toRecords()[1]!['out.y'])).toEqual(
        Array.from({ length: 40 }, (_, n) =>
          Array.from({ length: 2 + (n % 2) }, (_, i) => (n * 100 + 10 + i) * 2),
        ),
      );
      expect(created.workerCount).toBe(0);
    });
  });

  describe('the shared worker pool', () => {
    it('many pipelines sharing one model load it once per worker, on one pool of threads', async () => {
      const created = engine({ workersPerDeployment: 2 });
      const bytes = makeTreeEnsembleRegressor({ seed: 5 });
      const rows = makeHouseRows(3, 9);
      const deployments = [];
      for (let i = 0; i < 20; i++) deployments.push(await created.deploy(`p${i}`, [step(`tree${i}`, bytes)]));
      expect(created.workerCount).toBe(2);
      expect(created.pool.loadCount).toBe(2);
      const answers = await Promise.all(
        deployments.map(async (deployment) =>
          column(
            (
              await deployment.infer({ kind: 'arrow', table: makeArrowTensorTable(rows, 18) }, 0)
            ).toArrowTable(),
            'out.variable',
          ),
        ),
      );
      for (const answer of answers) expect(answer).toEqual(answers[0]);
      expect(created.pool.loadCount).toBe(2);
      expect(deployments[0]!.loadedOn(deployments[0]!.steps[0]!.sha)).toEqual([0, 1]);
      await Promise.all(deployments.map((deployment) => deployment.close()));
      // The last deployment out stops the threads.
      expect(created.workerCount).toBe(0);
    });

    it('unloads the least recently used model over the budget and reloads it on demand with the same answers', async () => {
      // A budget smaller than one model: each worker keeps only the model of the run at hand.
      const created = engine({ workersPerDeployment: 1, modelMemoryBytes: 1 });
      const a = await created.deploy('a', [step('a', makeTreeEnsembleRegressor({ seed: 1 }))]);
      const b = await created.deploy('b', [step('b', makeTreeEnsembleRegressor({ seed: 2 }))]);
      const shaA = a.steps[0]!.sha;
      const table = (): Table => makeArrowTensorTable(makeHouseRows(4, 3), 18);
      const first = column(
        (await a.infer({ kind: 'arrow', table: table() }, 0)).toArrowTable(),
        'out.variable',
      );
      expect(a.loadedOn(shaA)).toEqual([0]);
      const loads = created.pool.loadCount;
      await b.infer({ kind: 'arrow', table: table() }, 0);
      expect(a.loadedOn(shaA)).toEqual([]);
      const again = column(
        (await a.infer({ kind: 'arrow', table: table() }, 0)).toArrowTable(),
        'out.variable',
      );
      expect(created.pool.loadCount).toBe(loads + 2);
      expect(again).toEqual(first);
    });

    it('a hot pipeline keeps serving while another pipeline loads', async () => {
      const created = engine({ workersPerDeployment: 1 });
      const hot = await created.deploy('hot', [step('hot', makeTreeEnsembleRegressor({ seed: 3 }))]);
      const loading = created.deploy('cold', [
        step('cold', makeTreeEnsembleRegressor({ features: 29, trees: 100, depth: 6 })),
      ]);
      const served = await Promise.all(
        Array.from({ length: 5 }, () =>
          hot.infer({ kind: 'arrow', table: makeArrowTensorTable(makeHouseRows(2, 1), 18) }, 0),
        ),
      );
      expect(served.map((result) => result.rowCount)).toEqual([2, 2, 2, 2, 2]);
      await loading;
    });
  });

  describe('refuses bad requests with catalogue codes', () => {
    let deployment: Deployment;
    let multi: Deployment;
    const shared = new InferenceEngine({ workersPerDeployment: 1 });
    beforeAll(async () => {
      deployment = await shared.deploy('tree', [
        step('tree', makeTreeEnsembleRegressor(), { tensorFields: ['tensor'] }),
      ]);
      multi = await shared.deploy('multi', [step('multi', makeMultiIoModel())]);
    });
    afterAll(() => shared.close());
    const row = Array.from({ length: 18 }, (_, i) => i);

    it.each([
      [
        'a row of the wrong width',
        [{ tensor: row }, { tensor: row.slice(0, 17) }],
        'invalid_tensor_shape',
        { column: 'tensor', row: 1, expected: [18], got: [17] },
      ],
      [
        'a string value',
        [{ tensor: row }, { tensor: [...row.slice(0, 17), 'x'] }],
        'non_numeric_value',
        { column: 'tensor', row: 1 },
      ],
      [
        'a null value',
        [{ tensor: [null, ...row.slice(1)] }],
        'non_numeric_value',
        { column: 'tensor', row: 0 },
      ],
      [
        'an object value',
        [{ tensor: row }, { tensor: row }, { tensor: { a: 1 } }],
        'non_numeric_value',
        { column: 'tensor', row: 2 },
      ],
      ['a column no input takes', [{ tensor: row, extra: [1] }], 'unknown_input_column', { column: 'extra' }],
      [
        'no column for the configured field',
        [{ other: row }],
        'missing_model_input',
        { input: 'float_input' },
      ],
      ['a record that is not an object', [{ tensor: row }, 5], 'invalid_inference_input', { row: 1 }],
    ])('%s', async (_what, records, code, details) => {
      const error = await rejection(deployment.infer({ kind: 'records', records: records }, 0));
      expect(error.code).toBe(code);
      expect(error.details).toMatchObject(details);
    });

    it('a multi-input model without one of its inputs → missing_model_input', async () => {
      const error = await rejection(multi.infer({ kind: 'records', records: [{ a: [1, 2, 3] }] }, 0));
      expect(error.code).toBe('missing_model_input');
      expect(error.message).toContain('"b"');
    });

    it('a multi-input model with an unmatched column → unknown_input_column', async () => {
      const error = await rejection(
        multi.infer({ kind: 'records', records: [{ a: [1, 2, 3], c: [1, 2] }] }, 0),
      );
      expect(error.code).toBe('unknown_input_column');
      expect(error.details).toMatchObject({ column: 'c' });
    });

    it('an Arrow column of the wrong width → invalid_tensor_shape', async () => {
      const error = await rejection(
        deployment.infer({ kind: 'arrow', table: makeArrowTensorTable(new Float32Array(17 * 2), 17) }, 0),
      );
      expect(error.code).toBe('invalid_tensor_shape');
      expect(error.message).toMatch(/tensor.*17.*18/);
    });

    it('an Arrow string column → non_numeric_value', async () => {
      const table = tableFromIPC(
        tableToIpcFile(
          new (await import('apache-arrow')).Table({
            tensor: (await import('apache-arrow')).vectorFromArray(['a', 'b']),
          }),
        ),
      );
      const error = await rejection(deployment.infer({ kind: 'arrow', table }, 0));
      expect(error.code).toBe('non_numeric_value');
    });

    it('the deployment keeps serving after refusing bad input', async () => {
      const result = await deployment.infer({ kind: 'records', records: [{ tensor: row }] }, 0);
      expect(result.rowCount).toBe(1);
    });
  });

  describe('JSON records decoded in the model worker', () => {
    const json = (value: unknown): { kind: 'undecoded-records'; body: Uint8Array; deadlineMs: number } => ({
      kind: 'undecoded-records',
      body: new TextEncoder().encode(JSON.stringify(value)),
      deadlineMs: 5000,
    });

    it('answers as the same records decoded on the calling thread: outputs, exact inputs, time', async () => {
      const bytes = makeTreeEnsembleRegressor({ seed: 3 });
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('tree', [step('tree', bytes)]);
      const rows = makeHouseRows(700, 6);
      // Values float32 cannot hold exactly: the answer must echo what was sent, not its float32.
      const records = Array.from({ length: 700 }, (_, row) => ({
        tensor: Array.from(rows.subarray(row * 18, row * 18 + 18), (v, i) => (i === 0 ? v + 0.1 : v)),
      }));
      const inWorker = await deployment.infer(json(records), 7);
      const inline = await deployment.infer({ kind: 'records', records }, 7);
      expect(inWorker.rowCount).toBe(700);
      expect(inWorker.toRecords()).toEqual(inline.toRecords());
      expect(inWorker.toRecords()[5]!['in.tensor']).toEqual(records[5]!.tensor);
      expect(column(inWorker.toArrowTable(), 'out.variable')).toEqual(
        column(inline.toArrowTable(), 'out.variable'),
      );
    });

    it('lends the echoed columns: a result still held keeps its values while released ones go back to a worker', async () => {
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('scale', [
        step('scale', makeScaleModel({ inputName: 'x', outputName: 'y', width: 4 })),
      ]);
      // 600 rows of 4 doubles (19 KB a column, pooled), values float32 cannot hold exactly.
      const rowsOf = (n: number): number[][] =>
        Array.from({ length: 600 }, (_, row) => [n + 0.1, row, -n - row / 3, n * 1e-7]);
      const inputsOf = (result: InferenceResult): unknown[] => result.toRecords().map((r) => r['in.x']);
      const bufferOf = (result: InferenceResult): ArrayBuffer => {
        const list = result.toArrowTable().getChild('in.x')!.data[0]!;
        return (list.children[0]!.values as Float64Array).buffer as ArrayBuffer;
      };
      const held = await deployment.infer(json(rowsOf(1).map((x) => ({ x }))), 0);
      const heldBuffer = bufferOf(held);
      const waiting = echoBuffers.size;
      for (let n = 2; n < 12; n++) {
        const result = await deployment.infer(json(rowsOf(n).map((x) => ({ x }))), 0);
        expect(inputsOf(result)).toEqual(rowsOf(n));
        const buffer = bufferOf(result);
        result.release();
        // Released: waiting here for the next message to a worker, which takes it (detached here).
        expect(echoBuffers.size).toBe(waiting + 1);
        expect(buffer.byteLength).toBeGreaterThan(0);
        if (n === 11) break;
        const next = deployment.infer(json(rowsOf(100 + n).map((x) => ({ x }))), 0);
        expect(buffer.byteLength).toBe(0);
        expect(echoBuffers.size).toBe(waiting);
        expect(inputsOf(await next)).toEqual(rowsOf(100 + n));
      }
      // Never sent back while held: its buffer and values are its own.
      expect(heldBuffer.byteLength).toBeGreaterThan(0);
      expect(inputsOf(held)).toEqual(rowsOf(1));
      held.release();
      held.release(); // a second release is a no-op
      expect(echoBuffers.size).toBe(waiting + 2);
    });

    it('merges queued bodies of one shape into shared runs and answers each with its own rows', async () => {
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('scale', [
        step('scale', makeScaleModel({ inputName: 'x', outputName: 'y', width: 4 })),
      ]);
      const sent = Array.from({ length: 24 }, (_, n) =>
        Array.from({ length: 1 + (n % 3) }, (_, row) => [n * 10 + row, 0.5, 0.25, row]),
      );
      const results = await Promise.all(
        sent.map((rows, n) => deployment.infer(json(rows.map((x) => ({ x }))), 100 + n)),
      );
      expect(deployment.runCount).toBeLessThan(24);
      for (const [n, result] of results.entries()) {
        expect(result.time).toBe(100 + n);
        const records = result.toRecords();
        expect(records.map((record) => record['in.x'])).toEqual(sent[n]);
        expect(records.map((record) => record['out.y'])).toEqual(
          sent[n]!.map((row) => row.map((v) => v * 2)),
        );
      }
    });

    it('refuses non-finite, boolean, out-of-range and malformed bodies naming the column and row; the others in the same run are answered', async () => {
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('scale', [
        step('scale', makeScaleModel({ inputName: 'x', outputName: 'y', width: 4 })),
      ]);
      const good = (n: number): string => `{"x":[${n},1,2,3]}`;
      const bodies = [
        `[${good(1)},{"x":[1,2,1e999,4]}]`,
        `[${good(2)},${good(2)},{"x":[1,true,3,4]}]`,
        `[${good(3)},{"x":[1,2,3,3.5e38]}]`,
        `[${good(4)},{"x":[1,2,3]`,
        `[${good(5)}]`,
      ];
      const outcomes = await Promise.allSettled(
        bodies.map((text) =>
          deployment.infer(
            { kind: 'undecoded-records', body: new TextEncoder().encode(text), deadlineMs: 5000 },
            0,
          ),
        ),
      );
      const reasons = outcomes.map((outcome) =>
        outcome.status === 'rejected' ? (outcome.reason as ApiError) : null,
      );
      for (const reason of reasons.slice(0, 4)) expect(reason).toBeInstanceOf(ApiError);
      expect(reasons.slice(0, 4).map((reason) => reason!.code)).toEqual(
        new Array(4).fill('invalid_inference_input'),
      );
      expect(reasons[0]!.details).toMatchObject({ column: 'x', row: 1 });
      expect(reasons[1]!.details).toMatchObject({ column: 'x', row: 2 });
      expect(reasons[1]!.message).toMatch(/boolean/);
      expect(reasons[2]!.details).toMatchObject({ column: 'x', row: 1 });
      expect(reasons[3]!.message).toMatch(/not valid JSON/);
      expect(outcomes[4]!.status).toBe('fulfilled');
      const fine = (outcomes[4] as PromiseFulfilledResult<InferenceResult>).value.toRecords();
      expect(fine).toEqual([{ time: 0, 'in.x': [5, 1, 2, 3], 'out.y': [10, 2, 4, 6], check_failures: 0 }]);
    });

    it('answers each body as the same records decoded on the calling thread: the feeds cast from the echoed columns', async () => {
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('scale', [
        step('scale', makeScaleModel({ inputName: 'x', outputName: 'y', width: 4 })),
      ]);
      const bodies = [
        '[{"x":[1,2,3]}]', // row 0 narrower than the input
        '[{"x":[1,2,3,4]},{"x":[1,2,3,4]},{"x":[1,2,3]}]', // a later row of another length (a List column)
        '[{"x":[1,2,3,4]},{"x":[1,-3.5e38,3,4]}]', // beyond float32
        '[{"x":5}]', // a number where the input takes 4 per row
        '[{"x":[[1,2],[3,4.5]]},{"x":[[5,6],[7,-0.25]]}]', // 2 × 2 rows into a width-4 input
        '[{"x":[0.1,2,3,4]},{"x":[1e-7,2,3,3.4028234663852886e38]}]',
      ];
      const answer = async (input: Parameters<typeof deployment.infer>[0]): Promise<unknown> => {
        try {
          return (await deployment.infer(input, 3)).toRecords();
        } catch (error) {
          const refused = error as ApiError;
          return { code: refused.code, message: refused.message, details: refused.details };
        }
      };
      const answers: unknown[] = [];
      for (const text of bodies) {
        const inWorker = await answer({
          kind: 'undecoded-records',
          body: new TextEncoder().encode(text),
          deadlineMs: 5000,
        });
        const inline = await answer({ kind: 'records', records: JSON.parse(text) as unknown[] });
        expect(inWorker, text).toEqual(inline);
        answers.push(inWorker);
      }
      expect(answers.slice(0, 4).map((answer) => (answer as { code: string }).code)).toEqual([
        'invalid_tensor_shape',
        'invalid_tensor_shape',
        'invalid_inference_input',
        'invalid_tensor_shape',
      ]);
      expect((answers[1] as { details: unknown }).details).toMatchObject({ row: 2 });
      expect((answers[4] as Record<string, unknown>[])[1]!['out.y']).toEqual([10, 12, 14, -0.5]);
      expect((answers[5] as Record<string, unknown>[])[1]!['in.x']).toEqual([
        1e-7, 2, 3, 3.4028234663852886e38,
      ]);
    });

    it('answers only the body that overran its deadline with input_decode_timeout; the others sent with it are served', async () => {
      const created = engine({ workersPerDeployment: 1 });
      const deployment = await created.deploy('scale', [
        step('scale', makeScaleModel({ inputName: 'x', outputName: 'y', width: 4 })),
      ]);
      const loadsBefore = created.pool.loadCount;
      const slow = new TextEncoder().encode(
        `[${Array.from({ length: 200_000 }, (_, n) => `{"x":[${n}.125,1.5,2.75,3.0625]}`).join(',')}]`,
      );
      const small = (n: number): EngineInput => json([{ x: [n, 1, 2, 3] }]);
      // Two bodies fill the worker (two in flight), so the next four queue and go as one
      // message: one decoded before the slow body, two after it.
      const outcomes = await Promise.allSettled([
        deployment.infer(small(1), 0),
        deployment.infer(small(2), 0),
        deployment.infer(small(3), 0),
        deployment.infer({ kind: 'undecoded-records', body: slow, deadlineMs: 1 }, 0),
        deployment.infer(small(4), 0),
        deployment.infer(small(5), 0),
      ]);
      const slowOutcome = outcomes[3];
      expect(slowOutcome.status).toBe('rejected');
      expect(((slowOutcome as PromiseRejectedResult).reason as ApiError).code).toBe('input_decode_timeout');
      for (const [i, n] of [
        [0, 1],
        [1, 2],
        [2, 3],
        [4, 4],
        [5, 5],
      ] as const) {
        expect(outcomes[i].status).toBe('fulfilled');
        const result = (outcomes[i] as PromiseFulfilledResult<InferenceResult>).value;
        expect(result.toRecords()[0]!['out.y']).toEqual([n * 2, 2, 4, 6]);
      }
      // The worker was replaced (the fresh one loaded the model) and served the others.
      expect(created.pool.loadCount).toBe(loadsBefore + 1);
    });

    it('a body the runtime fails on fails alone: refused and other bodies of its message get their own answers', async () => {
      // factor has 3 values: rows of width 3 multiply, rows of width 4 make onnxruntime fail.
      const deployment = await engine({ workersPerDeployment: 1 }).deploy('picky', [
        step('picky', freeWidthScaleModel([1, 2, 3], [3])),
      ]);
      const body = (text: string): EngineInput => ({
        kind: 'undecoded-records',
        body: new TextEncoder().encode(text),
        deadlineMs: 5000,
      });
      const texts = [
        '[{"x":[0,0,0]}]',
        '[{"x":[0,0,0]}]',
        // One message from here: two of width 3 (merged), two of width 4 (merged, failing),
        // a malformed one, one of width 3 again.
        '[{"x":[1,1,1]}]',
        '[{"x":[2,2,2]}]',
        '[{"x":[3,3,3,3]}]',
        '[{"x":[4,4,4,4]}]',
        '[{"x":[5,5,',
        '[{"x":[6,6,6]}]',
      ];
      const outcomes = await Promise.allSettled(texts.map((text) => deployment.infer(body(text), 0)));
      const codes = outcomes.map((outcome) =>
        outcome.status === 'fulfilled' ? 'ok' : ((outcome.reason as ApiError).code ?? 'not an ApiError'),
      );
      expect(codes).toEqual([
        'ok',
        'ok',
        'ok',
        'ok',
        'inference_failed',
        'inference_failed',
        'invalid_inference_input',
        'ok',
      ]);
      for (const [i, n] of [
        [2, 1],
        [3, 2],
        [7, 6],
      ] as const) {
        const result = (outcomes[i] as PromiseFulfilledResult<InferenceResult>).value;
        expect(result.toRecords()[0]!['out.y']).toEqual([n, n * 2, n * 3]);
      }
    });

    it('abandons a decode past its deadline, answers input_decode_timeout, replaces the worker and serves the next body', async () => {
      const created = engine({ workersPerDeployment: 1 });
      const deployment = await created.deploy('scale', [
        step('scale', makeScaleModel({ inputName: 'x', outputName: 'y', width: 4 })),
      ]);
      const loadsBefore = created.pool.loadCount;
      // ~9 MB of records: tens of milliseconds to parse, far past a 1 ms deadline.
      const big = new TextEncoder().encode(
        `[${Array.from({ length: 200_000 }, (_, n) => `{"x":[${n}.125,1.5,2.75,3.0625]}`).join(',')}]`,
      );
      const error = await rejection(
        deployment.infer({ kind: 'undecoded-records', body: big, deadlineMs: 1 }, 0),
      );
      expect(error.code).toBe('input_decode_timeout');
      expect(error.details).toEqual({ deadlineMs: 1 });
      const next = await deployment.infer(json([{ x: [1, 2, 3, 4] }]), 0);
      expect(next.toRecords()[0]!['out.y']).toEqual([2, 4, 6, 8]);
      // The fresh worker loaded the model again.
      expect(created.pool.loadCount).toBe(loadsBefore + 1);
    });
  });

  it('rejects deploy with onnxruntime reason when a model fails to load, leaving no worker', async () => {
    const { onnx } = onnxProto;
    const model = onnx.ModelProto.decode(makeScaleModel());
    model.graph!.node![0]!.opType = 'NoSuchOperator';
    const broken = step('broken', onnx.ModelProto.encode(model).finish());
    const created = engine();
    const error = await rejection(created.deploy('broken', [step('ok', makeScaleModel()), broken]));
    expect(error.code).toBe('invalid_model');
    expect(error.message).toContain('model "broken"');
    expect(error.message).toContain('NoSuchOperator');
    expect(error.details).toEqual({ model: 'broken', version: '1' });
    expect(created.workerCount).toBe(0);
  });

  it('rejects deploy when a step input cannot be fed from the previous step', async () => {
    const error = await rejection(
      engine().deploy('bad-chain', [step('multi', makeMultiIoModel()), step('int', makeInt64SumModel())]),
    );
    expect(error.code).toBe('invalid_step');
  });

  it('validateModel accepts a runnable model and refuses a parseable one onnxruntime cannot load', async () => {
    const created = engine();
    await created.validateModel(makeTreeEnsembleRegressor());
    await created.validateModel(step('scale', makeScaleModel()).path);
    const { onnx } = onnxProto;
    const model = onnx.ModelProto.decode(makeScaleModel());
    model.graph!.node![0]!.opType = 'NoSuchOperator';
    const error = await rejection(created.validateModel(onnx.ModelProto.encode(model).finish()));
    expect(error.code).toBe('invalid_model');
    expect(error.message).toContain('NoSuchOperator');
    expect(created.workerCount).toBe(0);
  });

  it('close() lets in-flight requests finish, then stops every worker and refuses new requests', async () => {
    const created = new InferenceEngine({ workersPerDeployment: 2 });
    const deployment = await created.deploy('heavy', [
      step('heavy', makeTreeEnsembleRegressor({ features: 29, trees: 100, depth: 6 })),
    ]);
    expect(created.workerCount).toBe(2);
    const table = makeArrowTensorTable(makeHouseRows(5000, 1, 29), 29);
    const inFlight = deployment.infer({ kind: 'arrow', table }, 0);
    await created.close();
    expect((await inFlight).rowCount).toBe(5000);
    expect(created.workerCount).toBe(0);
    expect(process.getActiveResourcesInfo().filter((name) => /worker|messageport/i.test(name))).toEqual([]);
    expect((await rejection(deployment.infer({ kind: 'arrow', table }, 0))).code).toBe(
      'pipeline_not_deployed',
    );
    expect((await rejection(created.deploy('again', [step('s', makeScaleModel())]))).code).toBe(
      'shutting_down',
    );
  });

  it('keeps the event loop responsive while a heavy batch runs', async () => {
    const deployment = await engine({ workersPerDeployment: 1 }).deploy('heavy', [
      step('heavy', makeTreeEnsembleRegressor({ features: 29, trees: 100, depth: 6 })),
    ]);
    const table = makeArrowTensorTable(makeHouseRows(50_000, 2, 29), 29);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await deployment.infer({ kind: 'arrow', table }, 0);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });
});
