import { RecordBatch } from 'apache-arrow';
import type { Data, Schema, Struct } from 'apache-arrow';

/**
 * A record batch of `schema` and `data` as they are. Arrow's constructor re-derives an equal
 * schema (cloning every field) and rebuilds the struct `Data` for columns of unequal length;
 * a result's columns all have the batch's length, so that work (≈ 4 µs per request, measured
 * in-process) only costs, and the shared schema must stay the batch's own anyway: the table
 * and the log writer recognise it by identity. Same prototype and fields as a constructed
 * batch (`schema`, `data`, `_metadata`). Its columns must all have `data`'s length.
 *
 * Its own module (apache-arrow only) so that the decode worker can use it without loading
 * inference-result.ts and, through it, the log writer's modules.
 */
export function resultBatch(schema: Schema, data: Data<Struct>): RecordBatch {
  const batch = Object.create(RecordBatch.prototype) as RecordBatch & {
    schema: Schema;
    data: Data<Struct>;
    _metadata: Map<string, string>;
  };
  batch.schema = schema;
  batch.data = data;
  batch._metadata = new Map();
  return batch;
}
