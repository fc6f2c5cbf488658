import { ApiError } from '../errors/index.js';
import { decodeCursorTuple, encodeCursorTuple } from '../validation/index.js';
import type { RunPosition } from './task-store.js';

const VERSION = 1;
/** A creation time exactly as the stores write it (`Date#toISOString`, milliseconds, UTC). */
const CREATED_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** A run id: printable ASCII word characters only (no control characters, no NUL), bounded length. */
const RUN_ID = /^[0-9A-Za-z][0-9A-Za-z._:-]{0,127}$/;

/** Encodes where the next page of a task's runs starts (the last run of this page) as an opaque URL-safe string. */
export function encodeRunCursor(last: RunPosition): string {
  return encodeCursorTuple([VERSION, last.createdAt, last.id]);
}

/**
 * Decodes a cursor made by {@link encodeRunCursor}; throws `ApiError('invalid_request')` for anything else,
 * including a well-formed cursor whose creation time or run id has a shape no store writes (a NUL, which
 * PostgreSQL refuses in a text parameter, or any other control character), so both backends answer alike.
 */
export function decodeRunCursor(text: string): RunPosition {
  const parsed = decodeCursorTuple(text);
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    parsed[0] !== VERSION ||
    typeof parsed[1] !== 'string' ||
    typeof parsed[2] !== 'string' ||
    !CREATED_AT.test(parsed[1]) ||
    Number.isNaN(Date.parse(parsed[1])) ||
    !RUN_ID.test(parsed[2])
  ) {
    throw new ApiError(
      'invalid_request',
      `The runs cursor "${text.length > 200 ? `${text.slice(0, 200)}…` : text}" is not one this server returned; pass the nextCursor of a previous page unchanged.`,
      { cursor: text.length > 200 ? `${text.slice(0, 200)}…` : text },
    );
  }
  return { createdAt: parsed[1], id: parsed[2] };
}
