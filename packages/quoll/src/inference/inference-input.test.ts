import { describe, expect, it } from 'vitest';
import { Float32, Table, tableToIPC, vectorFromArray } from 'apache-arrow';
import { ApiError } from '../errors/index.js';
import { makeArrowTensorTable, tableToIpcFile } from '../../../../test/support/synthetic-data.js';
import { decodeInferenceBody, formatOfMediaType } from './inference-input.js';

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
  throw new Error('expected an ApiError');
}

describe('decodeInferenceBody', () => {
  const table = makeArrowTensorTable(Float32Array.from([1, 2, 3, 4]), 2);

  it('reads JSON records, with or without format=pandas-records', () => {
    const body = Buffer.from('[{"tensor":[1,2]},{"tensor":[3,4]}]');
    expect(decodeInferenceBody('application/json', body)).toEqual({
      kind: 'records',
      records: [{ tensor: [1, 2] }, { tensor: [3, 4] }],
    });
    expect(decodeInferenceBody('application/json; format=pandas-records', body)).toEqual(
      decodeInferenceBody('application/json', body),
    );
  });

  it('turns an object of equal-length columns into records', () => {
    const input = decodeInferenceBody('application/json', Buffer.from('{"tensor":[[1,2],[3,4]]}'));
    expect(input).toEqual({ kind: 'records', records: [{ tensor: [1, 2] }, { tensor: [3, 4] }] });
  });

  it('reads Arrow IPC files and streams', () => {
    const file = decodeInferenceBody('application/vnd.apache.arrow.file', tableToIpcFile(table));
    const stream = decodeInferenceBody('application/vnd.apache.arrow.stream', tableToIPC(table, 'stream'));
    for (const input of [file, stream]) {
      expect(input.kind).toBe('arrow');
      if (input.kind === 'arrow') expect(input.table.numRows).toBe(2);
    }
  });

  it.each([
    ['text/csv', 'a,b\n1,2', 'unsupported_media_type'],
    ['application/json', '{not json', 'invalid_inference_input'],
    ['application/json', '[]', 'invalid_inference_input'],
    ['application/json', '"tensor"', 'invalid_inference_input'],
    ['application/json', '{"a":[1],"b":[1,2]}', 'invalid_inference_input'],
    ['application/vnd.apache.arrow.file', 'definitely not arrow', 'invalid_inference_input'],
  ])('%s body %j → %s', (contentType, body, code) => {
    expect(codeOf(() => decodeInferenceBody(contentType, Buffer.from(body)))).toBe(code);
  });

  it('refuses an Arrow table with no rows', () => {
    const empty = new Table({ tensor: vectorFromArray([] as number[], new Float32()) });
    expect(
      codeOf(() => decodeInferenceBody('application/vnd.apache.arrow.file', tableToIPC(empty, 'file'))),
    ).toBe('invalid_inference_input');
  });
});

describe('formatOfMediaType', () => {
  it('names the three formats and nothing else', () => {
    expect(formatOfMediaType('Application/JSON; charset=utf-8')).toBe('json');
    expect(formatOfMediaType('application/vnd.apache.arrow.file')).toBe('arrow-file');
    expect(formatOfMediaType('application/vnd.apache.arrow.stream')).toBe('arrow-stream');
    expect(formatOfMediaType('text/plain')).toBeNull();
  });
});
