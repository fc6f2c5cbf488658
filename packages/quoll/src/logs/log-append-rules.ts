import { Table } from 'apache-arrow';
import type { RecordBatch, Schema } from 'apache-arrow';
import { ApiError } from '../errors/index.js';
import { checkLogBatch, checkLogRowSource, checkLogSchema, rowsRefused } from './log-batch-checks.js';
import { isLogRowSource } from './log-row-source.js';
import type { LogAppendBatch, LogRowLeaf, LogRowSource } from './log-row-source.js';

/**
 * What an `append` takes: the non-empty batches of `rows`, each checked, and their row count.
 * A {@link LogRowSource} is kept as it is when every column is fixed-width numbers (the
 * staging copies it when it is small, and keeps it for the packer when it is big); otherwise
 * its table's batches are taken.
 * Throws `ApiError('invalid_request')` for a bad pipeline id or schema, and
 * `ApiError('log_rows_refused')` for rows that do not match their schema.
 */
export function admitLogRows(
  pipelineId: number,
  rows: Table | RecordBatch | LogRowSource,
): { batches: LogAppendBatch[]; rows: number } {
  if (!Number.isSafeInteger(pipelineId) || pipelineId < 1) {
    throw new ApiError('invalid_request', `A pipeline id must be a positive integer; got ${pipelineId}.`, {
      pipelineId,
    });
  }
  if (isLogRowSource(rows)) {
    // Big or small, a fixed-width source is never turned into a table here (for a million rows
    // that took 25–190 ms of the request thread): small ones are copied at once, big ones
    // write themselves into the hand-off's arena in slices.
    // Read once: a getter could answer the staging and the packer something else later. A getter
    // that throws refuses these rows alone (`log_rows_refused`, counted), as a throwing `toTable()`
    // does, not the raw error (which answered `internal_error`; review of 5 December, finding 1).
    let schema: Schema;
    let numRows: unknown;
    let leaves: readonly LogRowLeaf[] | null;
    let byteLength: unknown;
    let leafWriter: unknown;
    let copied: unknown;
    try {
      schema = rows.schema;
      numRows = rows.numRows;
      leaves = rows.leaves;
      byteLength = rows.byteLength;
      // Read here with the others: the packer is handed the writer seen at admission (finding 3).
      // (As a value to call on the source later, so typed as what it is at run time.)
      leafWriter = (rows as { leafWriter?: unknown }).leafWriter;
      copied = (rows as { copied?: unknown }).copied;
    } catch (err) {
      throw rowsRefused(`reading them failed: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    if (leaves !== null) {
      // A count that is not a whole number of rows (NaN from a buggy result's arithmetic) would
      // leave the append queue's count NaN, and every later append waiting forever.
      if (typeof numRows !== 'number' || !Number.isSafeInteger(numRows) || numRows < 0)
        throw rowsRefused(`a row count of ${String(numRows)}`);
      if (typeof byteLength !== 'number' || !Number.isSafeInteger(byteLength) || byteLength < 0)
        throw rowsRefused(`a byte length of ${String(byteLength)}`);
      if (numRows === 0) return { batches: [], rows: 0 };
      checkLogSchema(schema);
      let checked: readonly LogRowLeaf[];
      try {
        checked = checkLogRowSource(schema, leaves);
      } catch (err) {
        // Its own refusals pass as they are; a leaf's getter that throws refuses the rows too.
        if (err instanceof ApiError) throw err;
        throw rowsRefused(
          `reading their leaves failed: ${err instanceof Error ? err.message : String(err)}`,
          err,
        );
      }
      if (leafWriter !== undefined && typeof leafWriter !== 'function')
        throw rowsRefused(`a leafWriter that is not a function (${typeof leafWriter})`);
      if (copied !== undefined && typeof copied !== 'function')
        throw rowsRefused(`a copied hook that is not a function (${typeof copied})`);
      return {
        batches: [
          new AdmittedRowSource(
            rows,
            schema,
            numRows,
            checked,
            byteLength,
            leafWriter as LeafWriter | undefined,
            copied as ((this: LogRowSource) => void) | undefined,
          ),
        ],
        rows: numRows,
      };
    }
    let table: Table;
    try {
      table = rows.toTable();
    } catch (err) {
      throw rowsRefused(
        `their table could not be built: ${err instanceof Error ? err.message : String(err)}`,
        err,
      );
    }
    return admitLogRows(pipelineId, table);
  }
  const batches = (rows instanceof Table ? rows.batches : [rows]).filter((b) => b.numRows > 0);
  for (const b of batches) checkLogBatch(b);
  return { batches, rows: batches.reduce((sum, b) => sum + b.numRows, 0) };
}

/** A source's `leafWriter`, as a function called on the source. */
type LeafWriter = (this: LogRowSource, index: number, target: ArrayBufferView) => (rows: number) => void;

/**
 * A source as admitted: its schema, row count and byte length as read once at admission, and its
 * schema's leaves (equal to the ones it gave, checked, shared per schema), so that a getter
 * cannot answer the staging and the packer something else later. One plain object per append
 * (it replaced a frozen copy of the source with its leaves and three closures, ≈ 0.75 KiB a
 * request of the HTTP thread at JSON batch 100).
 */
class AdmittedRowSource implements LogRowSource {
  readonly kind = 'log-row-source' as const;
  readonly schema: Schema;
  readonly numRows: number;
  readonly leaves: readonly LogRowLeaf[];
  readonly byteLength: number;
  readonly leafWriter: ((index: number, target: ArrayBufferView) => (rows: number) => void) | undefined;
  readonly #source: LogRowSource;
  /** The source's `leafWriter` as read at admission (called on the source, not read again). */
  readonly #sourceLeafWriter: LeafWriter | undefined;
  /** The source's `copied` as read at admission. */
  readonly #sourceCopied: ((this: LogRowSource) => void) | undefined;

  constructor(
    source: LogRowSource,
    schema: Schema,
    numRows: number,
    leaves: readonly LogRowLeaf[],
    byteLength: number,
    leafWriter: LeafWriter | undefined,
    copied: ((this: LogRowSource) => void) | undefined,
  ) {
    this.#source = source;
    this.schema = schema;
    this.numRows = numRows;
    this.leaves = leaves;
    this.byteLength = byteLength;
    // Whether the source writes in slices, and with what, is read once too (the packer asks per leaf).
    this.#sourceLeafWriter = leafWriter;
    this.leafWriter = leafWriter === undefined ? undefined : this.#leafWriter;
    this.#sourceCopied = copied;
  }

  /** Tells the source the staging copied it (when it has a `copied` hook). */
  copied(): void {
    this.#sourceCopied?.call(this.#source);
  }

  writeLeaf(index: number, target: ArrayBufferView): void {
    this.#source.writeLeaf(index, target);
  }

  /** `leafWriter` when the source has one: a method (called on this object), not a closure per append. */
  #leafWriter(index: number, target: ArrayBufferView): (rows: number) => void {
    return this.#sourceLeafWriter!.call(this.#source, index, target);
  }

  toTable(): Table {
    return this.#source.toTable();
  }
}

/** What a stopped log store answers: `shutting_down`, or (`failure` given) the write failure that stopped it. */
export function logStoreClosedError(failure: Error | null): ApiError {
  return failure !== null
    ? new ApiError(
        'internal_error',
        `The inference log writer stopped after a write failure (${failure.message}); see the server log.`,
      )
    : new ApiError('shutting_down', 'The inference log store is stopped and takes no more rows.');
}

/** What an append refused after waiting `waitMs` for room while the writer fails (`down`) answers. */
export function logStoreUnavailableError(down: Error | null, waitMs: number, state: string): ApiError {
  return new ApiError(
    'log_store_unavailable',
    `The inference log cannot be written (${down?.message ?? 'unknown error'}) and its queue stayed full for ${waitMs} ms, so this request's rows were not logged; the writer keeps retrying (see GET /v1/health). Retry shortly.`,
    { inferenceLogs: state },
  );
}
