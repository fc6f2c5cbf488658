// An Arrow body's column reaches a bool or float16 model input only with values that input
// takes, as Quoll's JSON records and the Open Inference Protocol do: a Uint8 column's bytes are
// the bool feed's array type and a Uint16 column's the float16 feed's, so fed as they were, a 7
// reached a bool input (onnxruntime takes Not(7) as true) and 1 a float16 input as the
// half-float bits 0x0001.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrow, QuollError, type Client, type Pipeline } from '@quoll/client';
import { makeFloat16InputModel, makeOpenInferenceExampleModel } from '../support/synthetic-models.js';
import { deployModelPipeline } from '../support/deploy-model-pipeline.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let client: Client;
/** `input0` uint32 [N, 2] and `input1` bool [N] → `output0` float32 [N, 2] and `output1` = not input1. */
let example: Pipeline;
/** `h` float16 [N] → `f` float32 [N]. */
let half: Pipeline;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
  example = await deployModelPipeline(
    client,
    'arrow-bool',
    'arrow-bool-model',
    makeOpenInferenceExampleModel(),
  );
  half = await deployModelPipeline(client, 'arrow-half', 'arrow-half-model', makeFloat16InputModel());
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

/** The example model's two columns, `input1` a Uint8 column of `flags`. */
function exampleTable(flags: number[]): arrow.Table {
  const pair = new arrow.FixedSizeList(2, new arrow.Field('item', new arrow.Uint32(), false));
  return new arrow.Table({
    input0: arrow.vectorFromArray(
      flags.map((_, row) => [row, row + 1]),
      pair,
    ),
    input1: arrow.vectorFromArray(flags, new arrow.Uint8()),
  });
}

async function refusal(action: () => Promise<unknown>): Promise<QuollError> {
  try {
    await action();
  } catch (error) {
    if (error instanceof QuollError) return error;
    throw error;
  }
  throw new Error('expected the request to be refused');
}

describe('Arrow columns into bool and float16 model inputs', () => {
  it('a Uint8 column of 0 and 1 feeds a bool input; a 7 is refused 400 invalid_inference_input naming the column, its Arrow type and the input', async () => {
    const answer = await example.infer(exampleTable([1, 0, 1]));
    // output1 = not input1, one value per row (a FixedSizeList<Bool> of 1).
    const output1 = answer.getChild('out.output1');
    const rows = Array.from({ length: answer.numRows }, (_, row) =>
      Array.from(output1?.get(row) as Iterable<boolean>),
    );
    expect(rows).toEqual([[false], [true], [false]]);

    const refused = await refusal(() => example.infer(exampleTable([1, 0, 7])));
    expect(refused.status).toBe(400);
    expect(refused.code).toBe('invalid_inference_input');
    expect(refused.message).toContain('Column "input1" (Arrow Uint8) row 2 holds 7');
    expect(refused.message).toContain('model input "input1" (bool)');
    expect(refused.details).toMatchObject({ column: 'input1', row: 2, arrowType: 'Uint8', type: 'bool' });
    // As Quoll's JSON records refuse the same value.
    const json = await refusal(() =>
      example.infer([
        { input0: [0, 1], input1: 1 },
        { input0: [1, 2], input1: 7 },
      ]),
    );
    expect(json.code).toBe('invalid_inference_input');
    // A fraction is no bool either (truncated, 0.5 was fed as false; numpy and ONNX Cast say true).
    const half = new arrow.Table({
      input0: exampleTable([1, 0]).getChild('input0')!,
      input1: arrow.vectorFromArray([1, 0.5], new arrow.Float64()),
    });
    const fraction = await refusal(() => example.infer(half));
    expect(fraction.status).toBe(400);
    expect(fraction.details).toMatchObject({ column: 'input1', row: 1, arrowType: 'Float64', type: 'bool' });
    const jsonFraction = await refusal(() =>
      example.infer([
        { input0: [0, 1], input1: 1 },
        { input0: [1, 2], input1: 0.5 },
      ]),
    );
    expect(jsonFraction.code).toBe('invalid_inference_input');
    expect(jsonFraction.message).toContain('send 0 (false) or 1 (true)');
  });

  it('a Uint16 (or any) column for a float16 input is refused 400 invalid_inference_input, as JSON records are', async () => {
    for (const type of [new arrow.Uint16(), new arrow.Float32()]) {
      const table = new arrow.Table({ h: arrow.vectorFromArray([1, 2], type) });
      const refused = await refusal(() => half.infer(table));
      expect(refused.status, String(type)).toBe(400);
      expect(refused.code, String(type)).toBe('invalid_inference_input');
      expect(refused.message, String(type)).toContain(
        `Column "h" (Arrow ${String(type)}) cannot feed model input "h" (float16)`,
      );
    }
    const json = await refusal(() => half.infer([{ h: 1 }, { h: 2 }]));
    expect(json.code).toBe('invalid_inference_input');
  });
});
