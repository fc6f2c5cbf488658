import { describe, expect, it } from 'vitest';
import type { Table } from 'apache-arrow';
import type { ServedModel } from './inference-codec.js';
import {
  MAX_OPEN_INFERENCE_RANK,
  openInferenceCodec,
  readOpenInferenceBody,
} from './open-inference-codec.js';
import { ApiError } from '../errors/index.js';
import { InferenceResult } from './inference-result.js';
import type { InferenceInput } from './inference-input.js';
import { isLogRowSource } from '../logs/index.js';
import type { LogRowSource } from '../logs/index.js';
import type { TensorElementType } from '@quoll/client/wire';
import type { TensorData } from './tensor-data.js';

const served: ServedModel = {
  name: 'pipe',
  version: '1',
  inputs: [{ name: 'tensor', type: 'float32', shape: [null, 2, 3] }],
  outputs: [{ name: 'y', type: 'float32', shape: [null, 1] }],
};
const codec = openInferenceCodec({
  decodeOpenInference: (body, headerLength) => Promise.resolve(readOpenInferenceBody(body, headerLength)),
});

type TensorsInput = Extract<InferenceInput, { kind: 'tensors' }>;

async function decode(request: unknown): Promise<TensorsInput> {
  const body = Buffer.from(JSON.stringify(request));
  const { input } = await codec.decode(
    { contentType: 'application/json', body, header: () => undefined },
    served,
  );
  if (input.kind !== 'tensors') throw new Error(`expected tensors, got ${input.kind}`);
  return input;
}

const tensor = (rows: number, offset: number): unknown => ({
  name: 'tensor',
  shape: [rows, 2, 3],
  datatype: 'FP32',
  data: Array.from({ length: rows * 6 }, (_, i) => i + offset),
});

/** The result of `input` with one output `y` per row (`offset` its value). */
function resultOf(input: TensorsInput, offset: number): InferenceResult {
  const rows = input.rows;
  const outputs = [
    { name: 'y', type: 'float32' as const, dims: [rows, 1], data: new Float32Array(rows).fill(offset) },
  ];
  return new InferenceResult(input, ['tensor'], outputs, rows, 7);
}

describe('openInferenceCodec.decode', () => {
  it('answers at once, without a promise, when its decoder reads the body inline', () => {
    const inline = openInferenceCodec({
      decodeOpenInference: () => Promise.reject(new Error('not inline')),
      decodeOpenInferenceInline: (body, headerLength) => readOpenInferenceBody(body, headerLength),
    });
    const body = Buffer.from(JSON.stringify({ id: 'r', inputs: [tensor(1, 0)] }));
    const decoded = inline.decode({ contentType: 'application/json', body, header: () => undefined }, served);
    expect(decoded).not.toBeInstanceOf(Promise);
    const { input, request } = decoded as Exclude<typeof decoded, Promise<unknown>>;
    expect(input.kind === 'tensors' && input.tensors[0]!.shape).toEqual([1, 2, 3]);
    expect(request).toEqual({ id: 'r', outputs: null, binaryOutput: false });
    // A body it refuses throws at once, as the promise would reject.
    const bad = Buffer.from('{"inputs": []}');
    expect(() => inline.decode({ contentType: '', body: bad, header: () => undefined }, served)).toThrow(
      /no "inputs"/,
    );
  });

  it('hands the engine the tensors as read (typed arrays and shapes), with no Arrow table built', async () => {
    const input = await decode({
      inputs: [tensor(3, 100), { name: 'id', shape: [3], datatype: 'INT64', data: [7, 8, 9] }],
    });
    expect(input.rows).toBe(3);
    expect(input.tensors.map((t) => [t.name, t.shape])).toEqual([
      ['tensor', [3, 2, 3]],
      ['id', [3]],
    ]);
    expect(input.tensors[0]!.values).toEqual(Float32Array.from({ length: 18 }, (_, i) => i + 100));
    expect(input.tensors[1]!.values).toEqual(BigInt64Array.from([7n, 8n, 9n]));
  });

  it('gives the result table of requests of one layout one schema, with each request its own columns', async () => {
    const a = resultOf(await decode({ inputs: [tensor(1, 0)] }), 0).toArrowTable();
    const b = resultOf(await decode({ inputs: [tensor(3, 100)] }), 0).toArrowTable();
    // Same names, data types and dimensions after the first: one schema object, and its batches keep it.
    expect(b.schema).toBe(a.schema);
    expect(a.batches[0]!.schema).toBe(a.schema);
    expect(b.batches[0]!.schema).toBe(a.schema);
    expect(String(a.schema.fields[1]!.type)).toBe('FixedSizeList[2]<FixedSizeList[3]<Float32>>');
    // The values are each request's own.
    expect(a.numRows).toBe(1);
    expect(b.numRows).toBe(3);
    const rowOf = (table: Table, row: number): number[][] =>
      Array.from(table.getChild('in.tensor')!.get(row) as Iterable<{ toArray(): Float32Array }>, (inner) =>
        Array.from(inner.toArray()),
      );
    expect(rowOf(a, 0)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    expect(rowOf(b, 2)).toEqual([
      [112, 113, 114],
      [115, 116, 117],
    ]);
    // Another layout (other inner dimensions, or another data type) gets a schema of its own.
    const flat = resultOf(
      await decode({
        inputs: [{ name: 'tensor', shape: [1, 6], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] }],
      }),
      0,
    ).toArrowTable();
    const f64 = resultOf(
      await decode({ inputs: [{ ...(tensor(1, 0) as object), datatype: 'FP64' }] }),
      0,
    ).toArrowTable();
    expect(flat.schema).not.toBe(a.schema);
    expect(f64.schema).not.toBe(a.schema);
    expect(String(f64.schema.fields[1]!.type)).toBe('FixedSizeList[2]<FixedSizeList[3]<Float64>>');
  });

  it("gives the log rows of requests of one layout one schema (the result table's), with each request's inputs", async () => {
    const first = resultOf(await decode({ inputs: [tensor(1, 0)] }), 0);
    const second = resultOf(await decode({ inputs: [tensor(1, 50)] }), 50);
    // Written straight from the tensors into the log's staging: no table built for the log.
    const rows = [first.logRows(), second.logRows()];
    expect(rows.every((r) => isLogRowSource(r))).toBe(true);
    const [a, b] = rows as LogRowSource[];
    expect(b!.schema).toBe(a!.schema);
    expect(a!.schema).toBe(first.toArrowTable().schema);
    const leaf = (source: LogRowSource, index: number): number[] => {
      const target = new Float32Array(source.numRows * source.leaves![index]!.width);
      source.writeLeaf(index, target);
      return Array.from(target);
    };
    // Leaves: time, in.tensor, out.y, check_failures.
    expect(leaf(a!, 1)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(leaf(b!, 1)).toEqual([50, 51, 52, 53, 54, 55]);
    expect(leaf(a!, 2)).toEqual([0]);
    expect(leaf(b!, 2)).toEqual([50]);
  });
});

describe('readOpenInferenceBody shapes', () => {
  const body = (shape: number[]): Buffer =>
    Buffer.from(JSON.stringify({ inputs: [{ name: 'tensor', shape, datatype: 'FP32', data: [1] }] }));

  it(`reads a shape of ${MAX_OPEN_INFERENCE_RANK} dimensions, and refuses more as invalid_tensor_shape before building anything of them`, () => {
    const most = readOpenInferenceBody(body(Array<number>(MAX_OPEN_INFERENCE_RANK).fill(1)), undefined);
    expect(most.tensors[0]!.shape).toHaveLength(MAX_OPEN_INFERENCE_RANK);
    // 8 000 dimensions of 1 (16 KB): nested list types that deep overflow apache-arrow's stack.
    for (const rank of [MAX_OPEN_INFERENCE_RANK + 1, 8000]) {
      let error: unknown;
      try {
        readOpenInferenceBody(body(Array<number>(rank).fill(1)), undefined);
      } catch (caught) {
        error = caught;
      }
      expect(error, String(rank)).toBeInstanceOf(ApiError);
      expect((error as ApiError).code, String(rank)).toBe('invalid_tensor_shape');
      expect((error as ApiError).message, String(rank)).toContain(`${rank} dimensions`);
    }
  });
});

describe('openInferenceCodec.encode', () => {
  it('writes a large JSON answer in slices, byte for byte what one JSON.stringify gives; binary outputs follow as parts', async () => {
    const n = 70_001;
    const y = Float32Array.from({ length: n * 2 }, (_, i) => (i % 977) / 4 - 3);
    const flags = Uint8Array.from({ length: n }, (_, i) => i % 3);
    const result = new InferenceResult(
      await decode({ inputs: [tensor(1, 0)] }),
      ['tensor'],
      [
        { name: 'y', type: 'float32', dims: [n, 2], data: y },
        { name: 'ok', type: 'bool', dims: [n], data: flags },
      ],
      n,
      1,
    );
    const request = { id: 'r"1', outputs: null, binaryOutput: false };
    const answer = await codec.encode(result, request, served);
    expect(Array.isArray(answer.body)).toBe(true);
    const expected = JSON.stringify({
      model_name: 'pipe',
      model_version: '1',
      id: 'r"1',
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [n, 2], data: Array.from(y) },
        { name: 'ok', datatype: 'BOOL', shape: [n], data: Array.from(flags, (v) => v !== 0) },
      ],
    });
    expect(Buffer.concat(answer.body as readonly Uint8Array[]).toString('utf8')).toBe(expected);

    // `ok` as binary data: the JSON header names its size, its bytes follow.
    const mixed = await codec.encode(
      result,
      {
        id: undefined,
        outputs: [
          { name: 'y', binary: false },
          { name: 'ok', binary: true },
        ],
        binaryOutput: false,
      },
      served,
    );
    const body = Buffer.concat(mixed.body as readonly Uint8Array[]);
    const headLength = Number(mixed.headers!['inference-header-content-length']);
    expect(JSON.parse(body.subarray(0, headLength).toString('utf8'))).toEqual({
      model_name: 'pipe',
      model_version: '1',
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [n, 2], data: Array.from(y) },
        { name: 'ok', datatype: 'BOOL', shape: [n], parameters: { binary_data_size: n } },
      ],
    });
    expect(Buffer.compare(body.subarray(headLength), Buffer.from(flags))).toBe(0);
  });
});

describe('openInferenceCodec.encode of a small answer', () => {
  /** What the answer was before it was written by hand: one JSON.stringify of the answer object. */
  function stringified(
    outputs: { name: string; datatype: string; dims: number[]; values: unknown[] }[],
    id: string | undefined,
  ): string {
    const answer: Record<string, unknown> = { model_name: 'pipe', model_version: '1' };
    if (id !== undefined) answer.id = id;
    answer.outputs = outputs.map((o) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.dims,
      data: o.values,
    }));
    return JSON.stringify(answer);
  }

  it('writes byte for byte what JSON.stringify of the answer gives, for every element type and edge value', async () => {
    const input = await decode({ inputs: [tensor(2, 0)] });
    const f32 = Float32Array.from([0.1, -0, NaN, Infinity, -Infinity, 3.4e38, 1e-45, 718013.75]);
    const f64 = Float64Array.from([0.1, -0, NaN, -Infinity, Number.MAX_VALUE, 5e-324, 1e21, 123456789.125]);
    const i64 = BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, -5n]);
    const u64 = BigUint64Array.from([2n ** 64n - 1n, 2n ** 53n + 1n, 0n, 7n]);
    const half = Uint16Array.from([0x3c00, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0001, 0x7bff, 0xc000]);
    const cases: [string, string, number[], TensorData, unknown[]][] = [
      ['f32', 'FP32', [2, 4], f32, Array.from(f32)],
      ['f64', 'FP64', [2, 2, 2], f64, Array.from(f64)],
      ['i64', 'INT64', [2, 2], i64, Array.from(i64, Number)],
      ['u64', 'UINT64', [2, 2], u64, Array.from(u64, Number)],
      ['i8', 'INT8', [2, 2], Int8Array.from([-128, 127, 0, -1]), [-128, 127, 0, -1]],
      ['u32', 'UINT32', [2, 1], Uint32Array.from([2 ** 32 - 1, 0]), [2 ** 32 - 1, 0]],
      ['ok', 'BOOL', [2, 3], Uint8Array.from([1, 0, 1, 1, 0, 0]), [true, false, true, true, false, false]],
      ['h', 'FP16', [2, 4], half, [1, -0, Infinity, -Infinity, NaN, 2 ** -24, 65504, -2]],
      ['s', 'BYTES', [2], ['a"b\\c\u0001', 'é ☃ \ud83d\ude00'], ['a"b\\c\u0001', 'é ☃ \ud83d\ude00']],
      ['empty', 'FP32', [2, 0], new Float32Array(0), []],
      ['na"me\u2028', 'FP32', [2], Float32Array.from([1, 2]), [1, 2]],
    ];
    const types: Record<string, TensorElementType> = {
      FP32: 'float32',
      FP64: 'float64',
      INT64: 'int64',
      UINT64: 'uint64',
      INT8: 'int8',
      UINT32: 'uint32',
      BOOL: 'bool',
      FP16: 'float16',
      BYTES: 'string',
    };
    const result = new InferenceResult(
      input,
      ['tensor'],
      cases.map(([name, datatype, dims, data]) => ({ name, type: types[datatype]!, dims, data })),
      2,
      1,
    );
    const all = cases.map(([name, datatype, dims, , values]) => ({ name, datatype, dims, values }));
    for (const id of [undefined, 'r"1\n']) {
      const answer = await codec.encode(result, { id, outputs: null, binaryOutput: false }, served);
      expect(answer.contentType).toBe('application/json');
      expect(answer.body).toBe(stringified(all, id));
    }
    // The outputs asked for, in the order asked; none at all.
    const some = await codec.encode(
      result,
      {
        id: undefined,
        outputs: [
          { name: 'ok', binary: false },
          { name: 'f32', binary: false },
        ],
        binaryOutput: false,
      },
      served,
    );
    expect(some.body).toBe(stringified([all[6]!, all[0]!], undefined));
    const none = new InferenceResult(input, ['tensor'], [], 2, 1);
    const empty = await codec.encode(none, { id: undefined, outputs: null, binaryOutput: false }, served);
    expect(empty.body).toBe(stringified([], undefined));
  });
});

describe('readOpenInferenceBody data', () => {
  /** What the body of one [2, 3] input gives: its values, or the error's code, message and details. */
  const read = (datatype: string, data: unknown): unknown => {
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [2, 3], datatype, data }] }));
    try {
      return Array.from(
        readOpenInferenceBody(body, undefined).tensors[0]!.values as ArrayLike<unknown>,
        String,
      );
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return { code: error.code, message: error.message, details: error.details };
    }
  };
  const nest = (flat: unknown[]): unknown[] => [flat.slice(0, 3), flat.slice(3)];

  it('reads flat data as the same values, and refuses it with the same errors, as data nested per dimension', () => {
    const cases: unknown[][] = [
      [0.5, -1, 3.25, 1e30, -0, 7],
      [1, 2, 'x', 4, 5, 6],
      [1, 2, 3, null, 5, 6],
      [true, 0, 1, 0, 1, 1],
      [1, 2, 3, 4, 5, 6.5],
      [1, 2, 300, 4, 5, 6],
    ];
    const seen = new Set<string>();
    for (const datatype of ['FP32', 'FP64', 'INT32', 'UINT8', 'BOOL'])
      for (const flat of cases) {
        const got = read(datatype, flat);
        expect(got, `${datatype} ${JSON.stringify(flat)}`).toEqual(read(datatype, nest(flat)));
        seen.add(Array.isArray(got) ? 'values' : (got as { code: string }).code);
      }
    // Values and both kinds of refusal were compared.
    expect([...seen].sort()).toEqual(['invalid_inference_input', 'non_numeric_value', 'values']);
    // A list among flat items is read as the walk always read it (a list per dimension at most).
    expect(read('FP32', [1, 2, 3, 4, 5, [6]])).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(read('FP32', [1, 2, 3, 4, 5, [[6]]])).toMatchObject({ code: 'invalid_tensor_shape' });
    // Flat data of another length than the shape's is refused, not padded or cut.
    expect(read('FP32', [1, 2, 3, 4, 5])).toMatchObject({ code: 'invalid_tensor_shape' });
    expect(read('FP32', [1, 2, 3, 4, 5, 6, 7])).toMatchObject({ code: 'invalid_tensor_shape' });
  });
});

describe('readOpenInferenceBody refuses what it would read wrongly', () => {
  const codeOf = (run: () => unknown): string | undefined => {
    try {
      run();
    } catch (error) {
      if (error instanceof ApiError) return error.code;
      throw error;
    }
    return undefined;
  };
  const json = (request: unknown): Buffer => Buffer.from(JSON.stringify(request));
  const input = { name: 'tensor', shape: [1, 2], datatype: 'FP32', data: [1, 2] };

  it('an output asked for twice: each copy would be written in full (1024 copies of one output made a 4.5 GB answer, a 500)', () => {
    const twice = json({
      inputs: [input],
      outputs: [{ name: 'y' }, { name: 'y', parameters: { binary_data: true } }],
    });
    expect(codeOf(() => readOpenInferenceBody(twice, undefined))).toBe('invalid_inference_input');
    const once = json({ inputs: [input], outputs: [{ name: 'y' }, { name: 'z' }] });
    expect(readOpenInferenceBody(once, undefined).outputs).toEqual([
      { name: 'y', binary: undefined },
      { name: 'z', binary: undefined },
    ]);
  });

  it('JSON values the declared datatype cannot hold, instead of wrapping or truncating them', () => {
    const value = (datatype: string, v: unknown): Buffer =>
      json({ inputs: [{ name: 'tensor', shape: [1, 1], datatype, data: [v] }] });
    for (const [datatype, v] of [
      ['INT8', 300],
      ['INT8', -129],
      ['UINT8', 256],
      ['UINT8', -1],
      ['UINT16', 65_536],
      ['INT16', 40_000],
      ['UINT32', -1],
      ['UINT32', 2 ** 32],
      ['INT32', 2 ** 31],
      ['INT32', 1.5],
      ['UINT64', -1],
      ['UINT64', 1e20],
      ['INT64', 2 ** 63],
      ['INT64', 1e300],
      ['INT64', 0.5],
    ] as const) {
      expect(
        codeOf(() => readOpenInferenceBody(value(datatype, v), undefined)),
        `${datatype} ${v}`,
      ).toBe('invalid_inference_input');
    }
    // The edges are values, and floats take any number (FP32 rounds as it always did).
    for (const [datatype, v] of [
      ['INT8', -128],
      ['INT8', 127],
      ['UINT8', 255],
      ['UINT32', 2 ** 32 - 1],
      ['INT32', -(2 ** 31)],
      ['UINT64', 2 ** 53],
      ['INT64', -(2 ** 53)],
      ['FP32', 1e300],
      ['FP64', -1.5],
    ] as const) {
      expect(
        readOpenInferenceBody(value(datatype, v), undefined).tensors[0]!.values.length,
        `${datatype} ${v}`,
      ).toBe(1);
    }
  });

  it('BOOL binary data other than 0 and 1 (onnxruntime gave Not(7) = true)', () => {
    const head = json({
      inputs: [{ name: 'flag', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } }],
    });
    const body = (bytes: number[]): Buffer => Buffer.concat([head, Buffer.from(bytes)]);
    expect(codeOf(() => readOpenInferenceBody(body([1, 0, 7]), String(head.byteLength)))).toBe(
      'invalid_inference_input',
    );
    const flags = readOpenInferenceBody(body([1, 0, 1]), String(head.byteLength)).tensors[0]!.values;
    expect(flags).toEqual(new Uint8Array([1, 0, 1]));
  });
});
