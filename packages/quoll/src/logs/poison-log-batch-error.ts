import type { SetAsideReport } from './log-batch-transfer.js';

/**
 * Rows a log writer cannot write because of what they hold (a batch that cannot be merged,
 * re-timed or encoded, or that the database refuses as data), not because the disk or the
 * database failed: written again they fail again. The writer then writes the pipeline's batches
 * one at a time and sets aside only those that fail this way (see `docs/inference-logs.md`,
 * "A batch the writer cannot write").
 */
export class PoisonLogBatchError extends Error {
  /** The pipeline whose rows failed. */
  readonly pipelineId: number;

  constructor(pipelineId: number, cause: unknown) {
    super(
      `rows of pipeline ${pipelineId} cannot be written: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'PoisonLogBatchError';
    this.pipelineId = pipelineId;
  }
}

/**
 * Whether `err` is a failure to allocate memory (V8's `RangeError: Array buffer allocation
 * failed`, Node's `ERR_MEMORY_ALLOCATION_FAILED`): transient, the process's state and not the
 * rows' fault, so retried with backoff like a disk error, never set aside.
 */
export function isAllocationFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if ((err as NodeJS.ErrnoException).code === 'ERR_MEMORY_ALLOCATION_FAILED') return true;
  return err instanceof RangeError && /allocation failed|out of memory/i.test(err.message);
}

/**
 * Runs a step that only reads and rebuilds rows (no I/O): whatever it throws is the rows' own
 * fault, and is thrown again as a {@link PoisonLogBatchError} of `pipelineId` — except a
 * failure to allocate memory ({@link isAllocationFailure}), thrown as is (retried, not set aside).
 */
export function rowStep<T>(pipelineId: number, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof PoisonLogBatchError || isAllocationFailure(err)) throw err;
    throw new PoisonLogBatchError(pipelineId, err);
  }
}

/** Rows a log writer set aside (see {@link PoisonLogBatchError}): never written, told once. */
export interface LogQuarantine {
  /** The pipelines whose rows they are (several only when a whole hand-off could not be read). */
  pipelineIds: number[];
  /** How many rows; `null` when a whole hand-off could not be read. */
  rows: number | null;
  /** Why. */
  error: Error;
}

/** What a store tells `onQuarantine` of a writer thread's report (the error rebuilt with its stack). */
export function logQuarantineOf(report: SetAsideReport): LogQuarantine {
  const error = new Error(report.message);
  error.stack = report.stack;
  return { pipelineIds: report.pipelineIds, rows: report.rows, error };
}

/** The default of a log store's `onQuarantine`: one line on stderr. */
export function printLogQuarantine(q: LogQuarantine): void {
  process.stderr.write(
    `quoll: inference log set aside ${q.rows === null ? 'a hand-off' : `${q.rows} rows`} of pipeline${q.pipelineIds.length === 1 ? '' : 's'} ${q.pipelineIds.join(', ')} that cannot be written (the other rows are written): ${q.error.stack ?? q.error.message}\n`,
  );
}
