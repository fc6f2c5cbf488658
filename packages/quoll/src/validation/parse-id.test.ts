import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { MAX_NUMERIC_ID, parseNumericId } from './parse-id.js';

describe('parseNumericId', () => {
  it('reads canonical decimal ids from 1 to MAX_NUMERIC_ID', () => {
    for (const [text, id] of [
      ['1', 1],
      ['2', 2],
      ['10', 10],
      ['2147483647', MAX_NUMERIC_ID],
    ] as const)
      expect(parseNumericId(text, 'Workspace id')).toBe(id);
  });

  it('refuses every other spelling with invalid_request, naming the value', () => {
    const refused = [
      '0x2',
      '1e3',
      '+2',
      ' 2',
      '2 ',
      '02',
      '2.0',
      '0',
      '-2',
      '0b10',
      '0o2',
      '',
      '２',
      '2147483648',
      '1'.repeat(400),
      'Infinity',
      'NaN',
    ];
    for (const text of [...refused, undefined, null, 2.5]) {
      let error: unknown;
      try {
        parseNumericId(text, 'Workspace id');
      } catch (e) {
        error = e;
      }
      expect(error, String(text)).toBeInstanceOf(ApiError);
      expect((error as ApiError).code, String(text)).toBe('invalid_request');
      expect((error as ApiError).message.length, String(text)).toBeLessThan(200);
    }
  });
});
