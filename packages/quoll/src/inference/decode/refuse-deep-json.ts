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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Per byte: +1 opens an array or object, -1 closes one, 2 starts a string, 0 anything else. */
const BYTE_CLASS = new Int8Array(256);
BYTE_CLASS[0x5b] = 1; // [
BYTE_CLASS[0x7b] = 1; // {
BYTE_CLASS[0x5d] = -1; // ]
BYTE_CLASS[0x7d] = -1; // }
BYTE_CLASS[QUOTE] = 2;
/** Per pair of bytes (a 16-bit word, either byte order): 1 when either byte is one of the five above. */
const PAIR_HAS_SYNTAX = new Uint8Array(65536);
for (let pair = 0; pair < 65536; pair++) {
  if (BYTE_CLASS[pair & 0xff] !== 0 || BYTE_CLASS[pair >>> 8] !== 0) PAIR_HAS_SYNTAX[pair] = 1;
}

/**
 * Refuses a JSON body whose arrays and objects nest more than `limit` levels deep, reading only
 * its bytes (brackets inside strings do not count). Says nothing of whether the body is valid
 * JSON: the parse that follows judges that.
 *
 * Outside strings it skips two bytes at a time while neither is a bracket or a quote (one table
 * read per 16-bit word: numbers, commas and spaces are most of a records body), and looks at the
 * bytes one by one only around those; inside a string, one by one to its closing quote.
 * @throws ApiError `invalid_inference_input`
 */
export function refuseDeepJson(body: Uint8Array, limit: number = MAX_JSON_NESTING): void {
  const length = body.length;
  // Nothing to nest; and the word view below cannot start one byte past the end of the buffer.
  if (length === 0) return;
  // The words start at the first even address of the body: `lead` bytes (0 or 1) from its start.
  const lead = body.byteOffset & 1;
  const words = new Uint16Array(body.buffer, body.byteOffset + lead, Math.max(0, length - lead) >> 1);
  const wordCount = words.length;
  let depth = 0;
  let i = 0;
  while (i < length) {
    if (((i - lead) & 1) === 0) {
      // At a word boundary: skip the words with no bracket and no quote in them.
      let word = (i - lead) >> 1;
      while (word < wordCount && PAIR_HAS_SYNTAX[words[word]!] === 0) word++;
      i = lead + 2 * word;
      if (i >= length) break;
    }
    const kind = BYTE_CLASS[body[i]!]!;
    if (kind === 2) {
      // Skip the string; a backslash escapes the next byte (a multi-byte UTF-8 sequence has
      // no byte below 0x80, so it can hold neither a quote nor a backslash).
      for (i++; i < length; i++) {
        const byte = body[i]!;
        if (byte === QUOTE) break;
        if (byte === BACKSLASH) i++;
      }
    } else if ((depth += kind) > limit) {
      throw new ApiError(
        'invalid_inference_input',
        `The body nests arrays or objects more than ${limit} levels deep; a tensor has at most ${MAX_ROW_RANK} dimensions.`,
      );
    }
    i++;
  }
}
