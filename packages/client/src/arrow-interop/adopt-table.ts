import {
  Binary,
  BinaryView,
  Bool,
  Data,
  Date_,
  Decimal,
  Dictionary,
  Duration,
  Field,
  FixedSizeBinary,
  FixedSizeList,
  Float,
  Int,
  Interval,
  LargeBinary,
  LargeList,
  LargeUtf8,
  List,
  Map_,
  Null,
  RecordBatch,
  Schema,
  Struct,
  Table,
  Time,
  Timestamp,
  Type,
  Union,
  Utf8,
  Utf8View,
  Vector,
  type DataType,
} from 'apache-arrow';
import { ValidationError } from '../errors/index.js';
import { SDK_ARROW_RANGE } from './sdk-arrow.js';

/**
 * What a Table of any apache-arrow ≥ 9 looks like. `instanceof` fails across copies (a user's
 * own apache-arrow, another version, or a second copy of the same one in an orchestration's
 * node_modules), so Tables are recognised and read by shape.
 */
export interface ArrowTableLike {
  readonly schema: { readonly fields: readonly unknown[] };
  readonly batches: readonly unknown[];
  readonly numRows: number;
}

interface ForeignType {
  readonly typeId: number;
  readonly [key: string]: unknown;
}

interface ForeignField {
  readonly name: string;
  readonly type: ForeignType;
  readonly nullable: boolean;
  readonly metadata?: Map<string, string>;
}

interface ForeignData {
  readonly type: ForeignType;
  readonly offset: number;
  readonly length: number;
  readonly nullCount: number;
  readonly values?: unknown;
  readonly valueOffsets?: unknown;
  readonly nullBitmap?: unknown;
  readonly typeIds?: unknown;
  readonly children?: readonly ForeignData[];
  readonly dictionary?: { readonly data: readonly ForeignData[] };
  readonly variadicBuffers?: readonly Uint8Array[];
}

/**
 * True for a Table of the SDK's own apache-arrow copy. Not `instanceof`: apache-arrow ≥ 21.2
 * answers it for Tables of every copy (a shared `Symbol.for` marker), yet its IPC writer cannot
 * write another copy's Table (it writes unreadable bytes).
 */
export function isSdkTable(value: unknown): value is Table {
  return isInstanceOfCopy(Table, value);
}

/** `value instanceof cls` by the prototype chain alone (ignores `Symbol.hasInstance`). */
export function isInstanceOfCopy(cls: abstract new (...args: never[]) => object, value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && Object.prototype.isPrototypeOf.call(cls.prototype, value)
  );
}

/** A type's own description (e.g. `FixedSizeList[2]<Float32>`), or `unknown`. */
function describe(type: ForeignType): string {
  const text: unknown =
    typeof type.toString === 'function' ? (type.toString as () => unknown).call(type) : null;
  return typeof text === 'string' && text !== '[object Object]' ? text : 'unknown';
}

/** True for a Table of this or any other apache-arrow copy. */
export function isArrowTableLike(value: unknown): value is ArrowTableLike {
  if (isSdkTable(value)) return true;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const t = value as Partial<ArrowTableLike>;
  return Array.isArray(t.schema?.fields) && Array.isArray(t.batches) && typeof t.numRows === 'number';
}

/** The message every "cannot carry this Table across" error ends with. */
function whatToDo(): string {
  return (
    `The SDK uses its own apache-arrow (${SDK_ARROW_RANGE}), a different copy or version than the Table's. ` +
    "Pass your module (infer(table, { arrow }) with import * as arrow from 'apache-arrow') or IPC bytes (infer(arrow.tableToIPC(table)))."
  );
}

function mismatch(detail: string): ValidationError {
  return new ValidationError('invalid_inference_input', `${detail}. ${whatToDo()}`, 0);
}

/**
 * The same table in the SDK's apache-arrow classes, sharing the column buffers (no copy): a
 * Table of the SDK's copy as is, one of another copy or version rebuilt type by type.
 * @throws ValidationError (`invalid_inference_input`) naming the column whose type the SDK's
 *   apache-arrow cannot hold, or the shape it does not recognise, and what to pass instead.
 */
export function adoptTable(table: ArrowTableLike): Table {
  if (isSdkTable(table)) return table;
  const schema = adoptSchema(table.schema);
  const rowType = new Struct(schema.fields);
  const batches = table.batches.map((batch, i) => {
    const data = (batch as { data?: ForeignData } | null)?.data;
    if (data === undefined || typeof data.type?.typeId !== 'number') {
      throw mismatch(
        `Record batch ${i} of the Table has no readable data (an apache-arrow older than 9 lays Tables out differently)`,
      );
    }
    return new RecordBatch(schema, adoptData(data, rowType, 'the record batch') as Data<Struct>);
  });
  return new Table(schema, batches);
}

function adoptSchema(schema: ArrowTableLike['schema']): Schema {
  const fields = schema.fields.map((f, i) => adoptField(f as ForeignField, `column ${i}`));
  const metadata = (schema as { metadata?: unknown }).metadata;
  return new Schema(fields, metadata instanceof Map ? new Map(metadata as Map<string, string>) : undefined);
}

function adoptField(field: ForeignField, where: string): Field {
  if (typeof field?.name !== 'string' || typeof field.type?.typeId !== 'number') {
    throw mismatch(`The Table's ${where} is not an Arrow field`);
  }
  const metadata = field.metadata instanceof Map ? new Map(field.metadata) : undefined;
  return new Field(field.name, adoptType(field.type, `column "${field.name}"`), field.nullable, metadata);
}

function childFields(type: ForeignType, where: string): Field[] {
  const children = type.children;
  if (!Array.isArray(children)) throw mismatch(`The type of ${where} has no child fields`);
  return children.map((c: ForeignField, i) => adoptField(c, `${where}, child ${i}`));
}

function firstChild(type: ForeignType, where: string): Field {
  const [child] = childFields(type, where);
  if (child === undefined) throw mismatch(`The type of ${where} has no child field`);
  return child;
}

function num(type: ForeignType, key: string, where: string): number {
  const v = type[key];
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  throw mismatch(`The ${describe(type)} type of ${where} has no ${key}`);
}

type Adopt = (t: ForeignType, where: string) => DataType;

/** How each Arrow type id becomes the SDK's DataType (type ids are Arrow's format ids, the same in every version). */
const ADOPT_TYPE = new Map<number, Adopt>([
  [Type.Null, () => new Null()],
  [Type.Int, (t, w) => new Int(Boolean(t.isSigned), num(t, 'bitWidth', w) as 8 | 16 | 32 | 64)],
  [Type.Float, (t, w) => new Float(num(t, 'precision', w))],
  [Type.Binary, () => new Binary()],
  [Type.Utf8, () => new Utf8()],
  [Type.Bool, () => new Bool()],
  [Type.LargeBinary, () => new LargeBinary()],
  [Type.LargeUtf8, () => new LargeUtf8()],
  [Type.BinaryView, () => new BinaryView()],
  [Type.Utf8View, () => new Utf8View()],
  [Type.Decimal, (t, w) => new Decimal(num(t, 'scale', w), num(t, 'precision', w), num(t, 'bitWidth', w))],
  [Type.Date, (t, w) => new Date_(num(t, 'unit', w))],
  [Type.Time, (t, w) => new Time(num(t, 'unit', w), num(t, 'bitWidth', w) as 32 | 64)],
  [
    Type.Timestamp,
    (t, w) => new Timestamp(num(t, 'unit', w), typeof t.timezone === 'string' ? t.timezone : null),
  ],
  [Type.Interval, (t, w) => new Interval(num(t, 'unit', w))],
  [Type.Duration, (t, w) => new Duration(num(t, 'unit', w))],
  [Type.FixedSizeBinary, (t, w) => new FixedSizeBinary(num(t, 'byteWidth', w))],
  [Type.List, (t, w) => new List(firstChild(t, w))],
  [Type.LargeList, (t, w) => new LargeList(firstChild(t, w))],
  [Type.FixedSizeList, (t, w) => new FixedSizeList(num(t, 'listSize', w), firstChild(t, w))],
  [Type.Struct, (t, w) => new Struct(childFields(t, w))],
  [
    Type.Map,
    (t, w) =>
      new Map_(firstChild(t, w) as Field<Struct<{ key: DataType; value: DataType }>>, Boolean(t.keysSorted)),
  ],
  [
    Type.Union,
    (t, w) => {
      const typeIds = t.typeIds;
      if (!(typeIds instanceof Int32Array) && !Array.isArray(typeIds)) {
        throw mismatch(`The union type of ${w} has no type ids`);
      }
      return new Union(num(t, 'mode', w), typeIds as Int32Array | number[], childFields(t, w));
    },
  ],
  [
    Type.Dictionary,
    (t, w) => {
      const indices = adoptType(t.indices as ForeignType, `the indices of ${w}`);
      const dictionary = adoptType(t.dictionary as ForeignType, `the dictionary of ${w}`);
      const id = t.id;
      return new Dictionary(
        dictionary,
        indices as ConstructorParameters<typeof Dictionary>[1],
        typeof id === 'number' || typeof id === 'bigint' ? id : null,
        Boolean(t.isOrdered),
      );
    },
  ],
]);

/** The SDK's DataType for a type of any copy. */
function adoptType(type: ForeignType, where: string): DataType {
  const adopt = ADOPT_TYPE.get(type?.typeId);
  if (adopt === undefined) {
    throw mismatch(
      `The type of ${where} (Arrow type id ${String(type?.typeId)}, ${describe(type)}) is not one the SDK's apache-arrow knows`,
    );
  }
  return adopt(type, where);
}

/** The SDK's Data over the same buffers as `data`, typed by the already adopted `type`. */
function adoptData(data: ForeignData, type: DataType, where: string): Data {
  const childTypes: Field[] = type.children ?? [];
  const children = (data.children ?? []).map((child, i) => {
    const field = childTypes[i];
    if (field === undefined) throw mismatch(`The data of ${where} has more children than its type`);
    return adoptData(child, field.type as DataType, `${where}, child "${field.name}"`);
  });
  let dictionary: Vector | undefined;
  if (type instanceof Dictionary) {
    const chunks: unknown = data.dictionary?.data;
    if (!Array.isArray(chunks)) throw mismatch(`The dictionary column ${where} has no dictionary`);
    dictionary = new Vector(
      (chunks as readonly ForeignData[]).map((c) =>
        adoptData(c, type.dictionary as DataType, `the dictionary of ${where}`),
      ),
    );
  }
  // Buffers in BufferType order (OFFSET, DATA, VALIDITY, TYPE): typed arrays are shared as they are.
  const buffers = [
    data.valueOffsets,
    data.values,
    data.nullBitmap,
    data.typeIds,
  ] as unknown as ConstructorParameters<typeof Data>[4];
  return new Data(
    type,
    data.offset,
    data.length,
    data.nullCount,
    buffers,
    children,
    dictionary,
    data.variadicBuffers ?? [],
  );
}
