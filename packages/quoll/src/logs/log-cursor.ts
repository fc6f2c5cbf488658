import { ApiError } from '../errors/index.js';
import { decodeCursorTuple, encodeCursorTuple } from '../validation/index.js';

/** Where the next page of a log query starts: a row of a segment, and the direction of travel. */
export interface LogCursor {
  /** Segment sequence number. */
  seq: number;
  /** Row within the segment: the next row to return (going up for `asc`, down for `desc`). */
  row: number;
  order: 'asc' | 'desc';
}

const VERSION = 1;

/** Encodes a cursor as an opaque URL-safe string. */
export function encodeLogCursor(c: LogCursor): string {
  return encodeCursorTuple([VERSION, c.seq, c.row, c.order === 'asc' ? 0 : 1]);
}

/**
 * Decodes a cursor made by {@link encodeLogCursor}; throws `ApiError('invalid_request')` for
 * anything else, or for a cursor made for the other order.
 */
export function decodeLogCursor(text: string, order: 'asc' | 'desc'): LogCursor {
  const parsed = decodeCursorTuple(text);
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 4 ||
    parsed[0] !== VERSION ||
    !Number.isSafeInteger(parsed[1]) ||
    !Number.isSafeInteger(parsed[2]) ||
    (parsed[3] !== 0 && parsed[3] !== 1)
  ) {
    throw new ApiError(
      'invalid_request',
      `The log cursor "${text}" is not one this server returned; pass the nextCursor of a previous page unchanged.`,
      { cursor: text },
    );
  }
  const c: LogCursor = {
    seq: parsed[1] as number,
    row: parsed[2] as number,
    order: parsed[3] === 0 ? 'asc' : 'desc',
  };
  if (c.order !== order) {
    throw new ApiError(
      'invalid_request',
      `The log cursor was made for order "${c.order}" but this query asks for "${order}"; repeat the query with the same order.`,
      { cursor: text, order },
    );
  }
  return c;
}
