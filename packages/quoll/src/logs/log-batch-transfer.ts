import { Data, Struct, tableFromIPC } from 'apache-arrow';
import type { DataType, RecordBatch, Schema } from 'apache-arrow';
import { ARROW_EOS, ArrowMessageEncoder } from './arrow-message-encoder.js';
import { batchOf } from './log-batch-checks.js';

/** The typed-array kinds Arrow buffers come in; a packed buffer names one by index. */
const VIEW_TYPES = [
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

type View = InstanceType<(typeof VIEW_TYPES)[number]>;

/** Each typed-array constructor's index in {@link VIEW_TYPES}. */
const VIEW_KINDS = new Map<unknown, number>(VIEW_TYPES.map((T, kind) => [T, kind]));

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
  /** Every buffer's bytes, each at an 8-byte aligned offset. */
  arena: ArrayBuffer;
}

/**
 * Turns record batches into messages for the writer thread: every buffer is copied once, into
 * one arena per message (so the caller may reuse or release its own, e.g. a shared hand-off
 * ring), and the arena is handed over without a second copy — one transferred buffer however
 * many batches, since transferring thousands of small ones costs more than the copy. Each
 * distinct `Schema` object crosses once, as an IPC schema message.
 */
export class LogBatchPacker {
  #ids = new WeakMap<Schema, number>();
  readonly #encoder = new ArrowMessageEncoder();
  #next = 0;

  /** Packs groups of batches (e.g. one group per append) into one message body. */
  pack(groups: readonly (readonly RecordBatch[])[]): PackedBatches {
    const schemas: PackedSchema[] = [];
    const views: View[] = [];
    const meta: number[] = [];
    let bytes = 0;
    const place = (v: ArrayBufferView | null | undefined): void => {
      if (v === null || v === undefined) {
        meta.push(-1, 0, 0);
        return;
      }
      const kind = VIEW_KINDS.get(v.constructor) ?? VIEW_TYPES.findIndex((T) => v instanceof T);
      if (kind === -1)
        throw new Error(`log writer: cannot move an Arrow buffer of type ${v.constructor.name}`);
      meta.push(kind, bytes, (v as View).length);
      views.push(v as View);
      // 8-byte alignment keeps every kind's view constructible at its offset.
      bytes += (v.byteLength + 7) & ~7;
    };
    const packData = (d: Data): void => {
      const b = d as unknown as Record<
        'valueOffsets' | 'values' | 'nullBitmap' | 'typeIds',
        ArrayBufferView | undefined
      >;
      meta.push(d.offset, d.length, d.nullCount, d.children.length);
      place(b.valueOffsets);
      place(b.values);
      place(b.nullBitmap);
      place(b.typeIds);
      for (const c of d.children) packData(c);
    };
    const counts: number[] = [];
    for (const group of groups) {
      counts.push(group.length);
      for (const batch of group) {
        meta.push(this.#schemaId(batch.schema, schemas), batch.numRows);
        for (const column of batch.data.children) packData(column);
      }
    }
    // Not zero-filled and never from Node's shared pool: the whole ArrayBuffer is this arena.
    const arena = Buffer.allocUnsafeSlow(bytes);
    let at = 0;
    for (const v of views) {
      arena.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
      at += (v.byteLength + 7) & ~7;
    }
    return { schemas, counts, meta: Float64Array.from(meta), arena: arena.buffer };
  }

  /**
   * Forgets every schema: the next pack of each sends it again. For a new receiver (a
   * restarted writer thread knows none).
   */
  reset(): void {
    this.#ids = new WeakMap();
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
