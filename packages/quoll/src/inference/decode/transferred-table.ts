import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  List,
  RecordBatch,
  Schema,
  Struct,
  Table,
  Type,
  Uint16,
  Uint32,
  Uint64,
  Uint8,
  makeData,
} from 'apache-arrow';
import type { Data, DataType } from 'apache-arrow';

/** An Arrow type of a tensor column, as plain data (the only types {@link checkArrowIpc} lets through). */
export type TransferredType =
  | { id: 'int'; bitWidth: 8 | 16 | 32 | 64; signed: boolean }
  | { id: 'float'; bitWidth: 32 | 64 }
  | { id: 'fixed-size-list'; listSize: number; child: TransferredField }
  | { id: 'list'; child: TransferredField };

/** An Arrow field as plain data. */
export interface TransferredField {
  name: string;
  nullable: boolean;
  type: TransferredType;
}

/** One column chunk as plain data: typed arrays (structured-clone safe) and its children. */
export interface TransferredData {
  offset: number;
  length: number;
  nullCount: number;
  nullBitmap: Uint8Array | null;
  values: ArrayBufferView | null;
  valueOffsets: Int32Array | null;
  children: TransferredData[];
}

/**
 * A decoded Arrow table as plain data, so it can cross a worker boundary with `postMessage`
 * (class instances do not survive structured clone) and be rebuilt without parsing IPC again.
 */
export interface TransferredTable {
  fields: TransferredField[];
  /** Per record batch, one chunk per field. */
  batches: TransferredData[][];
}

/**
 * Adds the buffers of freshly built columns (owned by nobody else on this thread) to a transfer
 * list, so `postMessage` moves them instead of copying.
 */
export function collectBuffers(chunks: TransferredData[], into: ArrayBuffer[]): void {
  for (const chunk of chunks) {
    for (const view of [chunk.values, chunk.valueOffsets]) {
      if (view !== null && view.buffer instanceof ArrayBuffer && !into.includes(view.buffer))
        into.push(view.buffer);
    }
    collectBuffers(chunk.children, into);
  }
}

/** A table of tensor columns as plain data (throws for a column type outside {@link TransferredType}). */
export function toTransferredTable(table: Table): TransferredTable {
  return {
    fields: table.schema.fields.map((field) => describeField(field)),
    batches: table.batches.map((batch) => batch.data.children.map((data) => describeData(data))),
  };
}

/** Rebuilds the table a {@link TransferredTable} describes (no copy of the values). */
export function fromTransferredTable(plain: TransferredTable): Table {
  const fields = plain.fields.map((field) => reviveField(field));
  const schema = new Schema(fields);
  const batches = plain.batches.map((chunks) => {
    const length = chunks[0]?.length ?? 0;
    const children = chunks.map((chunk, i) => reviveData(chunk, fields[i]!.type as DataType));
    return new RecordBatch(schema, makeData({ type: new Struct(fields), length, nullCount: 0, children }));
  });
  return new Table(schema, batches);
}

function describeField(field: Field): TransferredField {
  return { name: field.name, nullable: field.nullable, type: describeType(field.type as DataType) };
}

function describeType(type: DataType): TransferredType {
  const id = type.typeId;
  if (id === Type.Int) {
    const { bitWidth, isSigned } = type as unknown as { bitWidth: 8 | 16 | 32 | 64; isSigned: boolean };
    return { id: 'int', bitWidth, signed: isSigned };
  }
  if (id === Type.Float && (type as unknown as { precision: number }).precision !== 0) {
    return { id: 'float', bitWidth: (type as unknown as { precision: number }).precision === 1 ? 32 : 64 };
  }
  if (id === Type.FixedSizeList) {
    return {
      id: 'fixed-size-list',
      listSize: (type as unknown as { listSize: number }).listSize,
      child: describeField(type.children[0] as Field),
    };
  }
  if (id === Type.List) return { id: 'list', child: describeField(type.children[0] as Field) };
  throw new Error(`Arrow type ${Type[id]} cannot be transferred`);
}

/** An Arrow field from its plain description. */
export function reviveField(field: TransferredField): Field {
  return new Field(field.name, reviveType(field.type), field.nullable);
}

function reviveType(type: TransferredType): DataType {
  switch (type.id) {
    case 'int':
      switch (type.bitWidth) {
        case 8:
          return type.signed ? new Int8() : new Uint8();
        case 16:
          return type.signed ? new Int16() : new Uint16();
        case 32:
          return type.signed ? new Int32() : new Uint32();
        case 64:
          return type.signed ? new Int64() : new Uint64();
      }
      break;
    case 'float':
      return type.bitWidth === 32 ? new Float32() : new Float64();
    case 'fixed-size-list':
      return new FixedSizeList(type.listSize, reviveField(type.child));
    case 'list':
      return new List(reviveField(type.child));
  }
  throw new Error('unknown transferred Arrow type');
}

function describeData(data: Data): TransferredData {
  const nullBitmap = data.nullCount > 0 ? (data.nullBitmap ?? null) : null;
  return {
    offset: data.offset,
    length: data.length,
    nullCount: data.nullCount,
    nullBitmap,
    values: (data.values as ArrayBufferView | undefined) ?? null,
    valueOffsets: (data.valueOffsets as Int32Array | undefined) ?? null,
    children: data.children.map((child) => describeData(child)),
  };
}

function reviveData(plain: TransferredData, type: DataType): Data {
  const common = {
    offset: plain.offset,
    length: plain.length,
    nullCount: plain.nullCount,
    ...(plain.nullBitmap === null ? {} : { nullBitmap: plain.nullBitmap }),
  };
  const id = type.typeId;
  if (id === Type.FixedSizeList) {
    return makeData({
      ...common,
      type: type as FixedSizeList,
      child: reviveData(plain.children[0]!, (type.children[0] as Field).type as DataType),
    });
  }
  if (id === Type.List) {
    return makeData({
      ...common,
      type: type as List,
      valueOffsets: plain.valueOffsets!,
      child: reviveData(plain.children[0]!, (type.children[0] as Field).type as DataType),
    });
  }
  return makeData({ ...common, type: type as Float32, data: plain.values as Float32Array });
}
