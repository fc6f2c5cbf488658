import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { decodeRunCursor, encodeRunCursor } from './run-cursor.js';

const raw = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('runs cursor', () => {
  it('decodes what it encodes', () => {
    const position = { createdAt: '2026-12-05T17:00:00.123Z', id: '0190f0a3-6b2e-7000-8a1c-5d9e0c4b7f21' };
    expect(decodeRunCursor(encodeRunCursor(position))).toEqual(position);
  });

  it.each([
    ['a NUL in the creation time', raw([1, '2026-01-01T00:00:00.000Z\u0000', 'x'])],
    ['a NUL in the run id', raw([1, '2026-01-01T00:00:00.000Z', 'x\u0000'])],
    ['a control character in the run id', raw([1, '2026-01-01T00:00:00.000Z', 'a\nb'])],
    ['an empty run id', raw([1, '2026-01-01T00:00:00.000Z', ''])],
    ['a run id too long', raw([1, '2026-01-01T00:00:00.000Z', 'a'.repeat(129)])],
    ['a creation time without milliseconds', raw([1, '2026-01-01T00:00:00Z', 'x'])],
    ['a creation time that is no date', raw([1, '2026-13-45T99:00:00.000Z', 'x'])],
    ['a creation time with an offset', raw([1, '2026-01-01T00:00:00.000+01:00', 'x'])],
    ['another version', raw([2, '2026-01-01T00:00:00.000Z', 'x'])],
    ['not base64url JSON', 'not a cursor'],
  ])('refuses %s with invalid_request', (_what, cursor) => {
    let error: unknown;
    try {
      decodeRunCursor(cursor);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe('invalid_request');
  });
});
