import type { PackedBatches, SetAsideReport } from '../../logs/index.js';

/** What the PostgreSQL inference-log writer thread is started with (`workerData`). */
export interface PostgresLogWriterSettings {
  /** The database (the thread opens a connection of its own for its writes, and one for its vacuums). */
  url: string;
  /** Schema the tables live in; `null`: the connection's default. */
  schema: string | null;
  /** This node's id, recorded on every batch it stores. */
  nodeId: string;
  maxBytesPerPipeline: number;
  maxBytesTotal: number;
  /** Longest a retention step waits for a lock another transaction holds (see `LogRetentionCaps`). */
  retentionLockWaitMs: number;
  /**
   * First wait before a retention pass that left work due (the total cap's lock taken, a head
   * held, a step failed) is tried again without a write; doubles up to `maxRetentionRetryDelayMs`.
   */
  retentionRetryDelayMs: number;
  maxRetentionRetryDelayMs: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
  stopAttempts: number;
  /** Highest append seq already committed (by an earlier writer thread of the store): written from the start. */
  confirmedSeq: number;
  /** Tests only: the statement run as the vacuum after trims (default `VACUUM_LOG_BATCHES`). */
  vacuumStatement?: string;
}

/** Messages from the owning thread to the writer thread. */
export type ToPostgresLogWriter =
  /**
   * Appends taken from the queue, in arrival order (the same packing as the embedded store's
   * writer thread): one group of batches per pipeline. `seq` is the highest append seq.
   */
  | { type: 'items'; seq: number; pipelineIds: number[]; body: PackedBatches }
  /** Once every append up to `lastSeq` has come and is stored: close the connection and end. */
  | { type: 'stop'; lastSeq: number };

/** Messages from the writer thread to the owning thread. */
export type FromPostgresLogWriter =
  /**
   * Idle and ready for appends; everything up to `writtenSeq` is committed. `arenas` are the
   * arenas of `items` messages the writer no longer reads (transferred back, for reuse).
   */
  | { type: 'ready'; writtenSeq: number; arenas: ArrayBuffer[] }
  /**
   * Everything up to `writtenSeq` is committed: sent as soon as a write's commit returns, before
   * the retention pass after it, so that a thread that dies during that pass is not given those
   * rows again, to store them twice. (`ready`, which flushes wait for, still comes after the
   * pass; it passes over the heads other connections hold rather than wait for them.)
   */
  | { type: 'committed'; writtenSeq: number }
  /** A write failed; the writer retries in `retryInMs` (`null`: it gives up, at stop only). */
  | { type: 'write-failed'; message: string; stack: string; attempt: number; retryInMs: number | null }
  /** Writes succeed again after failures. */
  | { type: 'recovered' }
  /**
   * Rows set aside, never to be stored: a batch that failed by itself (it cannot be merged,
   * re-timed or encoded, or PostgreSQL refused it as data), or a whole message that could not be
   * unpacked (`rows` `null`: unknown).
   */
  | ({ type: 'quarantined' } & SetAsideReport)
  /** The vacuum after retention trims failed (nothing else changes: the rows are stored). */
  | { type: 'vacuum-failed'; message: string }
  /** Stopped (`failed`: writes still failed at stop, what is unwritten is lost). */
  | { type: 'stopped'; failed: boolean };
