import { describe, expect, it } from 'vitest';
import type { ApiError } from '../../errors/index.js';
import { MAX_JSON_NESTING, refuseDeepJson } from './refuse-deep-json.js';
import { readOpenInferenceBody } from '../open-inference-codec.js';
import { jsonRecordsToTable } from './scan-records.js';
import { mulberry32 } from '../../../../../test/support/synthetic-data.js';

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

  it('refuses exactly what a byte-at-a-time scan refuses, at any alignment and with syntax bytes around the body', () => {
    // The scan it replaced, one byte at a time: the reference.
    const deeperThan = (body: Uint8Array, limit: number): boolean => {
      let depth = 0;
      for (let i = 0; i < body.length; i++) {
        const byte = body[i]!;
        if (byte === 0x22) {
          for (i++; i < body.length && body[i] !== 0x22; i++) if (body[i] === 0x5c) i++;
        } else if (byte === 0x5b || byte === 0x7b) {
          if (++depth > limit) return true;
        } else if (byte === 0x5d || byte === 0x7d) {
          depth--;
        }
      }
      return false;
    };
    const random = mulberry32(17);
    // Mostly brackets, quotes and backslashes, with runs of plain bytes between them.
    const alphabet = Buffer.from('[[]]{{}}""\\\\1,: é');
    const counts = { refused: 0, passed: 0 };
    for (let n = 0; n < 20_000; n++) {
      const length = Math.floor(random() * 160);
      const plainRun = random() < 0.5;
      const bytes = Buffer.alloc(length);
      for (let i = 0; i < length; i++) {
        bytes[i] = plainRun && random() < 0.7 ? 0x31 : alphabet[Math.floor(random() * alphabet.length)]!;
      }
      // The body sits at an offset of 0–3 inside a larger buffer full of opening brackets and
      // quotes, so a read past either end would change the answer.
      const offset = Math.floor(random() * 4);
      const backing = new Uint8Array(length + 8).fill(n % 2 === 0 ? 0x5b : 0x22);
      backing.set(bytes, offset);
      const body = backing.subarray(offset, offset + length);
      const limit = Math.floor(random() * 6);
      const expected = deeperThan(body, limit);
      expect(
        codeOf(() => refuseDeepJson(body, limit)),
        `${bytes.toString('latin1')} @${offset} limit ${limit}`,
      ).toBe(expected ? 'invalid_inference_input' : undefined);
      counts[expected ? 'refused' : 'passed']++;
    }
    expect(counts.refused).toBeGreaterThan(2000);
    expect(counts.passed).toBeGreaterThan(2000);
  });

  it('counts the brackets between long runs of plain bytes, at either byte of a word', () => {
    for (const offset of [0, 1]) {
      for (const gap of [0, 1, 2, 3, 7]) {
        const plain = '1'.repeat(gap);
        const text = `${`[${plain}`.repeat(MAX_JSON_NESTING + 1)}`;
        const backing = Buffer.alloc(text.length + 1);
        backing.write(text, offset, 'latin1');
        const body = backing.subarray(offset, offset + text.length);
        expect(codeOf(() => refuseDeepJson(body))).toBe('invalid_inference_input');
        expect(codeOf(() => refuseDeepJson(body.subarray(0, body.length - 1 - gap)))).toBeUndefined();
      }
    }
    expect(codeOf(() => refuseDeepJson(new Uint8Array(new ArrayBuffer(8), 1, 0)))).toBeUndefined();
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

  it('passes an empty body at any offset, the end of its buffer included', () => {
    const backing = new Uint8Array(5);
    for (let offset = 0; offset <= 5; offset++) {
      expect(() => refuseDeepJson(backing.subarray(offset, offset))).not.toThrow();
    }
    expect(() => refuseDeepJson(new Uint8Array(0))).not.toThrow();
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
