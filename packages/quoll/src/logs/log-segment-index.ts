/** One segment file of a pipeline's inference log, as the index records it. */
export interface LogSegmentRecord {
  /** The pipeline whose rows the segment holds. */
  pipelineId: number;
  /** Sequence number within the pipeline, increasing with time; names the file `<seq>.arrows`. */
  seq: number;
  /** Hash of the Arrow schema of every row in the segment (see `schemaIdOf`). */
  schemaId: string;
  /** Complete rows in the file (as of the last index update). */
  rows: number;
  /** File size in bytes (as of the last index update). */
  bytes: number;
  /** `time` of the first row, epoch ms; `null` while the segment is empty. */
  minTime: number | null;
  /** `time` of the last row, epoch ms; `null` while the segment is empty. */
  maxTime: number | null;
  /** Whether the file is complete (ends with the Arrow end-of-stream marker) and takes no more rows. */
  sealed: boolean;
  /** When the segment was started, epoch ms. */
  createdAt: number;
}

/** What the writer records when it starts a segment. */
export interface NewLogSegment {
  pipelineId: number;
  seq: number;
  schemaId: string;
  createdAt: number;
}

/** New counters for an existing segment, written after its bytes are on disk. */
export interface LogSegmentUpdate {
  pipelineId: number;
  seq: number;
  rows: number;
  bytes: number;
  minTime: number | null;
  maxTime: number | null;
  sealed: boolean;
}

/**
 * The index of inference-log segment files: a storage port with domain-level methods only
 * (no driver types leak out). `SqliteLogSegmentIndex` implements it; a PostgreSQL store
 * would pass the same tests.
 */
export interface LogSegmentIndex {
  /** Records a new, empty, unsealed segment. */
  addSegment(segment: NewLogSegment): Promise<void>;
  /** Applies several counter updates at once (one transaction where the backend has them). */
  updateSegments(updates: readonly LogSegmentUpdate[]): Promise<void>;
  /** The segment `(pipelineId, seq)`, or `null`. */
  getSegment(pipelineId: number, seq: number): Promise<LogSegmentRecord | null>;
  /** Every segment of a pipeline, by `seq` in the given order (empty ones included). */
  listSegments(pipelineId: number, order: 'asc' | 'desc'): Promise<LogSegmentRecord[]>;
  /**
   * The non-empty segments of a pipeline whose `[minTime, maxTime]` meets `[start, end]`
   * (inclusive), by `seq` in the given order.
   */
  segmentsOverlapping(
    pipelineId: number,
    start: number,
    end: number,
    order: 'asc' | 'desc',
  ): Promise<LogSegmentRecord[]>;
  /** The newest `limit` segments of a pipeline, newest first. */
  newestSegments(pipelineId: number, limit: number): Promise<LogSegmentRecord[]>;
  /** Every unsealed segment of every pipeline (what crash recovery must scan). */
  unsealedSegments(): Promise<LogSegmentRecord[]>;
  /** Ids of every pipeline that has at least one segment. */
  pipelineIds(): Promise<number[]>;
  /**
   * The oldest sealed segment (smallest `maxTime`, then `seq`) that is not the newest segment
   * of its pipeline, of one pipeline or (with `null`) of all; `null` when there is none.
   * Retention deletes these first; the newest segment is kept so sequence numbers never restart.
   */
  oldestDeletableSegment(pipelineId: number | null): Promise<LogSegmentRecord | null>;
  /** Removes a segment's row (the caller removes the file). */
  deleteSegment(pipelineId: number, seq: number): Promise<void>;
  /** Sum of segment bytes, of one pipeline or (without an id) of all. */
  totalBytes(pipelineId?: number): Promise<number>;
}
