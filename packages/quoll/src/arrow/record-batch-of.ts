import { RecordBatch } from 'apache-arrow';
import type { Data, Schema, Struct } from 'apache-arrow';

/**
 * A record batch of `schema` and `data` as they are. Arrow's constructor re-derives an equal
 * schema (cloning every field) and rebuilds the struct `Data` for columns of unequal length;
 * where the columns all have the batch's length (an inference result, a vetted body's batch,
 * a checked log batch) that work (≈ 4 µs per request, measured in-process) only costs, and the
 * shared schema must stay the batch's own anyway: tables and the log writer recognise it by
 * identity. Same prototype and fields as a constructed batch (`schema`, `data`, `_metadata`).
 * Its columns must all have `data`'s length.
 *
 * Apache-arrow only, below every domain: the decode worker, the inference result and the log
 * checks use it without loading one another's modules.
 */
export function recordBatchOf(schema: Schema, data: Data<Struct>): RecordBatch {
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
