import { ApiError } from '../../errors/index.js';
import { MAX_ROW_RANK } from './records-to-table.js';

/**
 * The deepest nesting of arrays and objects a JSON inference body may have before it is parsed:
 * records or columns (2 levels) around values of at most {@link MAX_ROW_RANK} dimensions, or an
 * Open Inference body's 3 levels around a tensor's data, with room to spare. Anything deeper is refused by the records decoding anyway; refusing it from
 * the bytes first keeps `JSON.parse` from building a 100 000-level structure (≈ 18 MiB of
 * heap from a 200 KB body, far more than the body's share of the memory budget).
 */
export const MAX_JSON_NESTING = 2 * MAX_ROW_RANK;

const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Refuses a JSON body whose arrays and objects nest more than `limit` levels deep, reading only
 * its bytes (brackets inside strings do not count). Says nothing of whether the body is valid
 * JSON: the parse that follows judges that.
 * @throws ApiError `invalid_inference_input`
 */
export function refuseDeepJson(body: Uint8Array, limit: number = MAX_JSON_NESTING): void {
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    if (byte === QUOTE) {
      // Skip the string; a backslash escapes the next byte (a multi-byte UTF-8 sequence has
      // no byte below 0x80, so it can hold neither a quote nor a backslash).
      for (i++; i < body.length && body[i] !== QUOTE; i++) if (body[i] === BACKSLASH) i++;
    } else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > limit) {
        throw new ApiError(
          'invalid_inference_input',
          `The body nests arrays or objects more than ${limit} levels deep; a tensor has at most ${MAX_ROW_RANK} dimensions.`,
        );
      }
    } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
      depth--;
    }
  }
}
