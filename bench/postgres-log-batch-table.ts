// The metadata columns and indexes of `inference_log_batches` (migration 0013), for the bench
// scripts that build its layouts side by side in tables of their own.

export const LOG_BATCH_META_COLUMNS = `pipeline_id INTEGER NOT NULL, seq BIGINT NOT NULL, schema_id TEXT COLLATE "C" NOT NULL,
  rows INTEGER NOT NULL, bytes INTEGER NOT NULL, min_time BIGINT NOT NULL, max_time BIGINT NOT NULL,
  node_id TEXT NOT NULL, created_at BIGINT NOT NULL`;

/** The indexes migration 0013 gives the batches table, on table `t`. */
export function logBatchIndexes(t: string): string {
  return `CREATE INDEX ON ${t} (pipeline_id, max_time, seq); CREATE INDEX ON ${t} (pipeline_id, min_time, seq);
   CREATE INDEX ON ${t} (created_at);`;
}
