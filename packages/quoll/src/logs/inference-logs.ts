import type { RecordBatch, Table } from 'apache-arrow';
import type { InferenceLogStoreState } from './inference-log-store.js';
import type { LogRowSource } from './log-row-source.js';
import type { LogPage, LogQuery } from './query-log-page.js';

/**
 * The inference log as the server uses it: a port with two implementations, the embedded
 * home's segment files ({@link InferenceLogStore}) and a cluster's PostgreSQL tables
 * (`PostgresInferenceLogStore`), both with the same query semantics.
 */
export interface InferenceLogs {
  /** The writer's state (on `/v1/health`). */
  readonly state: InferenceLogStoreState;
  /** The write failure the writer is retrying after, or `null` while writes succeed. */
  readonly lastError: Error | null;
  /** Rows queued and not yet taken by the writer. */
  readonly queuedRows: number;
  /** Appends refused alone with `log_rows_refused` (their rows could not be taken) since the store opened. */
  readonly refusedAppends: number;
  /**
   * Batches the writer set aside since the store opened because they cannot be written by
   * themselves (each told to `onQuarantine`, on stderr by default); every other row is written.
   */
  readonly quarantinedBatches: number;
  /**
   * Queues rows (a table, one record batch or a {@link LogRowSource}, with a `time`
   * Timestamp(ms) column) for the pipeline's log; resolves once queued (waits while the queue
   * is full). Rows that cannot be taken (they do not match their schema, a row source throws)
   * are refused alone with `log_rows_refused`: the appends before and after them go on.
   * Rows queued at once answer `LOG_APPEND_ADMITTED` (already resolved: nothing to await).
   */
  append(pipelineId: number, rows: Table | RecordBatch | LogRowSource): Promise<void>;
  /** Resolves once every row appended so far through this store is stored. */
  flush(): Promise<void>;
  /** Reads one page of a pipeline's log (see {@link LogQuery} for the defaults). */
  query(pipelineId: number, query?: LogQuery): Promise<LogPage>;
  /** Bytes of stored log data, of one pipeline or of all. */
  storedBytes(pipelineId?: number): Promise<number>;
  /** Writes everything queued, then stops taking appends. Safe to call twice. */
  stop(): Promise<void>;
}
