import { DataType } from 'apache-arrow';
import type { Data, RecordBatch, Schema } from 'apache-arrow';
import { leaseOf } from '../threads/index.js';
import type { BufferLease } from '../threads/index.js';
import { isLogRowSource } from './log-row-source.js';
import type { LogAppendBatch, LogRowLeaf, LogRowSource } from './log-row-source.js';
import { schemaIdOf } from './schema-id.js';

/** The typed-array kinds a packed buffer names by index (shared with the packer and unpacker). */
export const VIEW_TYPES = [
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  Uint8ClampedArray,
] as const;

export type View = InstanceType<(typeof VIEW_TYPES)[number]>;

/** Each typed-array constructor's index in {@link VIEW_TYPES}. */
const VIEW_KINDS = new Map<unknown, number>(VIEW_TYPES.map((T, kind) => [T, kind]));

/** The index of a typed array's kind in {@link VIEW_TYPES}. */
export function kindOf(v: ArrayBufferView): number {
  const kind = VIEW_KINDS.get(v.constructor) ?? VIEW_TYPES.findIndex((T) => v instanceof T);
  if (kind === -1) throw new Error(`log writer: cannot move an Arrow buffer of type ${v.constructor.name}`);
  return kind;
}

/** Batches whose schema has only mergeable columns, remembered per schema object. */
const mergeableSchemas = new WeakMap<Schema, boolean>();

/** Whether a type's values can be merged by copying them back to back: fixed-width numbers, timestamps and fixed-size lists of those. */
function mergeableType(type: DataType): boolean {
  if (DataType.isFixedSizeList(type)) {
    const child = type.children[0] as { type: DataType } | undefined;
    return child !== undefined && mergeableType(child.type);
  }
  return DataType.isInt(type) || DataType.isFloat(type) || DataType.isTimestamp(type);
}

function withoutNulls(d: Data): boolean {
  if (d.nullCount !== 0) return false;
  for (const c of d.children) if (!withoutNulls(c)) return false;
  return true;
}

/**
 * Whether a batch can be merged with its neighbours of the same schema: every column
 * fixed-width (numbers, timestamps, fixed-size lists of those) and without nulls, which is
 * what inference results are.
 */
export function mergeable(batch: RecordBatch): boolean {
  let typesOk = mergeableSchemas.get(batch.schema);
  if (typesOk === undefined) {
    typesOk = batch.schema.fields.every((f) => mergeableType(f.type as DataType));
    mergeableSchemas.set(batch.schema, typesOk);
  }
  return typesOk && batch.data.children.every(withoutNulls);
}

/** One leaf column of a {@link StagedRun}: its values back to back. */
export interface StagedLeaf {
  /** Typed-array kind of the values (index in {@link VIEW_TYPES}). */
  readonly kind: number;
  readonly bytesPerElement: number;
  /** The bytes copied so far are `buf[0, used)`; the rest is room. */
  buf: Uint8Array;
  used: number;
}

/**
 * Consecutive mergeable batches of one pipeline and one schema, copied: each leaf column's
 * values back to back in a reused buffer, the batches themselves not kept. The packer writes
 * it as one batch (the layout of its merged batches).
 */
export class StagedRun {
  readonly schema: Schema;
  /** The schema's id (batches of equal ids merge, whatever their `Schema` object). */
  readonly id: string;
  rows = 0;
  /** Bytes of column data of the batches merged (the caps count these, as the packer does). */
  bytes = 0;
  /** Leaf columns, depth first in field order. */
  readonly leaves: StagedLeaf[];

  constructor(schema: Schema, id: string, leaves: StagedLeaf[]) {
    this.schema = schema;
    this.id = id;
    this.leaves = leaves;
  }
}

/**
 * What a pipeline's group holds: staged runs, and the batches that cannot merge or are big and
 * the big row sources (kept as they are: the packer copies them, or has them write themselves,
 * into the hand-off's arena in slices).
 */
export type StagedEntry = StagedRun | RecordBatch | LogRowSource;

/** The rows of the appends admitted since the last hand-off, copied, one group per pipeline in arrival order. */
export class StagedRows {
  readonly groups = new Map<number, StagedEntry[]>();
  /** The highest append seq among them (set when handed over). */
  seq = 0;
  rows = 0;
}

/** Limits of {@link LogStaging}'s runs: the writer's caps, as for the packer's merges. */
export interface LogStagingLimits {
  maxRows: number;
  maxBytes: number;
}

/**
 * A batch with this many bytes of column data or more is kept as it is (until the writer
 * confirms it), not copied: copying it costs more than its few objects surviving the
 * young-generation collections until then, and the packer copies it once anyway (at 1000
 * rows of 88 B, staging it too cost ~20 µs more per append and twice the GC time, in process).
 */
export const STAGE_MAX_BYTES = 32 * 1024;
/** Smallest leaf buffer allocated. */
const MIN_LEAF_BYTES = 4 * 1024;
/** Free leaf buffers kept for reuse, at most this many bytes in all. */
const POOL_MAX_BYTES = 32 * 1024 * 1024;
/** A leaf buffer above this is not kept (it carried a backlog). */
const POOLED_LEAF_MAX_BYTES = 8 * 1024 * 1024;
/**
 * A new run's leaf starts at most this big (bigger ones grow as rows come): the biggest a
 * pooled buffer can be, so that a busy pipeline's runs start in buffers that come back.
 */
const MAX_HINT_BYTES = POOLED_LEAF_MAX_BYTES;
/**
 * Each run released takes this share off its pipeline's hints before its own sizes raise them
 * again: the hints follow the biggest recent runs and come down over some dozens of runs once a
 * pipeline's traffic drops.
 */
const HINT_DECAY = 1 / 8;
/**
 * Room a run's leaf starts with over the biggest recent run's, as a share of it: hand-offs
 * vary with the load, and one a little bigger than the last must not copy a full run's rows
 * into a buffer twice the size (at Arrow 100, ~1 MB a hand-off just under a 1 MiB buffer).
 */
const HINT_HEADROOM = 1 / 2;
/** Free leaf buffers kept, at most (the pool is searched per new leaf). */
const POOL_MAX_BUFFERS = 256;

/**
 * Copies each admitted append's rows, as it is admitted, into reused per-leaf buffers
 * ({@link StagedRun}), so that nothing of a request (its result table, Arrow objects, typed
 * arrays) is kept until the hand-off and until the writer confirms the rows: on the request
 * thread those survived every young-generation collection and were copied, promoted and
 * collected again. The buffers of rows handed over stay with the hand-off until the writer
 * confirms them (a restarted writer is given them again), then come back through
 * {@link release}.
 */
export class LogStaging {
  readonly #limits: LogStagingLimits;
  #current = new StagedRows();
  readonly #pool: ArrayBuffer[] = [];
  #pooledBytes = 0;
  /**
   * Per pipeline and schema id, the bytes each leaf of its recent runs held, their biggest with
   * {@link HINT_HEADROOM} more (each run released takes {@link HINT_DECAY} off and raises it to
   * its own): the next run starts that big, up to {@link MAX_HINT_BYTES}, so that it does not
   * copy its rows into bigger and bigger buffers as it fills. Not the last run's alone: a hand-off of more rows than a run
   * holds ends in a short run (at Arrow 100: 16 384 rows, then the rest), and the next full run
   * would grow from its size again, every hand-off. Per pipeline, so that many quiet pipelines
   * of one model do not each start as big as the busiest.
   */
  readonly #hints = new Map<string, number[]>();
  /** The length of each leaf of the run an append merges into, before it (restored if the append fails). */
  readonly #usedBefore: number[] = [];

  constructor(limits: LogStagingLimits) {
    this.#limits = { maxRows: Math.max(1, limits.maxRows), maxBytes: Math.max(1, limits.maxBytes) };
  }

  /** Rows staged since the last {@link take}. */
  get stagedRows(): number {
    return this.#current.rows;
  }

  /** Free buffers kept for reuse (for tests and diagnostics). */
  get pooledBuffers(): number {
    return this.#pool.length;
  }

  /**
   * Copies the batches of one append (non-empty, checked) into the pipeline's group (those of
   * {@link STAGE_MAX_BYTES} or more, or that cannot merge, are kept as they are), all or
   * nothing: when a copy fails (a buffer cannot be allocated, a column cannot be read) what
   * this append staged is rolled back, each leaf of the run it was merging into keeps its
   * length (so the run's columns stay aligned), and the error is thrown to the caller.
   */
  add(pipelineId: number, batches: readonly LogAppendBatch[]): void {
    const current = this.#current;
    let group = current.groups.get(pipelineId);
    const created = group === undefined;
    if (group === undefined) {
      group = [];
      current.groups.set(pipelineId, group);
    }
    // Only the group's last run can be merged into; runs after it are new.
    const entries = group.length;
    const last = group.at(-1);
    const run = last instanceof StagedRun ? last : null;
    const runRows = run?.rows ?? 0;
    const runBytes = run?.bytes ?? 0;
    // Reused, so that an append allocates nothing here.
    const used = this.#usedBefore;
    used.length = 0;
    if (run !== null) for (const leaf of run.leaves) used.push(leaf.used);
    const rows = current.rows;
    try {
      this.#add(group, pipelineId, batches);
    } catch (err) {
      for (const entry of group.splice(entries))
        if (entry instanceof StagedRun)
          for (const leaf of entry.leaves) this.#free(leaf.buf.buffer as ArrayBuffer);
        else if (!isLogRowSource(entry)) releaseLeases(entry);
      if (run !== null) {
        run.rows = runRows;
        run.bytes = runBytes;
        run.leaves.forEach((leaf, i) => (leaf.used = used[i]!));
      }
      if (created) current.groups.delete(pipelineId);
      current.rows = rows;
      throw err;
    }
  }

  #add(group: StagedEntry[], pipelineId: number, batches: readonly LogAppendBatch[]): void {
    const current = this.#current;
    for (const batch of batches) {
      current.rows += batch.numRows;
      if (isLogRowSource(batch)) {
        // Admitted only when fixed-width (`admitLogRows`): anything else is refused (and rolled
        // back by `add`), never staged as a run without columns.
        const leaves = batch.leaves;
        const size = batch.byteLength;
        if (leaves === null)
          throw new Error('A log row source is staged only when admitLogRows admitted it (fixed-width).');
        if (size >= STAGE_MAX_BYTES) {
          // Kept until the writer confirms it: the packer has it write its rows into the
          // arena a slice at a time (and again for a restarted writer), no table built for it.
          group.push(batch);
          continue;
        }
        const id = schemaIdOf(batch.schema);
        const run = this.#runFor(group, id, batch.numRows, size, () =>
          this.#newSourceRun(batch.schema, leaves, id, this.#hints.get(`${pipelineId}:${id}`)),
        );
        this.#copySource(run, batch, leaves);
        // Read no more (a throw refuses the append, as a source that throws while copied).
        batch.copied?.();
        run.rows += batch.numRows;
        run.bytes += size;
        continue;
      }
      const size = batch.data.byteLength;
      if (size >= STAGE_MAX_BYTES || !mergeable(batch)) {
        // Kept as it is until the writer confirms it: buffers another thread lent (a model
        // worker's echoed input columns) must not go back to it before then.
        retainLeases(batch);
        group.push(batch);
        continue;
      }
      const id = schemaIdOf(batch.schema);
      const run = this.#runFor(group, id, batch.numRows, size, () =>
        this.#newRun(batch, id, this.#hints.get(`${pipelineId}:${id}`)),
      );
      this.#copy(run, batch);
      run.rows += batch.numRows;
      run.bytes += size;
    }
  }

  /** The group's last run when rows of schema `id` fit in it (the writer's caps), else a new one (`create`). */
  #runFor(group: StagedEntry[], id: string, rows: number, bytes: number, create: () => StagedRun): StagedRun {
    const last = group.at(-1);
    if (
      last instanceof StagedRun &&
      last.id === id &&
      last.rows + rows <= this.#limits.maxRows &&
      last.bytes + bytes <= this.#limits.maxBytes
    )
      return last;
    const run = create();
    group.push(run);
    return run;
  }

  /** The rows staged since the last call; what comes next is staged apart. */
  take(): StagedRows {
    const taken = this.#current;
    this.#current = new StagedRows();
    return taken;
  }

  /** Buffers of rows the writer confirmed: later runs reuse them. */
  release(staged: StagedRows): void {
    for (const [pipelineId, group] of staged.groups)
      for (const entry of group) {
        if (!(entry instanceof StagedRun)) {
          if (!isLogRowSource(entry)) releaseLeases(entry);
          continue;
        }
        const key = `${pipelineId}:${entry.id}`;
        const before = this.#hints.get(key);
        this.#hints.set(
          key,
          entry.leaves.map((l, i) => {
            const kept = before?.[i] ?? 0;
            const wanted = l.used + Math.ceil(l.used * HINT_HEADROOM);
            return Math.min(Math.max(wanted, kept - Math.ceil(kept * HINT_DECAY)), MAX_HINT_BYTES);
          }),
        );
        for (const leaf of entry.leaves) {
          this.#free(leaf.buf.buffer as ArrayBuffer);
          leaf.buf = EMPTY;
          leaf.used = 0;
        }
      }
    staged.groups.clear();
  }

  /**
   * Takes `entries` out of rows handed over (rows that could not be read when they were packed:
   * they will never be written), letting go of what was held for them.
   */
  drop(staged: StagedRows, entries: readonly StagedEntry[]): void {
    const gone = new Set(entries);
    for (const [pipelineId, group] of staged.groups) {
      const kept: StagedEntry[] = [];
      for (const entry of group) {
        if (!gone.has(entry)) {
          kept.push(entry);
          continue;
        }
        if (entry instanceof StagedRun) {
          staged.rows -= entry.rows;
          for (const leaf of entry.leaves) this.#free(leaf.buf.buffer as ArrayBuffer);
          continue;
        }
        staged.rows -= entry.numRows;
        if (!isLogRowSource(entry)) releaseLeases(entry);
      }
      if (kept.length === 0) staged.groups.delete(pipelineId);
      else staged.groups.set(pipelineId, kept);
    }
  }

  #newRun(batch: RecordBatch, id: string, hints: number[] | undefined): StagedRun {
    const leaves: StagedLeaf[] = [];
    const visit = (d: Data): void => {
      if (DataType.isFixedSizeList(d.type)) {
        visit(d.children[0] as Data);
        return;
      }
      const values = d.values as View;
      leaves.push({
        kind: kindOf(values),
        bytesPerElement: values.BYTES_PER_ELEMENT,
        buf: new Uint8Array(this.#acquire(hints?.[leaves.length] ?? 0)),
        used: 0,
      });
    };
    for (const column of batch.data.children) visit(column);
    return new StagedRun(batch.schema, id, leaves);
  }

  /** A run for rows of a source's schema, with its leaves' kinds. */
  #newSourceRun(
    schema: Schema,
    sourceLeaves: readonly LogRowLeaf[],
    id: string,
    hints: number[] | undefined,
  ): StagedRun {
    const leaves: StagedLeaf[] = sourceLeaves.map((leaf, i) => ({
      kind: leaf.kind,
      bytesPerElement: VIEW_TYPES[leaf.kind]!.BYTES_PER_ELEMENT,
      buf: new Uint8Array(this.#acquire(hints?.[i] ?? 0)),
      used: 0,
    }));
    return new StagedRun(schema, id, leaves);
  }

  /** Has the source write its rows' values at the end of each leaf of the run. */
  #copySource(run: StagedRun, source: LogRowSource, leaves: readonly LogRowLeaf[]): void {
    const n = source.numRows;
    // Runs are per schema, and a source's leaves were checked against its schema when it was
    // admitted; rows of other leaves would shift the run's columns against each other.
    if (leaves.length !== run.leaves.length)
      throw new Error(`a row source of ${leaves.length} leaves cannot join a run of ${run.leaves.length}`);
    for (let k = 0; k < leaves.length; k++) {
      const elements = n * leaves[k]!.width;
      const leaf = this.#room(run.leaves[k]!, elements * run.leaves[k]!.bytesPerElement);
      const T = VIEW_TYPES[leaf.kind]!;
      source.writeLeaf(k, new T(leaf.buf.buffer as ArrayBuffer, leaf.used, elements));
      leaf.used += elements * leaf.bytesPerElement;
    }
  }

  /** The leaf, its buffer grown (the bytes so far kept) so that `bytes` more fit after `used`. */
  #room(leaf: StagedLeaf, bytes: number): StagedLeaf {
    const need = leaf.used + bytes;
    if (need > leaf.buf.byteLength) {
      const grown = new Uint8Array(this.#acquire(Math.max(need, leaf.buf.byteLength * 2)));
      grown.set(leaf.buf.subarray(0, leaf.used));
      if (leaf.buf.byteLength > 0) this.#free(leaf.buf.buffer as ArrayBuffer);
      leaf.buf = grown;
    }
    return leaf;
  }

  /** Appends the batch's values to each leaf of the run. */
  #copy(run: StagedRun, batch: RecordBatch): void {
    let k = 0;
    const visit = (d: Data, length: number): void => {
      if (DataType.isFixedSizeList(d.type)) {
        // A sliced fixed-size list's child is sliced with it, so its items start at 0.
        visit(d.children[0] as Data, length * d.type.listSize);
        return;
      }
      const leaf = run.leaves[k++];
      if (leaf === undefined) throw new Error(`a batch of more leaves than its run's ${run.leaves.length}`);
      // Flat values of a (sliced) Data start at its first row.
      const v = d.values as View;
      const bytes = length * d.stride * v.BYTES_PER_ELEMENT;
      this.#room(leaf, bytes);
      leaf.buf.set(new Uint8Array(v.buffer, v.byteOffset, bytes), leaf.used);
      leaf.used += bytes;
    };
    const n = batch.numRows;
    for (const column of batch.data.children) visit(column, n);
  }

  /** A pooled buffer of at least `bytes` (the smallest that fits), or a new one. */
  #acquire(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.#pool.length; i++) {
      const size = this.#pool[i]!.byteLength;
      if (size >= bytes && (best === -1 || size < this.#pool[best]!.byteLength)) best = i;
    }
    if (best !== -1) {
      const buf = this.#pool[best]!;
      this.#pool[best] = this.#pool[this.#pool.length - 1]!;
      this.#pool.pop();
      this.#pooledBytes -= buf.byteLength;
      return buf;
    }
    let size = MIN_LEAF_BYTES;
    while (size < bytes) size *= 2;
    return new ArrayBuffer(size);
  }

  #free(buf: ArrayBuffer): void {
    if (buf.byteLength === 0 || buf.byteLength > POOLED_LEAF_MAX_BYTES) return;
    if (this.#pool.length >= POOL_MAX_BUFFERS || this.#pooledBytes + buf.byteLength > POOL_MAX_BYTES) return;
    this.#pool.push(buf);
    this.#pooledBytes += buf.byteLength;
  }
}

const EMPTY = new Uint8Array(0);

/** The leases of the buffers a batch's columns view, one per leaf (see `BufferLease`). */
function leasesOf(batch: RecordBatch): BufferLease[] {
  const found: BufferLease[] = [];
  const visit = (d: Data): void => {
    const values = d.values as ArrayBufferView | undefined;
    if (values !== undefined) {
      const lease = leaseOf(values.buffer);
      if (lease !== undefined) found.push(lease);
    }
    for (const child of d.children) visit(child);
  };
  for (const column of batch.data.children) visit(column);
  return found;
}

/**
 * Holds the leases of a batch kept as it is, all or none: a lease already freed (its buffers
 * may be written again) throws before any is retained.
 */
function retainLeases(batch: RecordBatch): void {
  const found = leasesOf(batch);
  if (found.length === 0) return;
  for (const lease of found)
    if (!lease.held)
      throw new Error('log staging: a batch kept for the writer views buffers already handed back');
  for (const lease of found) lease.retain();
}

/** Lets go of what {@link retainLeases} held for the batch (the same leaves, so the same leases). */
function releaseLeases(batch: RecordBatch): void {
  for (const lease of leasesOf(batch)) lease.release();
}
