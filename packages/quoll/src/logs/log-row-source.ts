import type { RecordBatch, Schema, Table } from 'apache-arrow';

/** One leaf column of a {@link LogRowSource}: its typed-array kind and its elements per row. */
export interface LogRowLeaf {
  /** Typed-array kind of the values (index in `VIEW_TYPES`). */
  readonly kind: number;
  /** Elements per row (the product of its fixed-size list sizes; 1 for a flat column). */
  readonly width: number;
}

/**
 * Rows that write themselves into the log's staging buffers, with no Arrow table built for
 * them: an inference result of JSON records hands the log this instead of its table (which
 * it would build only for the log, with fresh typed arrays the staging then copies again).
 * The rows must be exactly those of {@link toTable}: same schema object, same values byte for
 * byte. When every column is fixed-width numbers without nulls ({@link leaves} not `null`)
 * the log store stages small ones (copies them at `append`) and keeps big ones (32 KiB and
 * more) until they are handed to its writer thread, where they write themselves into the
 * hand-off's arena in slices of rows; otherwise it logs {@link toTable}.
 */
export interface LogRowSource {
  readonly kind: 'log-row-source';
  /** The schema of {@link toTable}'s batches (shared by every source of one signature). */
  readonly schema: Schema;
  readonly numRows: number;
  /**
   * The leaf columns, depth first in field order as the staging's runs keep them; `null` when
   * a column is not fixed-width numbers (the rows are then logged as {@link toTable}).
   */
  readonly leaves: readonly LogRowLeaf[] | null;
  /** Bytes of column data (what `byteLength` of {@link toTable}'s one batch's data says). */
  readonly byteLength: number;
  /**
   * Writes leaf `index`'s values (`numRows × width` elements) into `target`, a view of that
   * leaf's kind and exactly that length (of a reused buffer: every element must be written).
   */
  writeLeaf(index: number, target: ArrayBufferView): void;
  /**
   * Like {@link writeLeaf}, a slice of rows at a time, for a big source (one of a million
   * rows written in one go held the request thread for tens to hundreds of milliseconds): each
   * call of the returned function writes the next `rows` rows of leaf `index` into `target`
   * (the whole leaf, as for {@link writeLeaf}); once every row is written, every element of
   * `target` is, with exactly the bytes {@link writeLeaf} writes. Optional: without it the
   * leaf is written by {@link writeLeaf} in one go.
   */
  leafWriter?(index: number, target: ArrayBufferView): (rows: number) => void;
  /** The rows as an Arrow table of one batch. */
  toTable(): Table;
  /**
   * Called once the log's staging has copied every row (at admission): the log reads the source
   * no more, so what it wrote from may be reused. Not called for a source the log keeps until
   * its writer takes it, nor for one refused before it was copied (an append refused for a later
   * batch may have called it: nothing reads the source after it either way). Optional.
   */
  copied?(): void;
}

/** Whether `rows` is a {@link LogRowSource} (not an Arrow table or batch). */
export function isLogRowSource(rows: unknown): rows is LogRowSource {
  return (rows as { kind?: unknown } | null)?.kind === 'log-row-source';
}

/** What an append queues: record batches, or rows that write themselves into the staging. */
export type LogAppendBatch = RecordBatch | LogRowSource;
