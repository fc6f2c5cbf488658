import { afterEach, describe, expect, it } from 'vitest';
import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { makeArrowTensorTable, makeHouseRows } from '../../../../../test/support/synthetic-data.js';
import { ApiError } from '../../errors/index.js';
import { DecodePool } from './decode-pool.js';

const ARROW_FILE = 'application/vnd.apache.arrow.file';
const ARROW_STREAM = 'application/vnd.apache.arrow.stream';

let pools: DecodePool[] = [];
function pool(options: ConstructorParameters<typeof DecodePool>[0] = {}): DecodePool {
  const made = new DecodePool(options);
  pools.push(made);
  return made;
}

afterEach(async () => {
  await Promise.all(pools.map((p) => p.close()));
  pools = [];
});

function rowsOf(table: Table, column = 'tensor'): number[][] {
  const vector = table.getChild(column)!;
  return Array.from({ length: table.numRows }, (_, i) => Array.from(vector.get(i) as ArrayLike<number>));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
  return 'ok';
}

describe('DecodePool', () => {
  const table = makeArrowTensorTable(makeHouseRows(300, 7), 18);

  it('decodes Arrow files and streams in a worker into the same table', async () => {
    const decoder = pool({ inlineArrowSteps: 0 });
    for (const [type, layout] of [
      [ARROW_FILE, 'file'],
      [ARROW_STREAM, 'stream'],
    ] as const) {
      const input = await decoder.decode(type, tableToIPC(table, layout));
      expect(input.kind).toBe('arrow');
      if (input.kind !== 'arrow') continue;
      expect(input.table.numRows).toBe(300);
      expect(String(input.table.schema.fields[0]!.type)).toBe('FixedSizeList[18]<Float32>');
      expect(rowsOf(input.table)).toEqual(rowsOf(table));
    }
    expect(decoder.workerCount).toBe(1);
  });

  it('decodes many small bodies at once (sent to the worker together) each into its own input', async () => {
    const decoder = pool({ inlineJsonBytes: 0, inlineArrowSteps: 0 });
    const bodies = Array.from({ length: 60 }, (_, i) => {
      const rows = makeHouseRows(1 + (i % 7), 100 + i);
      if (i % 3 === 0) {
        const records = rowsOf(makeArrowTensorTable(rows, 18)).map((tensor) => ({ tensor }));
        return { type: 'application/json', body: Buffer.from(JSON.stringify(records)), rows };
      }
      const type = i % 3 === 1 ? ARROW_FILE : ARROW_STREAM;
      return {
        type,
        body: Buffer.from(tableToIPC(makeArrowTensorTable(rows, 18), i % 3 === 1 ? 'file' : 'stream')),
        rows,
      };
    });
    const inputs = await Promise.all(bodies.map(({ type, body }) => decoder.decode(type, body)));
    for (const [i, input] of inputs.entries()) {
      expect(input.kind).toBe('arrow');
      if (input.kind !== 'arrow') continue;
      const expected = rowsOf(makeArrowTensorTable(bodies[i]!.rows, 18));
      // JSON comes back as float64, Arrow as the body's float32: compare at float32 precision.
      expect(rowsOf(input.table).map((row) => row.map((v) => Math.fround(v)))).toEqual(expected);
    }
    expect(decoder.workerCount).toBe(1);
    expect(decoder.replacedWorkers).toBe(0);
  });

  it('parses small JSON on the calling thread and large JSON in a worker, to the same values', async () => {
    const decoder = pool({ inlineJsonBytes: 1024 });
    const records = rowsOf(table).map((tensor) => ({ tensor }));
    const small = await decoder.decode('application/json', Buffer.from(JSON.stringify(records.slice(0, 2))));
    expect(small).toEqual({ kind: 'records', records: records.slice(0, 2) });
    const large = await decoder.decode('application/json', Buffer.from(JSON.stringify(records)));
    expect(large.kind).toBe('arrow');
    if (large.kind === 'arrow') {
      expect(String(large.table.schema.fields[0]!.type)).toBe('FixedSizeList[18]<Float64>');
      expect(rowsOf(large.table)).toEqual(records.map((r) => r.tensor));
    }
  });

  it('leaves JSON records between the inline size and modelWorkerJsonBytes to the model worker, and decodes the rest', async () => {
    const decoder = pool({ inlineJsonBytes: 1024, modelWorkerJsonBytes: 16 * 1024 });
    const records = rowsOf(table).map((tensor) => ({ tensor }));
    const text = (rows: number): Buffer => Buffer.from(JSON.stringify(records.slice(0, rows)));
    expect((await decoder.decodeForModelWorker('application/json', text(2))).kind).toBe('records');
    const middle = text(100);
    expect(middle.byteLength).toBeGreaterThan(1024);
    expect(middle.byteLength).toBeLessThanOrEqual(16 * 1024);
    const left = await decoder.decodeForModelWorker('application/json; charset=utf-8', middle);
    // The decode pool's own deadline: 2 s plus 200 ms per MiB.
    const deadlineMs = 2000 + Math.ceil((middle.byteLength / 2 ** 20) * 200);
    expect(left).toEqual({ kind: 'undecoded-records', body: middle, deadlineMs });
    expect(decoder.workerCount).toBe(0);
    const large = text(300);
    expect(large.byteLength).toBeGreaterThan(16 * 1024);
    expect((await decoder.decodeForModelWorker('application/json', large)).kind).toBe('arrow');
    const arrow = await decoder.decodeForModelWorker(ARROW_FILE, tableToIPC(table, 'file'));
    expect(arrow.kind).toBe('arrow');
    expect(await codeOf(decoder.decodeForModelWorker('text/csv', middle))).toBe('unsupported_media_type');
  });

  it('reads rows of different widths in large JSON as a List column, and a lone number among lists as a shape error', async () => {
    const decoder = pool({ inlineJsonBytes: 0 });
    const ragged = await decoder.decode(
      'application/json',
      Buffer.from('[{"x":[1,2]},{"x":[3,4]},{"x":[5]}]'),
    );
    expect(ragged.kind === 'arrow' && String(ragged.table.schema.fields[0]!.type)).toBe('List<Float64>');
    expect(ragged.kind === 'arrow' && rowsOf(ragged.table, 'x')).toEqual([[1, 2], [3, 4], [5]]);
    const lone = decoder.decode('application/json', Buffer.from('[{"x":[1,2]},{"x":[3,4]},{"x":5}]'));
    const error = await lone.catch((e: unknown) => e);
    expect((error as ApiError).code).toBe('invalid_tensor_shape');
    expect((error as ApiError).message).toContain('Column "x" row 2');
  });

  it('refuses booleans, non-finite numbers and strings in large JSON naming the column and row', async () => {
    const decoder = pool({ inlineJsonBytes: 0 });
    const body = (value: string): Buffer => Buffer.from(`[{"x":[1,2]},{"x":[3,${value}]}]`);
    for (const [value, code] of [
      ['true', 'invalid_inference_input'],
      ['1e999', 'invalid_inference_input'],
      ['"7"', 'non_numeric_value'],
      ['null', 'non_numeric_value'],
    ] as const) {
      const error = await decoder.decode('application/json', body(value)).catch((e: unknown) => e);
      expect(error, value).toBeInstanceOf(ApiError);
      expect((error as ApiError).code, value).toBe(code);
      expect((error as ApiError).message, value).toContain('Column "x" row 1');
    }
  });

  it('refuses a corrupt Arrow body with a catalogue code, and keeps serving', async () => {
    const decoder = pool({ inlineArrowSteps: 0 });
    const good = tableToIPC(table, 'file');
    for (const stride of [97, 13, 1021]) {
      const bad = Buffer.from(good);
      for (let i = 200; i < bad.length; i += stride) bad[i]! ^= 0xff;
      expect(await codeOf(decoder.decode(ARROW_FILE, bad)), `stride ${stride}`).toMatch(
        /^(invalid_inference_input|non_numeric_value|ok)$/,
      );
    }
    expect((await decoder.decode(ARROW_FILE, tableToIPC(table, 'file'))).kind).toBe('arrow');
  });

  it('walks an Arrow body within the step budget on the calling thread, and a longer one in a worker, to the same table', async () => {
    const decoder = pool({ inlineArrowSteps: 64 });
    for (const layout of ['file', 'stream'] as const) {
      const input = await decoder.decode(
        layout === 'file' ? ARROW_FILE : ARROW_STREAM,
        tableToIPC(table, layout),
      );
      expect(input.kind === 'arrow' && rowsOf(input.table)).toEqual(rowsOf(table));
    }
    expect(decoder.workerCount).toBe(0);
    // 30 record batches need far more than 64 steps: the worker walks it.
    const batched = new Table(
      table.schema,
      Array.from({ length: 30 }, () => table.batches[0]!),
    );
    const input = await decoder.decode(ARROW_FILE, tableToIPC(batched, 'file'));
    expect(input.kind === 'arrow' && input.table.numRows).toBe(30 * table.numRows);
    expect(input.kind === 'arrow' && rowsOf(input.table).slice(-3)).toEqual(rowsOf(table).slice(-3));
    expect(decoder.workerCount).toBe(1);
  });

  it('answers a corrupt Arrow body walked inline as the worker does', async () => {
    const inline = pool();
    const worker = pool({ inlineArrowSteps: 0 });
    for (const layout of ['file', 'stream'] as const) {
      const good = tableToIPC(table, layout);
      const type = layout === 'file' ? ARROW_FILE : ARROW_STREAM;
      for (const [start, stride] of [
        [0, 7],
        [8, 97],
        [200, 13],
        [100, 1021],
        [good.length - 400, 5],
      ] as const) {
        const bad = Buffer.from(good);
        for (let i = start; i < bad.length; i += stride) bad[i]! ^= 0xff;
        const cut = Buffer.from(good.subarray(0, start + stride * 3));
        for (const body of [bad, cut]) {
          const got = await codeOf(inline.decode(type, Buffer.from(body)));
          expect(got, `${layout} ${start}/${stride}`).toBe(
            await codeOf(worker.decode(type, Buffer.from(body))),
          );
        }
      }
    }
    expect(inline.workerCount).toBe(0);
  });

  it('answers an Arrow body walked inline at once from decodeInline (no promise), as decode does', async () => {
    const decoder = pool({ inlineArrowSteps: 64 });
    const worker = pool({ inlineArrowSteps: 0 });
    for (const layout of ['file', 'stream'] as const) {
      const type = layout === 'file' ? ARROW_FILE : ARROW_STREAM;
      const input = decoder.decodeInline(type, tableToIPC(table, layout));
      if (input instanceof Promise) expect.unreachable('walked inline, answered with a promise');
      expect(input?.kind === 'arrow' && rowsOf(input.table)).toEqual(rowsOf(table));
      // A corrupt body throws what decode rejects with.
      const good = tableToIPC(table, layout);
      for (const body of [Buffer.from(good.subarray(0, 200)), Buffer.from(good).fill(0x41, 8, 64)]) {
        const thrown = await codeOf(
          (async () => {
            await Promise.resolve();
            return decoder.decodeInline(type, Buffer.from(body));
          })(),
        );
        expect(thrown, layout).toBe(await codeOf(worker.decode(type, Buffer.from(body))));
        expect(thrown, layout).not.toBe('ok');
      }
    }
    // With inline walks off: left to decode.
    expect(worker.decodeInline(ARROW_FILE, tableToIPC(table, 'file'))).toBeUndefined();
    // Small JSON as decodeJsonInline reads it; another media type is left to decode's refusal.
    expect(decoder.decodeInline('application/json', Buffer.from('[{"a": 1}]'))).toEqual({
      kind: 'records',
      records: [{ a: 1 }],
    });
    expect(decoder.decodeInline('text/plain', Buffer.from('x'))).toBeUndefined();
    expect(decoder.workerCount).toBe(0);
    // Past the walk budget: handed straight to a decode worker (not walked here again by decode).
    const batched = new Table(
      table.schema,
      Array.from({ length: 30 }, () => table.batches[0]!),
    );
    const handed = decoder.decodeInline(ARROW_FILE, tableToIPC(batched, 'file'));
    expect(handed).toBeInstanceOf(Promise);
    const input = await handed;
    expect(input?.kind === 'arrow' && rowsOf(input.table)).toEqual(rowsOf(batched));
    expect(decoder.workerCount).toBe(1);
  });

  it('abandons a decode past its deadline, replaces the worker and decodes the next body', async () => {
    const decoder = pool({ deadlineMs: 1, deadlineMsPerMiB: 0, inlineJsonBytes: 0 });
    // About 4 MB of JSON takes far longer than 1 ms to parse.
    const big = Buffer.from(
      JSON.stringify(Array.from({ length: 20_000 }, () => ({ x: Array(18).fill(1.5) }))),
    );
    expect(await codeOf(decoder.decode('application/json', big))).toBe('input_decode_timeout');
    expect(decoder.replacedWorkers).toBe(1);
    const relaxed = pool();
    expect((await relaxed.decode(ARROW_STREAM, tableToIPC(table, 'stream'))).kind).toBe('arrow');
  });

  it('answers payload_too_large when a decode needs more than the worker memory cap', async () => {
    const decoder = pool({ workerMemoryMiB: 16, inlineJsonBytes: 0, deadlineMs: 60_000 });
    // ~2.6 MB of JSON parses into far more than 16 MiB of objects. Nested lists: the worker's
    // byte scanner (which would read flat ones into 2.4 MB of columns) leaves them to JSON.parse.
    const huge = Buffer.from(
      JSON.stringify(Array.from({ length: 100_000 }, (_, i) => ({ x: [[i, i + 0.5, i + 0.25]] }))),
    );
    const code = await codeOf(decoder.decode('application/json', huge));
    expect(code).toBe('payload_too_large');
    expect(decoder.replacedWorkers).toBe(1);
  });

  it('refuses other media types, and stops its workers on close', async () => {
    const decoder = pool({ inlineArrowSteps: 0 });
    expect(await codeOf(decoder.decode('text/csv', Buffer.from('a,b')))).toBe('unsupported_media_type');
    const first = decoder.decode(ARROW_FILE, tableToIPC(table, 'file'));
    await first;
    expect(decoder.workerCount).toBe(1);
    await decoder.close();
    expect(decoder.workerCount).toBe(0);
    expect(await codeOf(decoder.decode(ARROW_FILE, tableToIPC(table, 'file')))).toBe('shutting_down');
  });

  it('moves a body that owns its buffer to the worker instead of copying it', async () => {
    const decoder = pool({ inlineArrowSteps: 0 });
    const bytes = new Uint8Array(tableToIPC(table, 'stream'));
    const expected = rowsOf(tableFromIPC(bytes));
    const input = await decoder.decode(ARROW_STREAM, bytes);
    expect(bytes.byteLength).toBe(0);
    expect(input.kind === 'arrow' && rowsOf(input.table)).toEqual(expected);
  });

  it('reads Open Inference bodies inline when small and in a worker when large, to the same tensors', async () => {
    const decoder = pool({ inlineJsonBytes: 1024 });
    const rows = rowsOf(table);
    const body = (n: number): Buffer =>
      Buffer.from(
        JSON.stringify({
          id: 'r1',
          inputs: [{ name: 'tensor', shape: [n, 18], datatype: 'FP32', data: rows.slice(0, n) }],
          outputs: [{ name: 'y', parameters: { binary_data: true } }],
        }),
      );
    const small = await decoder.decodeOpenInference(body(2), undefined);
    expect(decoder.workerCount).toBe(0);
    const large = await decoder.decodeOpenInference(body(300), undefined);
    expect(decoder.workerCount).toBe(1);
    for (const [read, n] of [
      [small, 2],
      [large, 300],
    ] as const) {
      expect(read.id).toBe('r1');
      expect(read.outputs).toEqual([{ name: 'y', binary: true }]);
      expect(read.tensors[0]!.shape).toEqual([n, 18]);
      expect(read.tensors[0]!.values).toBeInstanceOf(Float32Array);
      expect(Array.from(read.tensors[0]!.values as Float32Array)).toEqual(
        Array.from(new Float32Array(rows.slice(0, n).flat())),
      );
    }
    // The binary-tensor extension: the JSON part, then the raw values.
    const values = new Float32Array(rows.slice(0, 300).flat());
    const head = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'tensor',
            shape: [300, 18],
            datatype: 'FP32',
            parameters: { binary_data_size: values.byteLength },
          },
        ],
      }),
    );
    const binary = await decoder.decodeOpenInference(
      Buffer.concat([head, Buffer.from(values.buffer)]),
      String(head.byteLength),
    );
    expect(Array.from(binary.tensors[0]!.values as Float32Array)).toEqual(Array.from(values));
  });

  it('reads a small Open Inference body at once, its values carved out of one slab, never handed out twice', () => {
    const decoder = pool({ inlineJsonBytes: 1024 });
    const body = (data: number[], datatype = 'FP32'): Buffer =>
      Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1, data.length], datatype, data }] }));
    const a = decoder.decodeOpenInferenceInline(body([1, 2, 3]), undefined)!;
    const b = decoder.decodeOpenInferenceInline(body([4, 5]), undefined)!;
    // Without a promise (at batch 1 one more promise and await per request on the HTTP thread).
    expect(a).not.toBeInstanceOf(Promise);
    const [va, vb] = [a.tensors[0]!.values as Float32Array, b.tensors[0]!.values as Float32Array];
    expect([Array.from(va), Array.from(vb)]).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    // Views of one slab (no ArrayBuffer per request), one after the other, never overlapping.
    expect(vb.buffer).toBe(va.buffer);
    expect(va.buffer.byteLength).toBeGreaterThan(va.byteLength * 2);
    expect(vb.byteOffset).toBeGreaterThanOrEqual(va.byteOffset + va.byteLength);
    // Binary tensors too, copied out of the body into the slab.
    const values = new Float32Array([7, 8]);
    const head = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }],
      }),
    );
    const bin = Buffer.concat([head, Buffer.from(values.buffer)]);
    const c = decoder.decodeOpenInferenceInline(bin, String(head.byteLength))!;
    const vc = c.tensors[0]!.values as Float32Array;
    expect(Array.from(vc)).toEqual([7, 8]);
    expect(vc.buffer).toBe(va.buffer);
    expect(vc.buffer).not.toBe(bin.buffer);
    // The same errors as decodeOpenInference, thrown; a body over the inline size is not read here.
    expect(() => decoder.decodeOpenInferenceInline(body([1, 2, 3], 'INT8X'), undefined)).toThrow(ApiError);
    expect(decoder.decodeOpenInferenceInline(body(Array<number>(600).fill(1)), undefined)).toBeUndefined();
    expect(decoder.workerCount).toBe(0);
  });

  it('refuses hostile Open Inference bodies in the worker with catalogue codes, under the deadline', async () => {
    const decoder = pool({ inlineJsonBytes: 0 });
    const input = (data: string, shape = '[1, 2]'): Buffer =>
      Buffer.from(`{"inputs": [{"name": "x", "shape": ${shape}, "datatype": "FP32", "data": ${data}}]}`);
    const deep = `${'['.repeat(200_000)}1${']'.repeat(200_000)}`;
    for (const [label, body, header] of [
      ['not JSON', Buffer.from('{"inputs": [1, 2'), undefined],
      ['deep nesting', input(deep), undefined],
      ['a shape beyond its data', input('[1, 2]', '[1000000000, 1000]'), undefined],
      ['a header length past the body', input('[1, 2]'), '99999999'],
      [
        'too many outputs',
        Buffer.from(
          `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [${'{"name": "y"},'.repeat(2000)}{"name": "y"}]}`,
        ),
        undefined,
      ],
    ] as const) {
      expect(await codeOf(decoder.decodeOpenInference(body, header)), label).toMatch(
        /^(invalid_inference_input|invalid_tensor_shape)$/,
      );
    }
    const slow = pool({ deadlineMs: 1, deadlineMsPerMiB: 0, inlineJsonBytes: 0 });
    const big = input(JSON.stringify(Array(2_000_000).fill(1.5)), '[1000000, 2]');
    expect(await codeOf(slow.decodeOpenInference(big, undefined))).toBe('input_decode_timeout');
    expect(slow.replacedWorkers).toBe(1);
  });
});
