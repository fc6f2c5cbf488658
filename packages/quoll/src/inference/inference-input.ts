import { tableFromIPC } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import { MEDIA_TYPES } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { readArrowIpcLayout } from './decode/check-arrow-ipc.js';
import type { ArrowIpcLayout } from './decode/check-arrow-ipc.js';
import type { WalkBudget } from './decode/flat-table.js';
import { tableFromLayout } from './decode/table-from-layout.js';
import type { TensorData } from './tensor-data.js';

/**
 * A request tensor as a codec read it (the Open Inference Protocol's inputs): flat row-major
 * values and their dimensions, the first the rows. It feeds, answers and is logged as the Arrow
 * column it would be (nested FixedSizeLists over `values`), without that column being built.
 */
export interface InputTensor {
  /** The column's name (what binds it to a model input). */
  readonly name: string;
  /** Its dimensions: the rows, then each row's (every one at least 0; their product is `values.length`). */
  readonly shape: readonly number[];
  readonly values: Exclude<TensorData, string[]>;
}

/**
 * A decoded inference request: an Arrow table, pandas-records style plain objects, or tensors
 * (every one with `rows` as its first dimension).
 */
export type InferenceInput =
  | { kind: 'arrow'; table: Table }
  | { kind: 'records'; records: unknown[] }
  | { kind: 'tensors'; tensors: readonly InputTensor[]; rows: number };

/**
 * JSON records over the decode pool's inline size (and within its `modelWorkerJsonBytes`), not
 * decoded yet: the model worker that runs the request decodes and checks them, under
 * `deadlineMs`, so the request crosses to no third thread.
 */
export interface UndecodedRecords {
  kind: 'undecoded-records';
  body: Uint8Array;
  /** The decode's deadline in the model worker (from when it starts there). */
  deadlineMs: number;
}

/** What the inference engine takes: a decoded request, or JSON records its model worker decodes. */
export type EngineInput = InferenceInput | UndecodedRecords;

/** The formats an inference result can be written in. */
export type ResultFormat = 'json' | 'arrow-file' | 'arrow-stream';

/**
 * Which result format a media type names, or `null` when it names none (parameters such as
 * `; format=pandas-records` are allowed).
 */
export function formatOfMediaType(mediaType: string): ResultFormat | null {
  // The exact types clients send (every inference request reads its Content-Type and Accept
  // here): no split, trim or lower-casing.
  if (mediaType === MEDIA_TYPES.json) return 'json';
  if (mediaType === MEDIA_TYPES.arrowFile) return 'arrow-file';
  if (mediaType === MEDIA_TYPES.arrowStream) return 'arrow-stream';
  const essence = (mediaType.split(';', 1)[0] ?? '').trim().toLowerCase();
  switch (essence) {
    case MEDIA_TYPES.json:
      return 'json';
    case MEDIA_TYPES.arrowFile:
      return 'arrow-file';
    case MEDIA_TYPES.arrowStream:
      return 'arrow-stream';
    default:
      return null;
  }
}

/**
 * Reads an inference request body: `application/json` (an array of records such as
 * `[{ "tensor": [18 numbers] }]`, or one object of columns `{ "tensor": [[...], ...] }`),
 * `application/vnd.apache.arrow.file` or `application/vnd.apache.arrow.stream`.
 *
 * Throws `ApiError('unsupported_media_type')` for other content types and
 * `ApiError('invalid_inference_input')` for bodies that cannot be read or hold no rows.
 *
 * @example
 * const input = decodeInferenceBody('application/json', Buffer.from('[{"tensor":[1,2]}]'));
 */
export function decodeInferenceBody(contentType: string, body: Buffer | Uint8Array): InferenceInput {
  const format = formatOfMediaType(contentType);
  if (format === null) {
    throw new ApiError(
      'unsupported_media_type',
      `Content-Type "${contentType}" is not accepted; send ${MEDIA_TYPES.json} (records), ${MEDIA_TYPES.arrowFile} or ${MEDIA_TYPES.arrowStream}.`,
      { contentType },
    );
  }
  if (format === 'json') return { kind: 'records', records: parseRecords(body) };
  return { kind: 'arrow', table: decodeArrowTable(body) };
}

/**
 * Benchmarks only: a body decoded on the calling thread the way it was before the hostile-input
 * checks (JSON parsed here whatever its size, Arrow read by apache-arrow with no framing check
 * and no deadline). A corrupt Arrow body can hang the calling thread; servers use the decode
 * pool unless `QUOLL_BENCH_INPUT_CHECKS=off`.
 */
export const UNCHECKED_BODY_DECODER = {
  decode(contentType: string, body: Uint8Array): Promise<InferenceInput> {
    try {
      const format = formatOfMediaType(contentType);
      if (format === null || format === 'json')
        return Promise.resolve(decodeInferenceBody(contentType, body));
      return Promise.resolve({ kind: 'arrow', table: tableFromIPC(body) });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  },
} as const;

/**
 * Decodes an Arrow IPC file or stream by vetting its framing and building the columns as views
 * of the body from what the vetting found ({@link readArrowIpcLayout}, {@link tableFromLayout}):
 * corrupt lengths and counts are refused, and no other reader interprets the body's metadata,
 * so the work is linear in the body. The server still runs the vetting only inside its decode
 * workers, under a deadline.
 * @throws ApiError `invalid_inference_input` (or `non_numeric_value` for a column type Quoll cannot feed)
 */
export function decodeArrowTable(body: Uint8Array): Table {
  return tableFromLayout(body, readArrowLayout(body));
}

/**
 * {@link readArrowIpcLayout}, refusing a body with no rows; `budget` bounds the walk's steps.
 * @throws ApiError `invalid_inference_input` (or `non_numeric_value`); `WalkBudgetExceeded` past `budget`
 */
export function readArrowLayout(body: Uint8Array, budget?: WalkBudget): ArrowIpcLayout {
  const layout = readArrowIpcLayout(body, budget);
  if (layout.rows === 0)
    throw new ApiError('invalid_inference_input', 'The Arrow table has no rows; send at least one row.');
  return layout;
}

/**
 * Parses a JSON inference body into records (an array of records, or one object of
 * equal-length columns).
 * @throws ApiError `invalid_inference_input`
 */
export function parseRecords(body: Uint8Array): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (error) {
    throw new ApiError(
      'invalid_inference_input',
      `The body is not valid JSON (${(error as Error).message}); send an array of records like [{"tensor": [1, 2, 3]}].`,
    );
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0)
      throw new ApiError('invalid_inference_input', 'The records array is empty; send at least one record.');
    return parsed;
  }
  // A single object of equal-length columns ({"tensor": [[...], [...]]}) is the other shape the
  // tutorial's JSON files use; turn it into records.
  if (parsed !== null && typeof parsed === 'object') {
    const entries = Object.entries(parsed as Record<string, unknown>);
    const length = entries[0]?.[1];
    if (
      entries.length > 0 &&
      entries.every(([, column]) => Array.isArray(column) && column.length === (length as unknown[]).length)
    ) {
      const rows = (length as unknown[]).length;
      if (rows === 0)
        throw new ApiError('invalid_inference_input', 'The columns are empty; send at least one row.');
      const records: Record<string, unknown>[] = [];
      for (let row = 0; row < rows; row++) {
        const record: Record<string, unknown> = {};
        for (const [name, column] of entries) {
          // A "__proto__" column is kept as a column (and refused as unknown, as in the records
          // form): assigned, it would set the record's prototype and vanish.
          if (name === '__proto__') {
            Object.defineProperty(record, name, {
              value: (column as unknown[])[row],
              enumerable: true,
              writable: true,
              configurable: true,
            });
          } else record[name] = (column as unknown[])[row];
        }
        records.push(record);
      }
      return records;
    }
  }
  throw new ApiError(
    'invalid_inference_input',
    'The JSON body must be an array of records like [{"tensor": [1, 2, 3]}] (or an object of equal-length columns).',
  );
}
