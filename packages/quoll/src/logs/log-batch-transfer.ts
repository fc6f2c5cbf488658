import { Data, DataType, Struct, tableFromIPC } from 'apache-arrow';
import type { RecordBatch, Schema } from 'apache-arrow';
import { ARROW_EOS, ArrowMessageEncoder } from './arrow-message-encoder.js';
import { COALESCE_MAX_BYTES, COALESCE_MAX_ROWS } from './coalesce-log-batches.js';
import { batchOf, checkBatchShape } from './log-batch-checks.js';
import { isLogRowSource } from './log-row-source.js';
import type { LogRowLeaf, LogRowSource } from './log-row-source.js';
import { StagedRun, VIEW_TYPES, kindOf, mergeable } from './log-staging.js';
import type { StagedEntry, View } from './log-staging.js';
import { schemaIdOf } from './schema-id.js';

/** A schema the receiver has not seen yet: its Arrow IPC schema message. */
export interface PackedSchema {
  id: number;
  message: Uint8Array;
}

/**
 * The record batches of one message, as numbers and bytes only (cloning thousands of small
 * objects per message cost more request-thread time than the writing it moves away).
 */
export interface PackedBatches {
  schemas: PackedSchema[];
  /** Batches per group (e.g. per append), in order. */
  counts: number[];
  /**
   * Per batch: schema id and rows, then its columns' `Data` nodes depth first; per node:
   * offset, length, null count, number of children, then 4 × (kind, byte offset in `arena`,
   * element count) for `[valueOffsets, values, nullBitmap, typeIds]`, kind -1 where absent.
   */
  meta: Float64Array;
  /** Every buffer's bytes, each at an 8-byte aligned offset (a reused arena may be longer than they need). */
  arena: ArrayBuffer;
}

/** Limits of the batches {@link LogBatchPacker} merges while packing. */
export interface LogBatchPackerOptions {
  /**
   * A merged batch holds at most this many rows (a single batch above it crosses as it is).
   * @default COALESCE_MAX_ROWS (16 384)
   */
  mergeMaxRows?: number;
  /**
   * A merged batch holds at most this many bytes of column data.
   * @default COALESCE_MAX_BYTES (4 MiB)
   */
  mergeMaxBytes?: number;
}

/** Arenas kept for reuse; more come back only when the writer falls behind. */
const POOLED_ARENAS = 4;
/**
 * Bigger arenas are not kept: they carry a backlog the writer fell behind on (the embedded
 * store's hand-off is at most 32 768 rows, ≈ 5.2 MiB of JSON records' rows, while it keeps up),
 * and keeping them would hold that memory for good.
 */
const POOLED_ARENA_MAX_BYTES = 8 * 1024 * 1024;
/** Smallest arena allocated: sizes are rounded up to a power of two from here, so pooled ones fit later hand-offs. */
const MIN_ARENA_BYTES = 64 * 1024;

/**
 * A write into the arena: `source`'s bytes at `at`, or the rows of leaf `leaf` of a row source
 * (`elements` of kind `kind` at `at`, `width` per row).
 */
type Copy = (
  | { source: Uint8Array; at: number }
  | { rows: LogRowSource; leaf: number; kind: number; at: number; elements: number; width: number }
) & {
  /** The entries of the group the bytes come from (one, or the batches of a merged run). */
  from: readonly StagedEntry[];
};

/**
 * A {@link LogPackJob} could not read the rows of `entries` (a torn batch, a row source that
 * throws): the body cannot be completed. `cause` says why.
 */
export class LogPackError extends Error {
  readonly entries: readonly StagedEntry[];

  constructor(entries: readonly StagedEntry[], cause: unknown) {
    super(
      `the inference log could not read ${entries.reduce((n, e) => n + (e instanceof StagedRun ? e.rows : e.numRows), 0)} rows to hand to its writer: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'LogPackError';
    this.entries = entries;
  }
}

/**
 * Bytes a {@link LogPackJob} writes into the arena per {@link LogPackJob.step} when the hand-off
 * packs in slices: ≈ 0.1 ms of copying, or ≈ 0.5–1 ms of a JSON row source's walk of its
 * records on a quiet core (1 MiB slices of that walk took 3–14 ms at load 12).
 */
export const PACK_SLICE_BYTES = 512 * 1024;

/**
 * The packing of one message, written into its arena a slice at a time ({@link step}), so that
 * a hand-off of a million rows does not hold the request thread for the whole copy; the body
 * (schemas, counts, meta, the arena) is laid out when the job is made and is complete once
 * {@link step} has returned `true`.
 */
export class LogPackJob {
  readonly body: PackedBatches;
  readonly #copies: readonly Copy[];
  readonly #target: Uint8Array;
  /** The copy under way, and how far into it (bytes of a copy, rows of a row source). */
  #next = 0;
  #done = 0;
  #writer: ((rows: number) => void) | null = null;
  /** Whether {@link #writer} writes the whole leaf in one call (a source without `leafWriter`). */
  #whole = false;
  /** Slices written so far. */
  slices = 0;
  /** The schemas this body sends first (forgotten again if the job is given up). */
  readonly introduces: readonly Schema[];

  constructor(body: PackedBatches, copies: readonly Copy[], introduces: readonly Schema[]) {
    this.body = body;
    this.#copies = copies;
    this.introduces = introduces;
    this.#target = new Uint8Array(body.arena);
  }

  /** Whether every copy is written. */
  get done(): boolean {
    return this.#next >= this.#copies.length;
  }

  /**
   * Writes the next copies, about `budget` bytes of them (at least one row or one byte, a big
   * copy in parts); returns whether the body is complete.
   */
  step(budget: number): boolean {
    if (this.done) return true;
    this.slices++;
    let left = Math.max(1, budget);
    while (left > 0 && this.#next < this.#copies.length) {
      const copy = this.#copies[this.#next]!;
      try {
        left = this.#write(copy, left);
      } catch (err) {
        throw new LogPackError(copy.from, err);
      }
      if (left < 0) break;
      this.#next++;
      this.#done = 0;
    }
    return this.done;
  }

  /** Writes what fits of `copy` in `left` bytes; returns the bytes left, or -1 when the copy is not finished. */
  #write(copy: Copy, left: number): number {
    if ('source' in copy) {
      const size = copy.source.byteLength;
      const n = Math.min(left, size - this.#done);
      if (n === size) this.#target.set(copy.source, copy.at);
      else this.#target.set(copy.source.subarray(this.#done, this.#done + n), copy.at + this.#done);
      this.#done += n;
      return this.#done < size ? -1 : left - n;
    }
    const source = copy.rows;
    const total = source.numRows;
    const T = VIEW_TYPES[copy.kind]!;
    if (this.#writer === null) {
      const view = new T(this.#target.buffer as ArrayBuffer, copy.at, copy.elements);
      const sliced = source.leafWriter?.(copy.leaf, view);
      // A source that cannot write in slices writes the whole leaf at once.
      this.#writer = sliced ?? (() => source.writeLeaf(copy.leaf, view));
      this.#whole = sliced === undefined;
    }
    const rowBytes = Math.max(1, copy.width * T.BYTES_PER_ELEMENT);
    const rows = this.#whole ? total : Math.min(total - this.#done, Math.max(1, Math.floor(left / rowBytes)));
    this.#writer(rows);
    this.#done += rows;
    if (this.#done < total) return -1;
    this.#writer = null;
    return left - rows * rowBytes;
  }
}

/**
 * Turns record batches into messages for the writer thread: every buffer is copied once, into
 * one arena per message (so the caller may reuse or release its own), and the arena is handed
 * over without a second copy — one transferred buffer however many batches, since
 * transferring thousands of small ones costs more than the copy. Consecutive batches of a
 * group with one schema of fixed-width columns without nulls (what inference results are) are
 * merged by that same copy: they cross as one batch, so the writer neither merges nor copies
 * them again. Arenas the writer is done with come back through {@link recycle} and are
 * reused (a fresh arena per hand-off costs page faults, and its external memory drives
 * garbage collections on both threads). Each distinct `Schema` object crosses once, as an IPC
 * schema message.
 */
export class LogBatchPacker {
  #ids = new WeakMap<Schema, number>();
  readonly #encoder = new ArrowMessageEncoder();
  #next = 0;
  readonly #maxRows: number;
  readonly #maxBytes: number;
  readonly #pool: ArrayBuffer[] = [];

  constructor(options: LogBatchPackerOptions = {}) {
    this.#maxRows = Math.max(1, options.mergeMaxRows ?? COALESCE_MAX_ROWS);
    this.#maxBytes = Math.max(1, options.mergeMaxBytes ?? COALESCE_MAX_BYTES);
  }

  /** Arenas of earlier messages that the receiver no longer reads: later messages reuse them. */
  recycle(arenas: readonly ArrayBuffer[]): void {
    for (const arena of arenas) {
      // Detached (transferred again meanwhile), or too big to keep.
      if (arena.byteLength === 0 || arena.byteLength > POOLED_ARENA_MAX_BYTES) continue;
      if (this.#pool.length < POOLED_ARENAS) this.#pool.push(arena);
      else {
        // Keep the biggest: they fit the most hand-offs.
        const smallest = this.#pool.reduce((k, a, i, all) => (a.byteLength < all[k]!.byteLength ? i : k), 0);
        if (arena.byteLength > this.#pool[smallest]!.byteLength) this.#pool[smallest] = arena;
      }
    }
  }

  /** Arenas waiting for reuse (for tests and diagnostics). */
  get pooledArenas(): number {
    return this.#pool.length;
  }

  /**
   * Packs groups of batches (e.g. one group per pipeline) into one message body. A group may
   * hold runs a {@link LogStaging} copied already and big row sources: each crosses as one
   * batch. All in one go: see {@link begin} for the packing in slices.
   */
  pack(groups: readonly (readonly StagedEntry[])[]): PackedBatches {
    const job = this.begin(groups);
    job.step(Infinity);
    return job.body;
  }

  /**
   * Lays out the message body of `groups` (as {@link pack}) and returns the job that writes
   * their bytes into its arena, a slice at a time ({@link LogPackJob.step}); nothing is copied
   * yet. The groups must not change until the job is done. A job given up before it is done
   * (the receiver went away) hands its arena back through {@link recycle}.
   */
  begin(groups: readonly (readonly StagedEntry[])[]): LogPackJob {
    const introduces: Schema[] = [];
    try {
      return this.#layout(groups, introduces);
    } catch (err) {
      // Nothing of it is sent: its schemas go with the next body that needs them.
      for (const schema of introduces) this.#ids.delete(schema);
      throw err;
    }
  }

  #layout(groups: readonly (readonly StagedEntry[])[], introduces: Schema[]): LogPackJob {
    const schemas: PackedSchema[] = [];
    const copies: Copy[] = [];
    /** The entries whose bytes the copies being laid out come from. */
    let from: readonly StagedEntry[] = [];
    const meta: number[] = [];
    let bytes = 0;
    /** Reserves room for `byteLength` bytes of `kind` holding `count` elements; returns the offset. */
    const reserve = (kind: number, byteLength: number, count: number): number => {
      const at = bytes;
      meta.push(kind, at, count);
      // 8-byte alignment keeps every kind's view constructible at its offset.
      bytes += (byteLength + 7) & ~7;
      return at;
    };
    const place = (v: ArrayBufferView | null | undefined): void => {
      if (v === null || v === undefined) {
        meta.push(-1, 0, 0);
        return;
      }
      const at = reserve(kindOf(v), v.byteLength, (v as View).length);
      copies.push({ source: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at, from });
    };
    const packData = (d: Data): void => {
      const b = d as unknown as Record<BufferName, ArrayBufferView | undefined>;
      meta.push(d.offset, d.length, d.nullCount, d.children.length);
      place(b.valueOffsets);
      place(b.values);
      place(b.nullBitmap);
      place(b.typeIds);
      for (const c of d.children) packData(c);
    };
    /** The column of several parts as one node: their values back to back, no null bitmap. */
    const packMerged = (type: DataType, parts: readonly Part[], total: number): void => {
      const first = parts[0]!.data;
      meta.push(0, total, 0, DataType.isFixedSizeList(type) ? 1 : 0);
      if (DataType.isFixedSizeList(type)) {
        meta.push(-1, 0, 0, -1, 0, 0, -1, 0, 0, -1, 0, 0);
        const size = type.listSize;
        // A sliced fixed-size list's child is sliced with it, so each part's items start at 0.
        packMerged(
          (type.children[0] as { type: DataType }).type,
          parts.map((p) => ({ data: p.data.children[0] as Data, length: p.length * size })),
          total * size,
        );
        return;
      }
      const values = first.values as View;
      const stride = first.stride;
      const width = values.BYTES_PER_ELEMENT * stride;
      meta.push(-1, 0, 0);
      let at = reserve(kindOf(values), total * width, total * stride);
      const run = from;
      parts.forEach((p, i) => {
        // A part whose values are not of the first's kind, or too few, is told alone: the
        // batches merged beside it (acknowledged appends) are packed without it.
        const v = p.data.values as View | undefined;
        if (v?.constructor !== values.constructor || v.length < p.length * stride)
          throw new LogPackError(
            [run[i]!],
            new Error(
              `its values (${v?.constructor.name ?? 'none'}) do not match the batches merged with it`,
            ),
          );
      });
      for (const p of parts) {
        // Flat values of a (sliced) Data start at its first row.
        const v = p.data.values as View;
        copies.push({ source: new Uint8Array(v.buffer, v.byteOffset, p.length * width), at, from });
        at += p.length * width;
      }
      meta.push(-1, 0, 0, -1, 0, 0);
    };
    const packRun = (run: readonly RecordBatch[], rows: number): void => {
      from = run;
      const first = run[0]!;
      meta.push(this.#schemaId(first.schema, schemas, introduces), rows);
      if (run.length === 1) {
        for (const column of first.data.children) packData(column);
        return;
      }
      first.schema.fields.forEach((field, c) =>
        packMerged(
          field.type as DataType,
          run.map((b) => ({ data: b.data.children[c] as Data, length: b.numRows })),
          rows,
        ),
      );
    };
    /** A staged run as one batch, laid out as {@link packMerged} lays out merged batches. */
    const packStaged = (staged: StagedRun): void => {
      from = [staged];
      meta.push(this.#schemaId(staged.schema, schemas, introduces), staged.rows);
      let k = 0;
      const node = (type: DataType, total: number): void => {
        if (DataType.isFixedSizeList(type)) {
          meta.push(0, total, 0, 1, -1, 0, 0, -1, 0, 0, -1, 0, 0, -1, 0, 0);
          node((type.children[0] as { type: DataType }).type, total * type.listSize);
          return;
        }
        const leaf = staged.leaves[k++]!;
        meta.push(0, total, 0, 0, -1, 0, 0);
        const at = reserve(leaf.kind, leaf.used, leaf.used / leaf.bytesPerElement);
        copies.push({ source: leaf.buf.subarray(0, leaf.used), at, from });
        meta.push(-1, 0, 0, -1, 0, 0);
      };
      for (const field of staged.schema.fields) node(field.type as DataType, staged.rows);
    };
    /** A big row source as one batch, laid out as a staged run; it writes its leaves itself. */
    const packSource = (source: LogRowSource, leaves: readonly LogRowLeaf[]): void => {
      from = [source];
      const rows = source.numRows;
      meta.push(this.#schemaId(source.schema, schemas, introduces), rows);
      let k = 0;
      const node = (type: DataType, total: number): void => {
        if (DataType.isFixedSizeList(type)) {
          meta.push(0, total, 0, 1, -1, 0, 0, -1, 0, 0, -1, 0, 0, -1, 0, 0);
          node((type.children[0] as { type: DataType }).type, total * type.listSize);
          return;
        }
        const leaf = k++;
        const { kind, width } = leaves[leaf] ?? { kind: -1, width: -1 };
        if (width * rows !== total || VIEW_TYPES[kind] === undefined)
          throw new LogPackError([source], new Error(`its leaf ${leaf} does not match its schema`));
        meta.push(0, total, 0, 0, -1, 0, 0);
        const at = reserve(kind, total * VIEW_TYPES[kind].BYTES_PER_ELEMENT, total);
        copies.push({ rows: source, leaf, kind, at, elements: total, width, from });
        meta.push(-1, 0, 0, -1, 0, 0);
      };
      for (const field of source.schema.fields) node(field.type as DataType, rows);
    };
    const counts: number[] = [];
    const maxRows = this.#maxRows;
    const maxBytes = this.#maxBytes;
    for (const group of groups) {
      let count = 0;
      let run: RecordBatch[] = [];
      let runRows = 0;
      let runBytes = 0;
      let runId = '';
      const end = (): void => {
        if (run.length > 0) {
          packRun(run, runRows);
          count++;
        }
        run = [];
        runRows = 0;
        runBytes = 0;
      };
      /** Lays out one entry of the group (or adds it to the run of batches merged). */
      const lay = (batch: StagedEntry): void => {
        if (batch instanceof StagedRun) {
          end();
          packStaged(batch);
          count++;
          return;
        }
        if (isLogRowSource(batch)) {
          if (batch.leaves === null)
            throw new LogPackError([batch], new Error('a row source without fixed-width leaves'));
          end();
          packSource(batch, batch.leaves);
          count++;
          return;
        }
        if (!mergeable(batch)) {
          end();
          packRun([batch], batch.numRows);
          count++;
          return;
        }
        const id = schemaIdOf(batch.schema);
        const size = batch.data.byteLength;
        if (
          run.length > 0 &&
          (id !== runId || runRows + batch.numRows > maxRows || runBytes + size > maxBytes)
        )
          end();
        run.push(batch);
        runRows += batch.numRows;
        runBytes += size;
        runId = id;
      };
      for (const batch of group) {
        from = [batch];
        try {
          lay(batch);
        } catch (err) {
          // Whatever fails is told with the entries it was laying out (the batch, or the run
          // it ended), so that the hand-off leaves those out and packs the rest: one entry that
          // cannot be laid out must not hold back every message after it.
          throw err instanceof LogPackError ? err : new LogPackError(from, err);
        }
      }
      try {
        end();
      } catch (err) {
        throw err instanceof LogPackError ? err : new LogPackError(from, err);
      }
      counts.push(count);
    }
    const arena = this.#arena(bytes);
    return new LogPackJob({ schemas, counts, meta: Float64Array.from(meta), arena }, copies, introduces);
  }

  /**
   * Gives up a job that will not be posted: its arena is reused, and the schemas it would have
   * sent first are sent by the next body that needs them.
   */
  abandon(job: LogPackJob): void {
    for (const schema of job.introduces) this.#ids.delete(schema);
    this.recycle([job.body.arena]);
  }

  /**
   * Forgets every schema: the next pack of each sends it again. For a new receiver (a
   * restarted writer thread knows none).
   */
  reset(): void {
    this.#ids = new WeakMap();
  }

  /** A pooled arena of at least `bytes`, the smallest that fits, or a new one. */
  #arena(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.#pool.length; i++) {
      const size = this.#pool[i]!.byteLength;
      if (size >= bytes && (best === -1 || size < this.#pool[best]!.byteLength)) best = i;
    }
    if (best !== -1) return this.#pool.splice(best, 1)[0]!;
    // One too big to be pooled is allocated as big as it needs (rounded up, a 36 MB body would
    // hold 64 MB, which V8 counts as external memory towards its next collection).
    if (bytes > POOLED_ARENA_MAX_BYTES) return new ArrayBuffer(bytes);
    let size = MIN_ARENA_BYTES;
    while (size < bytes) size *= 2;
    // Never from Node's shared pool: the whole ArrayBuffer is this arena (its tail unused).
    return new ArrayBuffer(size);
  }

  #schemaId(schema: Schema, schemas: PackedSchema[], introduces: Schema[]): number {
    let id = this.#ids.get(schema);
    if (id === undefined) {
      id = ++this.#next;
      this.#ids.set(schema, id);
      introduces.push(schema);
      const { chunks, bytes } = this.#encoder.encodeSchema(schema);
      schemas.push({ id, message: new Uint8Array(Buffer.concat(chunks, bytes)) });
    }
    return id;
  }
}

type BufferName = 'valueOffsets' | 'values' | 'nullBitmap' | 'typeIds';

interface Part {
  data: Data;
  /** Rows (or list items) of `data` to take, from its start. */
  length: number;
}

/** How many meta numbers the packer writes for a column of `type`: offset, length, null count, children, 4 buffers (3 each), then its children. */
function metaLength(type: DataType): number {
  const children = (type.children ?? []) as { type: DataType }[];
  return children.reduce((n, c) => n + metaLength(c.type), 16);
}

/** What a log writer thread tells its store of a batch, or a whole hand-off, it set aside. */
export interface SetAsideReport {
  /** The pipeline of the batch; every pipeline of the hand-off when it was set aside whole. */
  pipelineIds: number[];
  /** The batch's rows; null for a whole hand-off (its rows cannot be told apart). */
  rows: number | null;
  message: string;
  stack: string;
}

/** Rebuilds, in the writer thread, the record batches a {@link LogBatchPacker} packed. */
export class LogBatchUnpacker {
  readonly #schemas = new Map<number, { schema: Schema; struct: Struct }>();

  /** Learns schemas sent with a message (before unpacking its batches). */
  learn(schemas: readonly PackedSchema[]): void {
    for (const s of schemas) {
      const stream = new Uint8Array(s.message.byteLength + ARROW_EOS.byteLength);
      stream.set(s.message, 0);
      stream.set(ARROW_EOS, s.message.byteLength);
      const schema = tableFromIPC(stream).schema;
      this.#schemas.set(s.id, { schema, struct: new Struct(schema.fields) });
    }
  }

  /**
   * A writer thread's unpacking of one hand-off (`pipelineIds[g]` is group `g`'s pipeline): its
   * schemas learnt, its batches per group, and what cannot be rebuilt reported instead of
   * thrown: a batch alone (the other batches of the message, other pipelines' rows too, are
   * kept), or the whole hand-off (no batches) when the message cannot be walked (a batch of a
   * schema it was never sent). A writer thread that threw here would end, be restarted and be
   * given the same message again, forever.
   */
  unpackHandOff(
    body: PackedBatches,
    pipelineIds: readonly number[],
    setAside: (report: SetAsideReport) => void,
  ): RecordBatch[][] {
    try {
      this.learn(body.schemas);
      const { groups, failed } = this.unpackEach(body);
      for (const f of failed)
        setAside({
          pipelineIds: [pipelineIds[f.group] ?? -1],
          rows: f.rows,
          message: `an inference log batch could not be unpacked: ${f.error.message}`,
          stack: f.error.stack ?? f.error.message,
        });
      return groups;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      setAside({
        pipelineIds: [...pipelineIds],
        rows: null,
        message: `an inference log hand-off could not be unpacked: ${error.message}`,
        stack: error.stack ?? error.message,
      });
      return [];
    }
  }

  /** The batches of a message, per group; they share one `Schema` object per schema, their buffers are views of its arena. */
  unpack(body: PackedBatches): RecordBatch[][] {
    const { groups, failed } = this.unpackEach(body);
    if (failed.length > 0) throw failed[0]!.error;
    return groups;
  }

  /**
   * Like {@link unpack}, but a batch that cannot be rebuilt is left out and reported (its
   * group, rows and error) instead of failing the whole message: the meta it takes is known
   * from its schema, so the batches after it are still read. Throws only when the message
   * cannot be walked at all (a batch of a schema it does not know).
   */
  unpackEach(body: PackedBatches): {
    groups: RecordBatch[][];
    failed: { group: number; rows: number; error: Error }[];
  } {
    const failed: { group: number; rows: number; error: Error }[] = [];
    const { meta, arena } = body;
    let k = 0;
    const next = (): number => meta[k++] ?? 0;
    const view = (): View | undefined => {
      const kind = next();
      const byteOffset = next();
      const length = next();
      if (kind === -1) return undefined;
      const T = VIEW_TYPES[kind];
      if (T === undefined) throw new Error(`log writer: unknown buffer kind ${kind}`);
      return new T(arena, byteOffset, length);
    };
    const unpackData = (type: DataType): Data => {
      const offset = next();
      const length = next();
      const nullCount = next();
      const n = next();
      const buffers = [view(), view(), view(), view()];
      const childTypes = (type.children ?? []) as { type: DataType }[];
      const children: Data[] = [];
      for (let i = 0; i < n; i++) children.push(unpackData((childTypes[i] as { type: DataType }).type));
      return new Data(type, offset, length, nullCount, buffers as never, children);
    };
    const groups = body.counts.map((count, g) => {
      const group: RecordBatch[] = [];
      for (let j = 0; j < count; j++) {
        const id = next();
        const rows = next();
        const known = this.#schemas.get(id);
        if (known === undefined) throw new Error(`log writer: batch of unknown schema ${id}`);
        const { schema, struct } = known;
        const start = k;
        try {
          const children = schema.fields.map((f) => unpackData(f.type as DataType));
          const data = new Data(struct, 0, rows, 0, [undefined, undefined, undefined], children);
          // Every batch of a schema keeps its one Schema object, so the writer's schema id is computed once.
          const batch = batchOf(schema, data);
          // Every batch a writer thread is given passes here: one whose columns do not hold its
          // rows is set aside now, before merging copies the values it says it has.
          checkBatchShape(batch);
          group.push(batch);
        } catch (err) {
          failed.push({ group: g, rows, error: err instanceof Error ? err : new Error(String(err)) });
          k = start + schema.fields.reduce((n, f) => n + metaLength(f.type as DataType), 0);
        }
      }
      return group;
    });
    return { groups, failed };
  }
}
