import type { PackedBatches, SetAsideReport } from './log-batch-transfer.js';
import type { LogSegmentIndex } from './log-segment-index.js';

/** What the writer thread is started with (`workerData`). */
export interface LogWriterSettings {
  /** Root directory of the segment files. */
  dir: string;
  syncIntervalMs: number;
  segmentMaxRows: number;
  segmentMaxBytes: number;
  maxBytesPerPipeline: number;
  maxBytesTotal: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
  stopAttempts: number;
  /**
   * Highest append seq an earlier writer thread of the store confirmed written (`0` for the
   * first): the thread counts everything up to it as taken, written and durable (the store
   * starts it only after recovery has fsynced what the dead one left), so stop and flush do
   * not wait for those appends.
   */
  startSeq: number;
}

/** An index method the writer thread calls through the owning thread. */
export type IndexMethod = keyof LogSegmentIndex;

/** Messages from the owning thread to the writer thread. */
export type ToWriter =
  /**
   * Appends taken from the queue, in arrival order: the pipeline of each, and their batches
   * (one group per append, buffers transferred with the message). `seq` is the highest
   * append seq among them.
   */
  | { type: 'items'; seq: number; pipelineIds: number[]; body: PackedBatches }
  /** Sync soon: a caller waits until every append up to `seq` is durable. */
  | { type: 'flush'; seq: number }
  /** Once every append up to `lastSeq` has come: write, sync and seal everything, then end. */
  | { type: 'stop'; lastSeq: number }
  | { type: 'index-result'; id: number; ok: true; value: unknown }
  | { type: 'index-result'; id: number; ok: false; message: string };

/** New batch-index entries of a segment being written (what queries need to read it). */
export interface SegmentProgress {
  pipelineId: number;
  seq: number;
  schemaId: string;
  /** Sent once, with the segment's first progress. */
  schemaMessage: Uint8Array | null;
  /** Entries from this index on (earlier ones were sent before). */
  from: number;
  /** `from`'s entry and the ones after it, 5 numbers each: offset, length, rows, firstTime, lastTime. */
  entries: Float64Array;
}

/** Messages from the writer thread to the owning thread. */
export type FromWriter =
  /**
   * Idle and ready for appends. Everything up to `writtenSeq` has reached the OS; `segments`
   * says what was added to the open segments since the last report; `arenas` are the arenas of
   * `items` messages the writer no longer reads (transferred back, for the packer to reuse).
   */
  | { type: 'ready'; writtenSeq: number; segments: SegmentProgress[]; arenas: ArrayBuffer[] }
  /** Everything up to `seq` is fsynced and indexed; `segments` as in `ready`. */
  | { type: 'durable'; seq: number; segments: SegmentProgress[] }
  /** A write failed; the writer retries in `retryInMs` (`null`: it gives up, at stop only). */
  | { type: 'write-failed'; message: string; stack: string; attempt: number; retryInMs: number | null }
  /** Writes succeed again after failures. */
  | { type: 'recovered' }
  /**
   * Rows set aside, never to be written: a batch that failed by itself (it cannot be merged,
   * re-timed or encoded), or a whole message that could not be unpacked (`rows` `null`: unknown).
   */
  | ({ type: 'quarantined' } & SetAsideReport)
  | { type: 'index-call'; id: number; method: IndexMethod; args: unknown[] }
  /** Stopped: everything is sealed (`failed`: writes still failed at stop, what is unwritten is lost). */
  | { type: 'stopped'; failed: boolean };
