import { describe, expect, it } from 'vitest';
import type { ApiError } from '../../errors/index.js';
import { MAX_JSON_NESTING, refuseDeepJson } from './refuse-deep-json.js';
import { readOpenInferenceBody } from '../open-inference-codec.js';
import { jsonRecordsToTable } from './scan-records.js';

const bytes = (text: string): Uint8Array => Buffer.from(text);
const nested = (levels: number): string => `${'['.repeat(levels)}1${']'.repeat(levels)}`;

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return (error as ApiError).code;
  }
}

describe('refuseDeepJson', () => {
  it('passes bodies up to the limit and refuses one level more', () => {
    // The records array and the record are two levels; the value nests the rest.
    const atLimit = `[{"x": ${nested(MAX_JSON_NESTING - 2)}}]`;
    expect(codeOf(() => refuseDeepJson(bytes(atLimit)))).toBeUndefined();
    const past = `[{"x": ${nested(MAX_JSON_NESTING - 1)}}]`;
    expect(codeOf(() => refuseDeepJson(bytes(past)))).toBe('invalid_inference_input');
  });

  it('counts objects as well as arrays, and an unterminated flood', () => {
    expect(codeOf(() => refuseDeepJson(bytes('{"a":'.repeat(MAX_JSON_NESTING + 1))))).toBe(
      'invalid_inference_input',
    );
    expect(codeOf(() => refuseDeepJson(bytes('['.repeat(500_000))))).toBe('invalid_inference_input');
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const key = `a\\"${'['.repeat(1000)}`;
    expect(codeOf(() => refuseDeepJson(bytes(`[{"${key}": [1]}]`)))).toBeUndefined();
    expect(codeOf(() => refuseDeepJson(bytes(`[{"x": "${'{'.repeat(1000)}\\\\"}]`)))).toBeUndefined();
  });

  it('sits in front of the general parse of a large body, not of the plain shape', () => {
    const rows = Array.from({ length: 3000 }, (_, i) => `{"x": [${i}, 1.5]}`);
    const plain = `[${rows.join(',')}]`;
    expect(jsonRecordsToTable(bytes(plain)).fields[0]!.name).toBe('x');
    // The same body with a 100 000-level value in its last row: refused before JSON.parse,
    // which would build the whole structure first.
    const deep = `[${rows.slice(1).join(',')},{"x": ${nested(100_000)}}]`;
    expect(codeOf(() => jsonRecordsToTable(bytes(deep)))).toBe('invalid_inference_input');
    // Deeper than a value may be, but within the limit: still the general path's shape error.
    const rank = `[{"x": ${nested(40)}}]`;
    expect(codeOf(() => jsonRecordsToTable(bytes(rank)))).toBe('invalid_tensor_shape');
  });

  it('sits in front of the Open Inference body parse too', () => {
    const tensor = (data: string): Uint8Array =>
      bytes(`{"inputs": [{"name": "x", "shape": [1, 2, 2], "datatype": "FP32", "data": ${data}}]}`);
    expect(readOpenInferenceBody(tensor('[[[1, 2], [3, 4]]]'), undefined).tensors).toHaveLength(1);
    let message = '';
    try {
      readOpenInferenceBody(tensor(nested(100_000)), undefined);
    } catch (error) {
      message = (error as ApiError).code + ' ' + (error as ApiError).message;
    }
    expect(message).toContain('invalid_inference_input');
    expect(message).toContain('more than 64 levels deep');
  });
});
