import { Data, DataType, RecordBatch, TimeUnit, makeData } from 'apache-arrow';
import type { Schema, Struct } from 'apache-arrow';
import { ApiError } from '../errors/index.js';
import { timeValues } from './segment-file.js';

/**
 * Returns the batch with its `time` column made non-decreasing and not below `after`
 * (each value raised to the running maximum), or the batch itself when it already is.
 * Queries binary-search on time, so the order must hold along the whole pipeline.
 */
export function clampLogTime(batch: RecordBatch, after: bigint): { batch: RecordBatch; last: bigint } {
  const t = timeValues(batch);
  let prev = after;
  let ok = true;
  for (let i = 0; i < t.length; i++) {
    const v = t[i] as bigint;
    if (v < prev) {
      ok = false;
      break;
    }
    prev = v;
  }
  if (ok) return { batch, last: prev };
  const fixed = new BigInt64Array(t.length);
  prev = after;
  for (let i = 0; i < t.length; i++) {
    const v = t[i] as bigint;
    prev = v > prev ? v : prev;
    fixed[i] = prev;
  }
  const col = batch.schema.fields.findIndex((f) => f.name === 'time');
  const old = batch.data.children[col] as Data;
  const children = batch.data.children.slice();
  children[col] = new Data(old.type, 0, t.length, 0, [undefined, fixed]);
  return {
    batch: batchOf(
      batch.schema,
      makeData({ type: batch.data.type, length: batch.numRows, nullCount: 0, children }),
    ),
    last: prev,
  };
}

/**
 * A record batch of `schema` and `data` that keeps `schema` itself: Arrow's constructor derives
 * an equal copy (cloning every field), and work keyed by schema object (the schema id, the
 * transfer to the writer thread) should find the one it has seen.
 */
export function batchOf(schema: Schema, data: Data<Struct>): RecordBatch {
  const batch = new RecordBatch(schema, data);
  (batch as { schema: Schema }).schema = schema;
  return batch;
}

/** Schemas that passed the checks of {@link checkLogBatch}, with the index of their `time` column. */
const checkedSchemas = new WeakMap<Schema, number>();

/** Checks that a batch can be logged; throws `ApiError('invalid_request')` naming what is wrong. */
export function checkLogBatch(batch: RecordBatch): void {
  const known = checkLogSchema(batch.schema);
  if ((batch.data.children[known]?.nullCount ?? 0) > 0) throw timeNullsError();
}

/**
 * Checks that rows of `schema` can be logged (a `time` column of type Timestamp(ms), no
 * dictionary-encoded column) and returns the index of its `time` column; throws
 * `ApiError('invalid_request')` naming what is wrong. Remembered per schema object.
 */
export function checkLogSchema(schema: Schema): number {
  const known = checkedSchemas.get(schema);
  if (known !== undefined) return known;
  const field = schema.fields.find((f) => f.name === 'time');
  if (field === undefined || !DataType.isTimestamp(field.type) || field.type.unit !== TimeUnit.MILLISECOND) {
    throw new ApiError(
      'invalid_request',
      `An inference log batch needs a "time" column of type Timestamp(ms); got ${field === undefined ? 'no such column' : String(field.type)}.`,
      { columns: schema.fields.map((f) => f.name) },
    );
  }
  if (schema.fields.some((f) => DataType.isDictionary(f.type))) {
    throw new ApiError(
      'invalid_request',
      'Dictionary-encoded columns cannot be logged; decode them before appending.',
      {
        columns: schema.fields.filter((f) => DataType.isDictionary(f.type)).map((f) => f.name),
      },
    );
  }
  const index = schema.fields.findIndex((f) => f.name === 'time');
  checkedSchemas.set(schema, index);
  return index;
}

function timeNullsError(): ApiError {
  return new ApiError(
    'invalid_request',
    'The "time" column of an inference log batch has nulls; every row needs a time.',
  );
}
