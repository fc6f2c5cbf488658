import { Data, DataType, Struct, tableFromIPC } from 'apache-arrow';
import type { RecordBatch, Schema } from 'apache-arrow';
import { ARROW_EOS, ArrowMessageEncoder } from './arrow-message-encoder.js';
import { COALESCE_MAX_BYTES, COALESCE_MAX_ROWS } from './coalesce-log-batches.js';
import { batchOf } from './log-batch-checks.js';
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
 * Bigger arenas are not kept: they carry a backlog the writer fell behind on (a 20 ms hand-off
 * is well under 1 MiB), and keeping them would hold that memory for good.
 */
const POOLED_ARENA_MAX_BYTES = 8 * 1024 * 1024;
/** Smallest arena allocated: sizes are rounded up to a power of two from here, so pooled ones fit later hand-offs. */
const MIN_ARENA_BYTES = 64 * 1024;

/** A copy into the arena: `source`'s bytes at `at`. */
interface Copy {
  source: Uint8Array;
  at: number;
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
   * hold runs a {@link LogStaging} copied already: each crosses as one batch.
   */
  pack(groups: readonly (readonly StagedEntry[])[]): PackedBatches {
    const schemas: PackedSchema[] = [];
    const copies: Copy[] = [];
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
      copies.push({ source: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at });
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
      for (const p of parts) {
        // Flat values of a (sliced) Data start at its first row.
        const v = p.data.values as View;
        copies.push({ source: new Uint8Array(v.buffer, v.byteOffset, p.length * width), at });
        at += p.length * width;
      }
      meta.push(-1, 0, 0, -1, 0, 0);
    };
    const packRun = (run: readonly RecordBatch[], rows: number): void => {
      const first = run[0]!;
      meta.push(this.#schemaId(first.schema, schemas), rows);
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
      meta.push(this.#schemaId(staged.schema, schemas), staged.rows);
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
        copies.push({ source: leaf.buf.subarray(0, leaf.used), at });
        meta.push(-1, 0, 0, -1, 0, 0);
      };
      for (const field of staged.schema.fields) node(field.type as DataType, staged.rows);
    };
    const counts: number[] = [];
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
      for (const batch of group) {
        if (batch instanceof StagedRun) {
          end();
          packStaged(batch);
          count++;
          continue;
        }
        if (!mergeable(batch)) {
          end();
          packRun([batch], batch.numRows);
          count++;
          continue;
        }
        const id = schemaIdOf(batch.schema);
        const size = batch.data.byteLength;
        if (
          run.length > 0 &&
          (id !== runId || runRows + batch.numRows > this.#maxRows || runBytes + size > this.#maxBytes)
        )
          end();
        run.push(batch);
        runRows += batch.numRows;
        runBytes += size;
        runId = id;
      }
      end();
      counts.push(count);
    }
    const arena = this.#arena(bytes);
    const target = new Uint8Array(arena);
    for (const { source, at } of copies) target.set(source, at);
    return { schemas, counts, meta: Float64Array.from(meta), arena };
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
    let size = MIN_ARENA_BYTES;
    while (size < bytes) size *= 2;
    // Never from Node's shared pool: the whole ArrayBuffer is this arena (its tail unused).
    return new ArrayBuffer(size);
  }

  #schemaId(schema: Schema, schemas: PackedSchema[]): number {
    let id = this.#ids.get(schema);
    if (id === undefined) {
      id = ++this.#next;
      this.#ids.set(schema, id);
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

  /** The batches of a message, per group; they share one `Schema` object per schema, their buffers are views of its arena. */
  unpack(body: PackedBatches): RecordBatch[][] {
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
    return body.counts.map((count) => {
      const group: RecordBatch[] = [];
      for (let j = 0; j < count; j++) {
        const id = next();
        const rows = next();
        const known = this.#schemas.get(id);
        if (known === undefined) throw new Error(`log writer: batch of unknown schema ${id}`);
        const { schema, struct } = known;
        const children = schema.fields.map((f) => unpackData(f.type as DataType));
        const data = new Data(struct, 0, rows, 0, [undefined, undefined, undefined], children);
        // Every batch of a schema keeps its one Schema object, so the writer's schema id is computed once.
        group.push(batchOf(schema, data));
      }
      return group;
    });
  }
}
