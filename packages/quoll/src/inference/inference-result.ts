import assert from 'node:assert/strict';
import {
  Bool,
  Data,
  Field,
  FixedSizeList,
  Float64,
  Precision,
  RecordBatchFileWriter,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  tableToIPC,
  TimestampMillisecond,
  Type,
  Uint32,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import type { DataType, Float, RecordBatch, Vector } from 'apache-arrow';
import { MEDIA_TYPES } from '@quoll/client/wire';
import type { ResultFormat, InferenceInput, InputTensor } from './inference-input.js';
import type { BufferLease } from '../threads/index.js';
import { recordBatchOf } from '../arrow/index.js';
import { kindOf, STAGE_MAX_BYTES } from '../logs/index.js';
import type { LogRowLeaf, LogRowSource } from '../logs/index.js';
import { tensorArrowType, valuesArrowType } from './tensor-arrow-type.js';
import { rowWidth } from './tensor-data.js';
import { encodeArrowAnswer } from './encode-arrow-answer.js';
import { freezeSchema } from './freeze-schema.js';
import { narrowDataToFloat32, narrowToFloat32 } from './narrow-to-float32.js';
import type { TensorData, WireTensor } from './tensor-data.js';

/** What {@link InferenceResult.release} gives a records input's log values back to (`LogValuesPool`). */
export interface LogValuesPoolPort {
  give(values: Float64Array | Float32Array): void;
}

/**
 * The answer to one inference request. Columns, in order: `time` (the request's time for
 * every row), `in.<col>` per request column, `out.<name>` per output of the last step (each
 * cell a list), `check_failures` (0). Built lazily in the form the caller asks for.
 */
export class InferenceResult {
  /** Rows in the result (= rows in the request). */
  readonly rowCount: number;
  /** Epoch milliseconds stamped on every row. */
  readonly time: number;
  /** The last step's output tensors, rows along the first dimension. */
  readonly outputs: readonly WireTensor[];
  readonly #input: InferenceInput;
  readonly #columns: readonly string[];
  /** Built once: the answer (Arrow formats) and the log rows share it. */
  #table: Table | null = null;
  /** The layout of {@link #table}, once built. */
  #tableLayout: ResultLayout | null = null;
  /** {@link toLogTable} when it is not {@link #table} (a column logged as Float32), once built. */
  #logTable: Table | null = null;
  /** Per column, whether its Float64 values are logged as Float32 (see the constructor). */
  readonly #logFloat32: readonly boolean[] | null;
  /** The lease of the input's buffers when a model worker lent them (see {@link release}). */
  #lease: BufferLease | null;
  /** A records input's columns' log values, when the input pass wrote them (see the constructor). */
  #recordValues: readonly (Float64Array | Float32Array | null)[] | null;
  /** Where {@link release} gives {@link #recordValues} back (see the constructor). */
  readonly #valuesPool: LogValuesPoolPort | null;
  /** The records log source handed out by {@link logRows}, and how many were. */
  #logSource: RecordsLogRows | null = null;
  #logSources = 0;

  /**
   * `recordValues`, for a JSON records input only: per column (as `columns`), its values row
   * after row as Float64, exactly as the records hold them (what `buildFeeds` writes beside the
   * feeds, `RecordValues`: only for a column of numbers or flat lists), or as Float32 for a
   * column logged as Float32 (`logFloat32`): its float32 feed's values; or `null` for a column
   * the log should read from the records. The log, {@link toArrowTable} (Float64 ones) and
   * {@link toLogTable} use them instead of walking the records again (the tables view them);
   * they must not change afterwards.
   * `valuesPool`: where they came from; {@link release} gives them back to it when nothing can
   * read them any more.
   * `logFloat32`: per column (as `columns`), whether it fed a float32 model input: the log then
   * holds a Float64 column (every JSON number is one) as Float32, the values the model received
   * (see {@link narrowToFloat32}); the answer keeps the values as they came.
   */
  constructor(
    input: InferenceInput,
    columns: readonly string[],
    outputs: readonly WireTensor[],
    rowCount: number,
    time: number,
    lease: BufferLease | null = null,
    recordValues: readonly (Float64Array | Float32Array | null)[] | null = null,
    valuesPool: LogValuesPoolPort | null = null,
    logFloat32: readonly boolean[] | null = null,
  ) {
    this.#input = input;
    this.#columns = columns;
    this.outputs = outputs;
    this.rowCount = rowCount;
    this.time = time;
    this.#lease = lease;
    this.#recordValues = recordValues;
    this.#valuesPool = valuesPool;
    this.#logFloat32 = logFloat32 !== null && logFloat32.includes(true) ? logFloat32 : null;
  }

  /**
   * Says the caller is done with this result: the answer is encoded and the log has taken its
   * rows (it copies small batches and holds the lease of those it keeps). When the input's
   * columns were lent by a model worker (a JSON records body decoded there), their buffers go
   * back to it once no reader is left, instead of each request's columns waiting for a garbage
   * collection; the result must not be read after this. A no-op for other inputs, and when
   * called again.
   *
   * A JSON records input's log values (`recordValues`) go back to their pool when nothing can
   * read them again: no table was built (it would view them, and an answer or the log may hold
   * it), and the one log source handed out was copied by the log's staging (`copied`): not one
   * the log keeps until its writer takes it (32 KiB or more), nor one refused or never admitted.
   */
  release(): void {
    const lease = this.#lease;
    this.#lease = null;
    lease?.release();
    const values = this.#recordValues;
    const pool = this.#valuesPool;
    if (values === null || pool === null || this.#table !== null || this.#logTable !== null) return;
    if (this.#logSources !== 1 || this.#logSource?.wasCopied !== true) return;
    this.#recordValues = null;
    for (const array of values) if (array !== null) pool.give(array);
  }

  /**
   * The result as an Arrow table; Arrow input columns are reused as they are. The schema (and
   * every Field and type in it) is shared by all results with the same columns, shapes and
   * element types, so per request only the column data is built — and consumers that key
   * work by schema object (the log writer's schema id) see one schema. Built once per result.
   */
  toArrowTable(): Table {
    this.#table ??= this.#buildArrowTable();
    return this.#table;
  }

  /**
   * The rows the inference log holds, as an Arrow table: {@link toArrowTable}, except that a
   * Float64 `in.*` column that fed a float32 model input is Float32 (`logFloat32`). What
   * {@link logRows} gives, or writes byte for byte when it gives a {@link LogRowSource}.
   */
  toLogTable(): Table {
    if (this.#table === null && this.#logFloat32 !== null && this.#input.kind === 'records') {
      // Built from the Float32 log values where the input pass took them from the feeds: the
      // answer's Float64 table (which would walk those columns' records again) is not needed.
      this.#logTable ??= this.#buildArrowTable(undefined, true);
      return this.#logTable;
    }
    const table = this.toArrowTable();
    const layout = this.#tableLayout!;
    const logLayout = this.#logLayoutOf(layout);
    if (logLayout === layout) return table;
    this.#logTable ??= narrowTable(table, layout, logLayout);
    return this.#logTable;
  }

  /** The log's layout for a result of `layout`: `layout` itself unless a column is logged as Float32. */
  #logLayoutOf(layout: ResultLayout): ResultLayout {
    const flags = this.#logFloat32;
    return flags === null ? layout : float32LogLayout(layout, flags);
  }

  /**
   * The rows for the inference log: a {@link LogRowSource} that writes the same rows as the
   * result's Arrow table (the same schema object, the same values byte for byte) straight into
   * the log's staging buffers, without the table's fresh typed arrays and Arrow objects built
   * only to be copied again — for JSON records and tensors, and for an Arrow input that
   * {@link arrowInputLeaf} takes, even when an Arrow answer has built the table already (the
   * source skips the table's checks and its generic per-column staging); otherwise the table.
   */
  logRows(): Table | LogRowSource {
    const input = this.#input;
    if (input.kind === 'arrow') {
      // One layout for both: the source's, and the table's when the source is not taken.
      const found = this.#arrowLayout(input.table);
      const source = this.#arrowLogRows(input.table, found);
      if (source !== null) return source;
      this.#table ??= this.#buildArrowTable(found);
      return this.toLogTable();
    }
    if (this.#table !== null) return this.toLogTable();
    if (input.kind === 'tensors') {
      const { layout, tensors } = this.#tensorsLayout(input.tensors);
      return new TensorsLogRows(this, this.#logLayoutOf(layout), tensors);
    }
    const records = input.records as Record<string, unknown>[];
    const { layout, shapes } = this.#recordsLayout(records);
    const source = new RecordsLogRows(
      this,
      this.#logLayoutOf(layout),
      records,
      this.#columns,
      shapes,
      this.#recordValues,
    );
    this.#logSource = source;
    this.#logSources++;
    return source;
  }

  /**
   * The layout of a tensors result, and its tensors in column order: each `in.*` column the
   * tensor's element type in one non-nullable FixedSizeList per dimension after the first (the
   * Arrow column the tensor stands for).
   */
  #tensorsLayout(all: readonly InputTensor[]): { layout: ResultLayout; tensors: InputTensor[] } {
    const tensors = this.#columns.map((column) => {
      const tensor = all.find((candidate) => candidate.name === column);
      // Unreachable from a request: a tensors result's columns are its tensors' names
      // (`inputColumns`), each once (the codec refuses an input sent twice).
      assert(
        tensor !== undefined,
        `InferenceResult: column "${column}" has no input tensor; a tensors result's columns must be its tensors' names`,
      );
      return tensor;
    });
    let key = 't';
    for (const tensor of tensors) {
      key += `\u0001${keyName(tensor.name)}\u0000${tensor.values.constructor.name}`;
      for (let level = 1; level < tensor.shape.length; level++) key += `,${tensor.shape[level]!}`;
    }
    const layout = this.#layout(key, () =>
      tensors.map(
        (tensor) =>
          new Field(
            `in.${tensor.name}`,
            nestedType(valuesArrowType(tensor.values), tensor.shape.slice(1)),
            false,
          ),
      ),
    );
    return { layout, tensors };
  }

  /** The layout of a records result: its `in.*` columns' shapes and the shared schema. */
  #recordsLayout(records: Record<string, unknown>[]): { layout: ResultLayout; shapes: number[][] } {
    const shapes = this.#columns.map((column, i) =>
      recordsRowShape(records, column, this.#recordValues?.[i]),
    );
    // The same columns, shapes and outputs as the last records result (every request of a busy
    // pipeline): its layout, without building and hashing the key again.
    const last = lastRecordsLayout;
    if (
      last !== null &&
      last.generation === layoutsGeneration &&
      last.matches(this.#columns, shapes, this.outputs)
    )
      return { layout: last.layout, shapes };
    let key = 'r';
    for (const [i, column] of this.#columns.entries())
      key += `\u0001${keyName(column)}\u0000${shapes[i]!.join(',')}`;
    const layout = this.#layout(key, () =>
      this.#columns.map(
        (column, i) => new Field(`in.${column}`, nestedType(new Float64(), shapes[i]!), false),
      ),
    );
    lastRecordsLayout = new RecordsLayoutSeen(this.#columns, shapes, this.outputs, layout);
    return { layout, shapes };
  }

  /**
   * `arrowFound`: the Arrow input's layout when the caller has already found it. `forLog`
   * (records only): the log's table ({@link toLogTable}), its columns logged as Float32 viewing
   * the input pass's Float32 values (or narrowed from the records), not the answer's.
   */
  #buildArrowTable(arrowFound?: { layout: ResultLayout; indexes: number[] }, forLog = false): Table {
    const input = this.#input;
    // One result batch per input batch, so `in.*` columns are reused chunk for chunk.
    const chunks: { length: number; inputs: Data[] }[] = [];
    let layout: ResultLayout;
    if (input.kind === 'arrow') {
      const found = arrowFound ?? this.#arrowLayout(input.table);
      layout = found.layout;
      const indexes = found.indexes;
      for (const batch of input.table.batches) {
        chunks.push({
          length: batch.numRows,
          inputs: indexes.map((index) => batch.data.children[index] as Data),
        });
      }
    } else if (input.kind === 'tensors') {
      const found = this.#tensorsLayout(input.tensors);
      layout = found.layout;
      const inputs = found.tensors.map((tensor, i) => {
        const type = layout.inTypes[i]!;
        return listData(
          type,
          primitiveData(leafTypeOf(type), tensor.values.length, tensor.values),
          this.rowCount,
        );
      });
      chunks.push({ length: this.rowCount, inputs });
    } else {
      const records = input.records as Record<string, unknown>[];
      const found = this.#recordsLayout(records);
      const answerLayout = found.layout;
      layout = forLog ? this.#logLayoutOf(answerLayout) : answerLayout;
      const shapes = found.shapes;
      // The input pass's values when they fill the column exactly and are of the column's leaf
      // type (the same bytes the records walk, or the narrowing, writes), viewed as they are;
      // the records walked again otherwise.
      const inputs = this.#columns.map((column, i) => {
        const type = layout.inTypes[i]!;
        const shape = shapes[i]!;
        const values = this.#recordValues?.[i] ?? null;
        const leaf = leafTypeOf(type);
        if (
          values !== null &&
          values.constructor === leaf.ArrayType &&
          values.length === records.length * shape.reduce((a, b) => a * b, 1)
        )
          return listData(type, primitiveData(leaf, values.length, values), records.length);
        const data = recordsColumnData(records, column, shape, answerLayout.inTypes[i]!);
        return type === answerLayout.inTypes[i] ? data : narrowDataToFloat32(data, type);
      });
      chunks.push({ length: this.rowCount, inputs });
    }
    const batches: RecordBatch[] = [];
    const time = BigInt(this.time);
    let start = 0;
    for (const chunk of chunks) {
      const length = chunk.length;
      const children: Data[] = [primitiveData(TIME_TYPE, length, new BigInt64Array(length).fill(time))];
      for (const data of chunk.inputs) children.push(data);
      for (const [i, output] of this.outputs.entries())
        children.push(outputData(output, start, length, layout.outTypes[i]!));
      children.push(primitiveData(CHECK_FAILURES_TYPE, length, new Uint32Array(length)));
      batches.push(recordBatchOf(layout.schema, new Data(layout.struct, 0, length, 0, undefined, children)));
      start += length;
    }
    if (!forLog) this.#tableLayout = layout;
    return resultTable(layout.schema, batches);
  }

  /**
   * The layout of an Arrow-input result, and the index in the input table of each of its
   * columns: each `in.*` column the input column's type and nullability as they are.
   */
  #arrowLayout(table: Table): { layout: ResultLayout; indexes: number[] } {
    const schemaFields = table.schema.fields;
    const indexes = this.#columns.map((column) => schemaFields.findIndex((field) => field.name === column));
    const inFields = indexes.map((index) => schemaFields[index]!);
    const key = arrowInputKey(table.schema, this.#columns, inFields);
    const layout = this.#layout(key, () =>
      inFields.map((field) => new Field(`in.${field.name}`, field.type as DataType, field.nullable)),
    );
    return { layout, indexes };
  }

  /**
   * The log rows of an Arrow-input result as an {@link ArrowLogRows} (the input columns' values
   * copied straight into the staging, no result table built), or `null` when the table must be
   * logged instead: see {@link arrowInputLeaf} for what each column must be.
   */
  #arrowLogRows(
    table: Table,
    { layout, indexes }: { layout: ResultLayout; indexes: number[] },
  ): ArrowLogRows | null {
    // One input batch only: a chunked input makes one result batch per chunk, staged one by one.
    if (table.batches.length !== 1) return null;
    const batch = table.batches[0]!;
    const rows = this.rowCount;
    if (batch.numRows !== rows) return null;
    const logLayout = this.#logLayoutOf(layout);
    // The rows' bytes in the log, from the layout and outputs alone: at the staging's cut or
    // above (Arrow batch 1000), the table is logged, so nothing of the source is built.
    let bytes = rows * 12; // time (8) and check_failures (4)
    for (const type of logLayout.inTypes) {
      const rowBytes = arrowInputRowBytes(type);
      if (rowBytes === null) return null;
      bytes += rows * rowBytes;
    }
    for (const output of this.outputs) {
      if (Array.isArray(output.data)) return null;
      bytes += output.data.byteLength;
    }
    if (bytes >= STAGE_MAX_BYTES) return null;
    const leaves: LogRowLeaf[] = [];
    const values: ArrayBufferView[] = [];
    for (let i = 0; i < indexes.length; i++) {
      const data = batch.data.children[indexes[i]!] as Data | undefined;
      if (data === undefined) return null;
      const leaf = arrowInputLeaf(data, layout.inTypes[i]!, rows);
      if (leaf === null) return null;
      // A column logged as Float32: its Float64 values rounded as they are copied.
      const narrowed = logLayout.inTypes[i] !== layout.inTypes[i];
      leaves.push(narrowed ? { kind: FLOAT32_KIND, width: leaf.leaf.width } : leaf.leaf);
      values.push(leaf.values);
    }
    const source = new ArrowLogRows(this, logLayout.schema, leaves, values, rows);
    // The staging keeps rows of STAGE_MAX_BYTES or more as they are until the writer confirms
    // them: as the table, whose batch holds the leases of buffers another thread lent (the
    // source would not, so it must always be copied, below that cut, at admission).
    if (source.leaves === null || source.byteLength >= STAGE_MAX_BYTES) return null;
    return source;
  }

  /** The cached layout for `inputKey` plus this result's outputs; `inFields` builds the `in.*` fields on a miss. */
  #layout(inputKey: string, inFields: () => Field[]): ResultLayout {
    // The same input key and outputs as the last result (every request of a busy pipeline):
    // its layout, without building the key and hashing it again.
    const last = lastLayout;
    if (
      last !== null &&
      last.generation === layoutsGeneration &&
      last.inputKey === inputKey &&
      sameOutputs(this.outputs, last.outputs)
    )
      return last.layout;
    const key = inputKey + outputsKey(this.outputs);
    let layout = layouts.get(key);
    if (!layout) {
      const ins = inFields();
      const outTypes = this.outputs.map((output) =>
        nestedType(tensorArrowType(output.type), outputShape(output)),
      );
      const fields = [
        new Field('time', TIME_TYPE, false),
        ...ins,
        ...this.outputs.map((output, i) => new Field(`out.${output.name}`, outTypes[i]!, false)),
        new Field('check_failures', CHECK_FAILURES_TYPE, false),
      ];
      layout = {
        // Read-only: every result of the layout shares it, and its encoding is cached by identity.
        schema: freezeSchema(new Schema(fields)),
        struct: new Struct(fields),
        inTypes: ins.map((field) => field.type as DataType),
        outTypes,
      };
      if (layouts.size >= MAX_LAYOUTS) {
        layouts.clear();
        layoutsGeneration++;
      }
      layouts.set(key, layout);
    }
    lastLayout = {
      generation: layoutsGeneration,
      inputKey,
      outputs: outputsSeen(this.outputs),
      layout,
    };
    return layout;
  }

  /**
   * About how many values one of {@link toRecords}' records holds: its time and check_failures,
   * each output's values per row, and each input column's (from its first record, or the
   * Arrow column's leaf values per row). What sizes the slices of a large JSON answer.
   */
  jsonValuesPerRow(): number {
    const input = this.#input;
    let values = 2;
    for (const output of this.outputs) values += rowWidth(output.dims);
    for (const column of this.#columns) {
      if (input.kind === 'records') {
        const first = (input.records as Record<string, unknown>[])[0]?.[column];
        values += Math.max(
          1,
          jsonShape(first).reduce((a, b) => a * b, 1),
        );
        continue;
      }
      if (input.kind === 'tensors') {
        const tensor = input.tensors.find((candidate) => candidate.name === column);
        const leaves = tensor?.values.length ?? 0;
        values += Math.max(1, Math.ceil(leaves / Math.max(1, this.rowCount)));
        continue;
      }
      // The column's Data in each batch, read directly: `getChild` builds a Vector per call.
      const index = input.table.schema.fields.findIndex((field) => field.name === column);
      let leaves = 0;
      if (index >= 0)
        for (const batch of input.table.batches) leaves += leafValues(batch.data.children[index] as DataTree);
      values += Math.max(1, Math.ceil(leaves / Math.max(1, this.rowCount)));
    }
    return values;
  }

  /**
   * The result as flat records: `{ time, 'in.tensor': [...], 'out.variable': [718013.75], check_failures: 0 }`;
   * rows [start, end) only when given (a large answer is written a slice at a time).
   */
  toRecords(start = 0, end = this.rowCount): Record<string, unknown>[] {
    const input = this.#input;
    const inColumns = this.#columns.map((column) => {
      if (input.kind === 'records') {
        const records = input.records as Record<string, unknown>[];
        return (row: number): unknown => records[row]![column];
      }
      // Tensors read as the result table's column of them (the Arrow column they stand for).
      if (input.kind === 'tensors') return plainReader(this.toArrowTable().getChild(`in.${column}`)!);
      return plainReader(input.table.getChild(column)!);
    });
    const outColumns = this.outputs.map((output) => {
      const width = rowWidth(output.dims);
      const rest = output.dims.slice(1);
      return (row: number): unknown => nest(output.data, row * width, width, rest);
    });
    const inKeys = this.#columns.map((column) => `in.${column}`);
    const outKeys = this.outputs.map((output) => `out.${output.name}`);
    // Packed (pushed), not `new Array(rows)`: JSON.stringify reads a holey array element by element.
    const records: Record<string, unknown>[] = [];
    for (let row = start; row < end; row++) {
      const record: Record<string, unknown> = { time: this.time };
      for (let i = 0; i < inKeys.length; i++) record[inKeys[i]!] = inColumns[i]!(row);
      for (let i = 0; i < outKeys.length; i++) record[outKeys[i]!] = outColumns[i]!(row);
      record.check_failures = 0;
      records.push(record);
    }
    return records;
  }
}

/**
 * Writes a result in a wire format: `json` (records), `arrow-file` or `arrow-stream` (IPC).
 *
 * @example
 * const { contentType, body } = encodeInferenceResult(result, 'arrow-file');
 */
export function encodeInferenceResult(
  result: InferenceResult,
  format: ResultFormat,
): { contentType: string; body: Uint8Array | string } {
  switch (format) {
    case 'json':
      return { contentType: MEDIA_TYPES.json, body: JSON.stringify(result.toRecords()) };
    case 'arrow-file':
      return { contentType: MEDIA_TYPES.arrowFile, body: arrowAnswer(result.toArrowTable(), true) };
    case 'arrow-stream':
      return { contentType: MEDIA_TYPES.arrowStream, body: arrowAnswer(result.toArrowTable(), false) };
  }
}

/** An Arrow answer in one buffer: written directly, or by apache-arrow for a layout that cannot be. */
function arrowAnswer(table: Table, file: boolean): Uint8Array {
  return encodeArrowAnswer(table, file) ?? tableToIPC(table, file ? 'file' : 'stream');
}

/**
 * Rows of a JSON answer written at once: at most this many records exist at a time, and an
 * answer with more rows is written slice by slice.
 */
export const JSON_SLICE_ROWS = 4096;

/**
 * Values (each input's and output's, a record's time and check_failures) of a JSON answer
 * written at once: a slice of wide rows holds fewer than {@link JSON_SLICE_ROWS} of them (at
 * least one), so what is written between two yields is bounded by its values, not its rows.
 */
export const JSON_SLICE_VALUES = 65_536;

/**
 * How long (ms) a large answer's encoding runs before it lets the event loop answer others
 * (health checks, small requests): one slice of {@link JSON_SLICE_ROWS} rows takes a few
 * milliseconds, so the HTTP thread is never held much longer than this.
 */
export const YIELD_AFTER_MS = 10;

/**
 * Rows of an Arrow answer from which it is written a record batch of at most this many rows
 * at a time (a larger batch of the result is written as slices of it).
 */
export const ARROW_SLICE_ROWS = 65_536;

/**
 * Values of an Arrow answer's record batch (as counted for {@link JSON_SLICE_VALUES}): a batch
 * of wide rows holds fewer than {@link ARROW_SLICE_ROWS} of them (at least one), so no one
 * write copies much more than about 16 MB.
 */
export const ARROW_SLICE_VALUES = 2 ** 21;

/**
 * Writes a result in a wire format, like {@link encodeInferenceResult}, without holding the
 * thread for long: a JSON answer of more than {@link JSON_SLICE_ROWS} rows (or
 * {@link JSON_SLICE_VALUES} values) is written slice by slice (the same bytes as one
 * `JSON.stringify` of all records), an Arrow answer of more than {@link ARROW_SLICE_ROWS} rows
 * (or {@link ARROW_SLICE_VALUES} values) as record batches of at most that many (the same rows
 * and schema), yielding to the event loop between slices; such an answer comes back as its parts
 * in order (send them one after another, `Content-Length` their total). Smaller answers are
 * encoded as {@link encodeInferenceResult} does, in one go, and come back as they are, not in a
 * promise (an await of one costs every small request a microtask).
 */
export function encodeInferenceAnswer(
  result: InferenceResult,
  format: ResultFormat,
):
  | { contentType: string; body: Uint8Array | string }
  | Promise<{ contentType: string; body: Uint8Array | string | readonly Uint8Array[] }> {
  // One row is written in one go whatever its width (and batch 1 skips the sizing). Answered
  // without a promise: the caller awaits only a sliced answer (no microtask for the others).
  if (result.rowCount <= 1) return encodeInferenceResult(result, format);
  const json = format === 'json';
  const [most, values] = json ? [JSON_SLICE_ROWS, JSON_SLICE_VALUES] : [ARROW_SLICE_ROWS, ARROW_SLICE_VALUES];
  const sliceRows = Math.max(1, Math.min(most, Math.floor(values / result.jsonValuesPerRow())));
  if (result.rowCount <= sliceRows) return encodeInferenceResult(result, format);
  return encodeInSlices(result, format, sliceRows);
}

/** {@link encodeInferenceAnswer} of an answer larger than `sliceRows`: its parts, a slice at a time. */
async function encodeInSlices(
  result: InferenceResult,
  format: ResultFormat,
  sliceRows: number,
): Promise<{ contentType: string; body: readonly Uint8Array[] }> {
  if (format === 'json')
    return { contentType: MEDIA_TYPES.json, body: await jsonRecordsInSlices(result, sliceRows) };
  const file = format === 'arrow-file';
  return {
    contentType: file ? MEDIA_TYPES.arrowFile : MEDIA_TYPES.arrowStream,
    body: await arrowInSlices(result.toArrowTable(), file, sliceRows),
  };
}

/**
 * An Arrow IPC file or stream of `table` as parts, its record batches written at most
 * `sliceRows` rows at a time. The parts are copies: the table's buffers may go
 * back to a model worker (`InferenceResult.release`) while the answer is still being sent.
 */
async function arrowInSlices(table: Table, file: boolean, sliceRows: number): Promise<Uint8Array[]> {
  const writer = file ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
  let since = performance.now();
  const pause = async (): Promise<void> => {
    if (performance.now() - since < YIELD_AFTER_MS) return;
    await yieldToEventLoop();
    since = performance.now();
  };
  for (const batch of table.batches) {
    for (let start = 0; start < batch.numRows; start += sliceRows) {
      writer.write(batch.numRows <= sliceRows ? batch : batch.slice(start, start + sliceRows));
      await pause();
    }
  }
  writer.finish();
  const parts: Uint8Array[] = [];
  for await (const chunk of writer as AsyncIterable<Uint8Array>) {
    parts.push(chunk.slice());
    await pause();
  }
  return parts;
}

/**
 * A JSON records answer as UTF-8 parts: `[`, each slice's records, `]`. A slice is
 * `JSON.stringify` of its records without the array's brackets, so the parts joined are what
 * one `JSON.stringify(result.toRecords())` gives.
 */
async function jsonRecordsInSlices(result: InferenceResult, sliceRows: number): Promise<Uint8Array[]> {
  const rows = result.rowCount;
  const parts: Uint8Array[] = [Buffer.from('[')];
  let since = performance.now();
  for (let start = 0; start < rows; start += sliceRows) {
    const end = Math.min(rows, start + sliceRows);
    const json = JSON.stringify(result.toRecords(start, end));
    parts.push(Buffer.from(start === 0 ? json.slice(1, -1) : `,${json.slice(1, -1)}`));
    if (performance.now() - since >= YIELD_AFTER_MS) {
      await yieldToEventLoop();
      since = performance.now();
    }
  }
  parts.push(Buffer.from(']'));
  return parts;
}

/** Resolves once the event loop has run its pending I/O (a macrotask later). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------- Arrow building

/** The Arrow schema and types shared by results of one signature (see `toArrowTable`). */
interface ResultLayout {
  /** Frozen (`freezeSchema`): a change to it, its fields or their metadata throws. */
  schema: Schema;
  struct: Struct;
  /** Types of the `in.*` columns, in column order. */
  inTypes: DataType[];
  /** Types of the `out.*` columns, in output order. */
  outTypes: DataType[];
}

/** Result layouts by signature; a server sees a handful, so the cache is simply emptied when full. */
const layouts = new Map<string, ResultLayout>();
const MAX_LAYOUTS = 256;
/** Counts the times {@link layouts} was emptied: a layout remembered before is not reused after. */
let layoutsGeneration = 0;

/**
 * The last records result's layout and what its key was made of (columns, their shapes, the
 * outputs' names, types and dimensions after the first): equal parts make the equal key, so
 * the same layout (and schema object) as {@link layouts} holds for it.
 */
class RecordsLayoutSeen {
  readonly generation = layoutsGeneration;
  readonly #columns: readonly string[];
  readonly #shapes: readonly (readonly number[])[];
  readonly #outputs: readonly OutputSeen[];

  constructor(
    columns: readonly string[],
    shapes: readonly (readonly number[])[],
    outputs: readonly WireTensor[],
    readonly layout: ResultLayout,
  ) {
    this.#columns = [...columns];
    this.#shapes = shapes.map((shape) => [...shape]);
    this.#outputs = outputsSeen(outputs);
  }

  /** Whether a result of these columns, shapes and outputs has this layout's key. */
  matches(
    columns: readonly string[],
    shapes: readonly (readonly number[])[],
    outputs: readonly WireTensor[],
  ): boolean {
    if (columns.length !== this.#columns.length) return false;
    for (let i = 0; i < columns.length; i++) {
      if (columns[i] !== this.#columns[i] || !sameNumbers(shapes[i]!, this.#shapes[i]!, 0)) return false;
    }
    return sameOutputs(outputs, this.#outputs);
  }
}

let lastRecordsLayout: RecordsLayoutSeen | null = null;

/**
 * An output as a layout key holds it: name, element type, dimensions after the first. The
 * outputs' part of a key ({@link outputsKey}), its copy ({@link outputsSeen}) and the
 * comparison with the copy ({@link sameOutputs}) are the one place these attributes are
 * listed: a change to the key changes all three here, and both last-layout fast paths follow.
 */
interface OutputSeen {
  readonly name: string;
  readonly type: string;
  readonly dims: readonly number[];
}

/** The last layout `#layout` gave, and the input key and outputs it was given for. */
let lastLayout: {
  readonly generation: number;
  readonly inputKey: string;
  readonly outputs: readonly OutputSeen[];
  readonly layout: ResultLayout;
} | null = null;

/** The outputs' part of a layout key. */
function outputsKey(outputs: readonly WireTensor[]): string {
  let key = '';
  for (const output of outputs)
    key += `\u0002${keyName(output.name)}\u0000${output.type}\u0000${output.dims.slice(1).join(',')}`;
  return key;
}

/** A copy of what {@link outputsKey} reads of `outputs`, for {@link sameOutputs}. */
function outputsSeen(outputs: readonly WireTensor[]): OutputSeen[] {
  return outputs.map((output) => ({ name: output.name, type: output.type, dims: output.dims.slice(1) }));
}

/** Whether `outputs` have the names, types and dimensions after the first of `seen`. */
function sameOutputs(outputs: readonly WireTensor[], seen: readonly OutputSeen[]): boolean {
  if (outputs.length !== seen.length) return false;
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs[i]!;
    const known = seen[i]!;
    if (output.name !== known.name || output.type !== known.type) return false;
    if (!sameNumbers(output.dims, known.dims, 1)) return false;
  }
  return true;
}

/** Whether `a` from index `from` on holds `b`'s numbers (and no more). */
function sameNumbers(a: readonly number[], b: readonly number[], from: number): boolean {
  if (a.length - from !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[i + from] !== b[i]) return false;
  return true;
}
const TIME_TYPE = new TimestampMillisecond();
const CHECK_FAILURES_TYPE = new Uint32();

/**
 * A name (a column's, an output's: any string a request or a model may hold) as a part of a
 * layout key: prefixed with its length, so that no name can spell the separators and parts of
 * other names and give its request another layout (review of 5 December, finding 1).
 */
function keyName(name: string): string {
  return `${name.length}:${name}`;
}

/**
 * The layout key of Arrow input columns. Requests that share a schema object (the Open
 * Inference codec's, built once per request layout) reuse the key computed for it.
 */
const arrowInputKeys = new WeakMap<Schema, { columns: readonly string[]; key: string }>();

function arrowInputKey(schema: Schema, columns: readonly string[], inFields: readonly Field[]): string {
  const known = arrowInputKeys.get(schema);
  if (known !== undefined && sameStrings(known.columns, columns)) return known.key;
  let key = 'a';
  for (const field of inFields) key += `\u0001${keyName(field.name)}\u0000${fieldKey(field)}`;
  arrowInputKeys.set(schema, { columns, key });
  return key;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A field's type with its children's names and nullability, as a cache key. */
function fieldKey(field: Field): string {
  const type = field.type as DataType;
  // Every concrete Arrow type names itself and its parameters in toString ("FixedSizeList[18]<Float32>").
  let key = `${(type as { toString(): string }).toString()}\u0000${field.nullable}`;
  for (const child of type.children ?? []) key += `(${keyName(child.name)}\u0000${fieldKey(child)})`;
  return key;
}

/** `leaf` wrapped in one non-nullable FixedSizeList per dimension of `shape`, outermost first. */
function nestedType(leaf: DataType, shape: readonly number[]): DataType {
  let type = leaf;
  for (let level = shape.length - 1; level >= 0; level--)
    type = new FixedSizeList(shape[level]!, new Field('item', type, false));
  return type;
}

/** Every output cell is a list, even for a [N] output: the shape users see is [N, 1]. */
function outputShape(output: WireTensor): number[] {
  const rest = output.dims.slice(1);
  return rest.length === 0 ? [1] : rest;
}

/**
 * A table of `schema` and `batches` as they are, as {@link recordBatchOf} makes its batches:
 * Arrow's constructor flattens its arguments through closures, compares each batch's schema
 * with the table's and reduces the offsets, ≈ 0.7 µs per request (measured in-process), when
 * every result batch already holds the shared schema object. Same prototype and own fields as
 * a constructed table (`schema`, `batches`, `_offsets`).
 *
 * Requires (unchecked, which is why it stays private to `#buildArrowTable`): every batch's
 * `schema` is `schema` itself. Arrow's schema comparison is skipped, so a batch of another
 * schema would give a table whose IPC encoding mixes schemas, without an error.
 */
function resultTable(schema: Schema, batches: RecordBatch[]): Table {
  const table = Object.create(Table.prototype) as Table & {
    schema: Schema;
    batches: RecordBatch[];
    _offsets: Uint32Array;
  };
  const offsets = new Uint32Array(batches.length + 1);
  for (let i = 0; i < batches.length; i++) offsets[i + 1] = offsets[i]! + batches[i]!.numRows;
  table.schema = schema;
  table.batches = batches;
  table._offsets = offsets;
  return table;
}

/** Non-null values of a fixed-width type, without `makeData`'s per-call conversions. */
function primitiveData(type: DataType, length: number, values: Exclude<TensorData, string[]>): Data {
  return new Data(type, 0, length, 0, [undefined, values, undefined]);
}

/** Rows [start, start+length) of an output as nested FixedSizeLists over a view of its buffer. */
function outputData(output: WireTensor, start: number, length: number, type: DataType): Data {
  const width = rowWidth(output.dims);
  const slice = Array.isArray(output.data)
    ? output.data.slice(start * width, (start + length) * width)
    : output.data.subarray(start * width, (start + length) * width);
  let leaf: Data;
  if (output.type === 'bool') {
    leaf = vectorFromArray(
      Array.from(slice as Uint8Array, (value) => value !== 0),
      new Bool(),
    ).data[0] as Data;
  } else if (output.type === 'string') {
    leaf = vectorFromArray(slice as string[], new Utf8()).data[0] as Data;
  } else {
    const values = slice as Exclude<TensorData, string[]>;
    leaf = primitiveData(leafTypeOf(type), values.length, values);
  }
  return listData(type, leaf, length);
}

/** The innermost (non-list) type of nested FixedSizeLists. */
function leafTypeOf(type: DataType): DataType {
  let current = type;
  while (current.typeId === Type.FixedSizeList) current = (current.children[0] as Field).type as DataType;
  return current;
}

/** Whether `type`'s leaf (under its FixedSizeList levels) is Float32. */
function isFloat32Leaf(type: DataType): boolean {
  const leaf = leafTypeOf(type);
  return leaf.typeId === Type.Float && (leaf as Float).precision === Precision.SINGLE;
}

/**
 * The log's layouts derived from result layouts ({@link float32LogLayout}): per result layout,
 * the last flags it was asked with and the layout they gave (a pipeline's requests ask with the
 * same flags array, so the lookup is one identity check), and the layout of every flags it was
 * asked with (by their content): layouts are shared by every pipeline whose results have the
 * same columns and outputs, and two of them whose models take the columns as different types
 * ask by turns — each must still find its one log layout, not build a new schema per request.
 */
const float32LogLayouts = new WeakMap<ResultLayout, LogLayoutsSeen>();

interface LogLayoutsSeen {
  flags: readonly boolean[];
  layout: ResultLayout;
  readonly byFlags: Map<string, ResultLayout>;
}

/**
 * `layout` with each `in.*` column whose flag is set and whose leaf is Float64 made Float32
 * ({@link narrowToFloat32}); `layout` itself when that changes no column. Cached: every result of
 * one layout and flags gets the same layout (and schema object, which the log writer keys by).
 */
function float32LogLayout(layout: ResultLayout, flags: readonly boolean[]): ResultLayout {
  let seen = float32LogLayouts.get(layout);
  if (seen !== undefined && seen.flags === flags) return seen.layout;
  let key = '';
  for (let i = 0; i < layout.inTypes.length; i++) key += flags[i] === true ? '1' : '0';
  const logLayout = seen?.byFlags.get(key) ?? buildFloat32LogLayout(layout, flags);
  if (seen === undefined) {
    seen = { flags, layout: logLayout, byFlags: new Map() };
    float32LogLayouts.set(layout, seen);
  }
  seen.byFlags.set(key, logLayout);
  seen.flags = flags;
  seen.layout = logLayout;
  return logLayout;
}

function buildFloat32LogLayout(layout: ResultLayout, flags: readonly boolean[]): ResultLayout {
  let changed = false;
  const inTypes = layout.inTypes.map((type, i) => {
    const narrowed = flags[i] === true ? narrowToFloat32(type) : null;
    if (narrowed === null) return type;
    changed = true;
    return narrowed;
  });
  if (!changed) return layout;
  const fields = layout.schema.fields.map((field, at) => {
    const i = at - 1; // `time` first, then the `in.*` columns in column order
    if (i < 0 || i >= inTypes.length || inTypes[i] === layout.inTypes[i]) return field;
    return new Field(field.name, inTypes[i]!, field.nullable, field.metadata);
  });
  return {
    schema: freezeSchema(new Schema(fields)),
    struct: new Struct(fields),
    inTypes,
    outTypes: layout.outTypes,
  };
}

/**
 * A result table (`layout`'s) as the log holds it (`logLayout`'s, from {@link float32LogLayout}):
 * the columns made Float32 get rounded copies of their values, every other column is the same
 * Data (so the leases of buffers a model worker lent are found on it as on the table).
 */
function narrowTable(table: Table, layout: ResultLayout, logLayout: ResultLayout): Table {
  const batches = table.batches.map((batch) => {
    const children = batch.data.children.map((child, at) => {
      const i = at - 1;
      if (i < 0 || i >= layout.inTypes.length || logLayout.inTypes[i] === layout.inTypes[i]) return child;
      return narrowDataToFloat32(child, logLayout.inTypes[i]!);
    });
    return recordBatchOf(
      logLayout.schema,
      new Data(logLayout.struct, 0, batch.numRows, 0, undefined, children),
    );
  });
  return resultTable(logLayout.schema, batches);
}

/** Wraps leaf values in the FixedSizeList levels of `type`, from the innermost out. */
function listData(type: DataType, leaf: Data, rows: number): Data {
  const levels: FixedSizeList[] = [];
  let current = type;
  while (current.typeId === Type.FixedSizeList) {
    levels.push(current as FixedSizeList);
    current = (current.children[0] as Field).type as DataType;
  }
  // Each level's length from the rows down, not from the leaf up: a zero-size dimension holds
  // no values, yet every row (and every cell above it) is still there, an empty list.
  const lengths: number[] = [];
  let count = rows;
  for (const list of levels) {
    lengths.push(count);
    count *= list.listSize;
  }
  let data = leaf;
  for (let level = levels.length - 1; level >= 0; level--)
    data = new Data(levels[level]!, 0, lengths[level]!, 0, undefined, [data]);
  return data;
}

/** The nested-array shape of a JSON value, following first elements. */
function jsonShape(value: unknown): number[] {
  const shape: number[] = [];
  for (let current = value; Array.isArray(current); current = current[0]) shape.push(current.length);
  return shape;
}

/**
 * The row shape of a records column: its first record's nested-array shape. When the input
 * pass wrote the column's values (only for a column of numbers or flat lists: `rows × width` of
 * them) and the first row is a list of `width` elements, that is `[width]`, found without
 * reading the list's elements again (a second walk's worth of getters on a hostile record).
 */
function recordsRowShape(
  records: Record<string, unknown>[],
  column: string,
  values: Float64Array | Float32Array | null | undefined,
): number[] {
  const first = records[0]?.[column];
  if (values != null && Array.isArray(first) && values.length === records.length * first.length)
    return [first.length];
  return jsonShape(first);
}

/** An Arrow column for a records request's input column (numbers become Float64). */
function recordsColumnData(
  records: Record<string, unknown>[],
  column: string,
  shape: readonly number[],
  type: DataType,
): Data {
  const width = shape.reduce((a, b) => a * b, 1);
  const values = new Float64Array(records.length * width);
  fillRecordsColumn(records, column, shape, values);
  return listData(type, primitiveData(leafTypeOf(type), values.length, values), records.length);
}

/**
 * Writes a records request's input column into `values` (`records.length × width` elements,
 * row after row; numbers as they are, booleans as 0/1, anything else as a Float64Array
 * assignment converts it). Every element is written, so `values` may be a reused buffer: the
 * log's staging and {@link recordsColumnData} get the same bytes.
 */
function fillRecordsColumn(
  records: Record<string, unknown>[],
  column: string,
  shape: readonly number[],
  values: Float64Array,
): void {
  const offset = fillRecordsRows(records, column, shape, values, 0, records.length, 0);
  // Rows with fewer values than the first leave the tail as a fresh array has it.
  if (offset < values.length) values.fill(0, offset);
}

/**
 * Writes rows `[from, to)` of a records request's input column into `values` from element
 * `offset` on, as {@link fillRecordsColumn} writes them, and returns the element after them:
 * the whole column written slice after slice (each from the offset the previous returned) has
 * the bytes of the column written in one go.
 */
function fillRecordsRows(
  records: Record<string, unknown>[],
  column: string,
  shape: readonly number[],
  values: Float64Array,
  from: number,
  to: number,
  offset: number,
): number {
  const width = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 1) {
    // The common case ({ tensor: [18 numbers] }): a flat loop, no recursion.
    for (let r = from; r < to; r++) {
      const row = records[r]![column] as unknown[];
      for (let i = 0; i < width; i++) {
        const value = row[i];
        values[offset++] = typeof value === 'boolean' ? Number(value) : (value as number);
      }
    }
    return offset;
  }
  const push = (value: unknown): void => {
    if (Array.isArray(value)) for (const item of value) push(item);
    else values[offset++] = typeof value === 'boolean' ? Number(value) : (value as number);
  };
  for (let r = from; r < to; r++) push(records[r]![column]);
  return offset;
}

/** Typed-array kinds (as the log's staging names them) of the fixed columns of a result. */
const TIME_KIND = kindOf(new BigInt64Array(0));
const FLOAT64_KIND = kindOf(new Float64Array(0));
const FLOAT32_KIND = kindOf(new Float32Array(0));
const CHECK_FAILURES_KIND = kindOf(new Uint32Array(0));

/**
 * The log rows of a result whose input is not an Arrow table, written straight into the log's
 * staging buffers: the same leaf columns, in the same order and with the same bytes, as the one
 * batch of {@link InferenceResult.toArrowTable} (`time`, `in.*`, `out.*`, `check_failures`).
 * Outputs that are not fixed-width numbers (bool, string), or whose length does not match the
 * rows, make {@link leaves} `null`, and the log then takes the table. A subclass writes the
 * `in.*` columns.
 */
abstract class ResultLogRows implements LogRowSource {
  readonly kind = 'log-row-source' as const;
  readonly schema: Schema;
  readonly numRows: number;
  readonly leaves: readonly LogRowLeaf[] | null;
  readonly byteLength: number;
  readonly #result: InferenceResult;
  readonly #inputs: number;

  /** `inputs`: the `in.*` leaves (kind and elements per row); `inputRows`: the rows they hold. */
  constructor(result: InferenceResult, schema: Schema, inputs: readonly LogRowLeaf[], inputRows: number) {
    this.#result = result;
    this.schema = schema;
    this.#inputs = inputs.length;
    const rows = result.rowCount;
    this.numRows = rows;
    let leaves: LogRowLeaf[] | null = [{ kind: TIME_KIND, width: 1 }];
    let bytes = rows * 8;
    for (const input of inputs) {
      leaves.push(input);
      bytes += rows * input.width * VIEW_BYTES[input.kind]!;
    }
    for (const output of result.outputs) {
      const width = rowWidth(output.dims);
      if (
        output.type === 'bool' ||
        output.type === 'string' ||
        Array.isArray(output.data) ||
        output.data.length !== rows * width
      ) {
        leaves = null;
        break;
      }
      leaves.push({ kind: kindOf(output.data), width });
      bytes += output.data.byteLength;
    }
    leaves?.push({ kind: CHECK_FAILURES_KIND, width: 1 });
    bytes += rows * 4;
    if (inputRows !== rows) leaves = null;
    this.leaves = leaves;
    this.byteLength = leaves === null ? 0 : bytes;
  }

  /** Writes `in.*` column `column` whole into `target` (every element). */
  protected abstract writeInput(column: number, target: ArrayBufferView): void;

  /**
   * Writes rows `[from, to)` of `in.*` column `column` into `target` from element `offset` on;
   * returns the element after them (the rows written slice after slice, each from the offset
   * the previous returned, are the bytes {@link writeInput} writes).
   */
  protected abstract writeInputRows(
    column: number,
    target: ArrayBufferView,
    from: number,
    to: number,
    offset: number,
  ): number;

  writeLeaf(index: number, target: ArrayBufferView): void {
    const inputs = this.#inputs;
    if (index === 0) {
      (target as BigInt64Array).fill(BigInt(this.#result.time));
    } else if (index <= inputs) {
      this.writeInput(index - 1, target);
    } else if (index <= inputs + this.#result.outputs.length) {
      const data = this.#result.outputs[index - 1 - inputs]!.data as Exclude<TensorData, string[]>;
      (target as Uint8Array).set(data as Uint8Array);
    } else {
      (target as Uint32Array).fill(0);
    }
  }

  leafWriter(index: number, target: ArrayBufferView): (rows: number) => void {
    const inputs = this.#inputs;
    const total = this.numRows;
    let row = 0;
    if (index >= 1 && index <= inputs) {
      const length = (target as Float64Array).length;
      let offset = 0;
      return (rows) => {
        const to = Math.min(total, row + rows);
        offset = this.writeInputRows(index - 1, target, row, to, offset);
        row = to;
        // As writeInput: rows with fewer values than the first leave the tail zero.
        if (row === total && offset < length) (target as Float64Array).fill(0, offset);
      };
    }
    // The other leaves are the same value per row or a copy of the output: by element ranges.
    const view = target as unknown as { length: number; subarray(a: number, b: number): ArrayBufferView };
    const width = total === 0 ? 0 : view.length / total;
    return (rows) => {
      const to = Math.min(total, row + rows);
      const part = view.subarray(row * width, to * width);
      if (index === 0) (part as BigInt64Array).fill(BigInt(this.#result.time));
      else if (index <= inputs + this.#result.outputs.length) {
        const data = this.#result.outputs[index - 1 - inputs]!.data as Exclude<TensorData, string[]>;
        (part as Uint8Array).set((data as Uint8Array).subarray(row * width, to * width));
      } else (part as Uint32Array).fill(0);
      row = to;
    };
  }

  toTable(): Table {
    return this.#result.toLogTable();
  }
}

/** Bytes per element of each typed-array kind (index in the log's `VIEW_TYPES`, see `kindOf`). */
const VIEW_BYTES: readonly number[] = (() => {
  const bytes: number[] = [];
  for (const array of [
    new Uint8Array(0),
    new Int8Array(0),
    new Uint16Array(0),
    new Int16Array(0),
    new Uint32Array(0),
    new Int32Array(0),
    new Float32Array(0),
    new Float64Array(0),
    new BigInt64Array(0),
    new BigUint64Array(0),
  ])
    bytes[kindOf(array)] = array.BYTES_PER_ELEMENT;
  return bytes;
})();

/** The log rows of a JSON records result ({@link ResultLogRows}): each `in.*` column Float64 values from the records. */
class RecordsLogRows extends ResultLogRows {
  readonly #records: Record<string, unknown>[];
  readonly #columns: readonly string[];
  readonly #shapes: readonly number[][];
  /**
   * Per column, its values from the input pass when they fill it exactly, else `null`: Float64,
   * or Float32 (its feed's) for a column logged as Float32, whose leaf is then Float32 too.
   */
  readonly #values: readonly (Float64Array | Float32Array | null)[];
  #copied = false;

  /** `layout`: the log's (a column that fed a float32 input is Float32 there, its values rounded as copied). */
  constructor(
    result: InferenceResult,
    layout: ResultLayout,
    records: Record<string, unknown>[],
    columns: readonly string[],
    shapes: readonly number[][],
    values: readonly (Float64Array | Float32Array | null)[] | null,
  ) {
    const inputs = shapes.map((shape, i) => ({
      kind: isFloat32Leaf(layout.inTypes[i]!) ? FLOAT32_KIND : FLOAT64_KIND,
      width: shape.reduce((a, b) => a * b, 1),
    }));
    super(result, layout.schema, inputs, records.length);
    this.#records = records;
    this.#columns = columns;
    this.#shapes = shapes;
    const rows = records.length;
    // Values of another length than the column's (a caller's mistake) are not used: the
    // records are read as before.
    this.#values = inputs.map((input, i) => {
      const given = values?.[i] ?? null;
      return given !== null && given.length === rows * input.width ? given : null;
    });
  }

  /** Whether the log's staging copied these rows (`copied`): it reads them no more. */
  get wasCopied(): boolean {
    return this.#copied;
  }

  copied(): void {
    this.#copied = true;
  }

  protected writeInput(column: number, target: ArrayBufferView): void {
    const values = this.#values[column];
    if (values != null) (target as Float64Array).set(values);
    else
      fillRecordsColumn(this.#records, this.#columns[column]!, this.#shapes[column]!, target as Float64Array);
  }

  protected writeInputRows(
    column: number,
    target: ArrayBufferView,
    from: number,
    to: number,
    offset: number,
  ): number {
    const values = this.#values[column];
    if (values != null) {
      return copyRows(values, values.length / this.numRows, target, from, to, offset);
    }
    const records = this.#records;
    const name = this.#columns[column]!;
    return fillRecordsRows(records, name, this.#shapes[column]!, target as Float64Array, from, to, offset);
  }
}

/**
 * The log rows of a tensors result ({@link ResultLogRows}): each `in.*` column a copy of its
 * tensor's values (their own element type), as the result table holds them.
 */
class TensorsLogRows extends ResultLogRows {
  readonly #tensors: readonly InputTensor[];

  /** `layout`: the log's (a Float64 tensor that fed a float32 input is Float32 there, its values rounded as copied). */
  constructor(result: InferenceResult, layout: ResultLayout, tensors: readonly InputTensor[]) {
    const inputs = tensors.map((tensor, i) => ({
      kind:
        tensor.values instanceof Float64Array && isFloat32Leaf(layout.inTypes[i]!)
          ? FLOAT32_KIND
          : kindOf(tensor.values),
      width: rowWidth(tensor.shape),
    }));
    super(result, layout.schema, inputs, tensors[0]?.shape[0] ?? result.rowCount);
    this.#tensors = tensors;
  }

  protected writeInput(column: number, target: ArrayBufferView): void {
    (target as Uint8Array).set(this.#tensors[column]!.values as Uint8Array);
  }

  protected writeInputRows(
    column: number,
    target: ArrayBufferView,
    from: number,
    to: number,
    offset: number,
  ): number {
    const tensor = this.#tensors[column]!;
    return copyRows(tensor.values, rowWidth(tensor.shape), target, from, to, offset);
  }
}

/**
 * Bytes a row of an `in.*` column of `type` takes in the log (elements per row × element
 * bytes), or `null` when {@link arrowInputLeaf} never takes a column of that type.
 */
function arrowInputRowBytes(type: DataType): number | null {
  let current = type;
  let width = 1;
  while (current.typeId === Type.FixedSizeList) {
    width *= (current as FixedSizeList).listSize;
    const child = (current.children[0] as Field | undefined)?.type as DataType | undefined;
    if (child === undefined) return null;
    current = child;
  }
  const typeId = current.typeId;
  if (typeId !== Type.Int && typeId !== Type.Float && typeId !== Type.Timestamp) return null;
  const T = current.ArrayType as unknown as { BYTES_PER_ELEMENT?: number };
  return T.BYTES_PER_ELEMENT === undefined ? null : width * T.BYTES_PER_ELEMENT;
}

/**
 * What an Arrow input column gives {@link ArrowLogRows}: its one leaf (kind and elements per
 * row) and the leaf's values, the first `rows × width` of which are the column's. `null` — the
 * result's table is logged instead, checked and staged as before — unless the column is exactly
 * what the staging copies from the table without a second look and the log's checks pass as
 * they are: `type` (the layout's, the input field's type) fixed-width numbers or fixed-size
 * lists of them, the data of that type at every level (type id, list size, a length of rows ×
 * the list sizes above it, values of the type's typed-array kind, one element per value), no
 * nulls at any level, enough values for `rows` rows, and no bytes beyond them (its `byteLength` is that of the values the rows hold, so the
 * staging's byte counts are the table's).
 */
function arrowInputLeaf(
  data: Data,
  type: DataType,
  rows: number,
): { leaf: LogRowLeaf; values: ArrayBufferView } | null {
  let current = data;
  let currentType = type;
  let width = 1;
  for (;;) {
    // Every level's Data must say it holds its rows' elements, as checkLogBatch requires of the
    // table (`dataProblem`): a list's items Data shorter than rows × list size is refused there.
    if (current.length !== rows * width) return null;
    if (current.type.typeId !== currentType.typeId || current.nullCount !== 0) return null;
    if (current.type.typeId !== Type.FixedSizeList) break;
    const size = (currentType as FixedSizeList).listSize;
    if ((current.type as FixedSizeList).listSize !== size) return null;
    const child = current.children[0] as Data | undefined;
    const childType = (currentType.children[0] as Field | undefined)?.type as DataType | undefined;
    if (child === undefined || childType === undefined || current.children.length !== 1) return null;
    width *= size;
    current = child;
    currentType = childType;
  }
  const typeId = currentType.typeId;
  if (typeId !== Type.Int && typeId !== Type.Float && typeId !== Type.Timestamp) return null;
  if (current.children.length !== 0 || current.stride !== 1) return null;
  const values = current.values as unknown;
  const T = currentType.ArrayType as unknown as abstract new (...args: never[]) => ArrayBufferView;
  // The type's own typed array, not a subclass of it (whose kind the staging would not know).
  if (!(values instanceof T) || values.constructor !== T) return null;
  const view = values as ArrayBufferView & { length: number; BYTES_PER_ELEMENT: number };
  const elements = rows * width;
  if (view.length < elements) return null;
  // No null bitmap, offsets or spare values: the column's bytes are the rows' values.
  if (data.byteLength !== elements * view.BYTES_PER_ELEMENT) return null;
  return { leaf: { kind: kindOf(view), width }, values: view };
}

/**
 * The log rows of an Arrow-input result ({@link ResultLogRows}): each `in.*` column a copy of
 * the input column's values (their own element type), the bytes the result table's batch
 * reuses and the staging would copy from it. Built only for columns {@link arrowInputLeaf}
 * takes.
 */
class ArrowLogRows extends ResultLogRows {
  readonly #values: readonly ArrayBufferView[];
  readonly #widths: readonly number[];

  constructor(
    result: InferenceResult,
    schema: Schema,
    inputs: readonly LogRowLeaf[],
    values: readonly ArrayBufferView[],
    rows: number,
  ) {
    super(result, schema, inputs, rows);
    this.#values = values;
    this.#widths = inputs.map((input) => input.width);
  }

  protected writeInput(column: number, target: ArrayBufferView): void {
    const values = this.#values[column]! as Uint8Array;
    (target as Uint8Array).set(values.subarray(0, (target as Uint8Array).length));
  }

  protected writeInputRows(
    column: number,
    target: ArrayBufferView,
    from: number,
    to: number,
    offset: number,
  ): number {
    return copyRows(this.#values[column]!, this.#widths[column]!, target, from, to, offset);
  }
}

/**
 * Copies rows `[from, to)` of `values` (`width` elements a row) into `target` from element
 * `offset` on, both of one element type; returns the element after them. The `in.*` leaf copy of
 * every row source whose input values are already typed (records' walk values, tensors, Arrow).
 */
function copyRows(
  values: ArrayBufferView,
  width: number,
  target: ArrayBufferView,
  from: number,
  to: number,
  offset: number,
): number {
  (target as Uint8Array).set((values as Uint8Array).subarray(from * width, to * width), offset);
  return offset + (to - from) * width;
}

// ---------------------------------------------------------------- records building

/** Row values as plain nested arrays of numbers (bigints become numbers for JSON). */
function nest(data: TensorData, offset: number, width: number, rest: readonly number[]): unknown[] {
  if (rest.length <= 1) {
    if (width === 0) return [];
    // Packed (see plainReader): JSON.stringify reads a holey array element by element.
    const first = data[offset];
    const out = [typeof first === 'bigint' ? Number(first) : first];
    for (let i = 1; i < width; i++) {
      const value = data[offset + i];
      out.push(typeof value === 'bigint' ? Number(value) : value);
    }
    return out;
  }
  const size = rest[0]!;
  const inner = size === 0 ? 0 : width / size;
  const out = new Array<unknown>(size);
  for (let i = 0; i < size; i++) out[i] = nest(data, offset + i * inner, inner, rest.slice(1));
  return out;
}

/** An Arrow cell as plain JSON-able values. */
/**
 * Reads a column's rows as plain values. A one-chunk FixedSizeList of numbers with no nulls (a
 * tensor column, and what JSON records decoded in a worker become) is read straight from its
 * values, as many times faster than apache-arrow's per-row vectors; anything else row by row.
 */
/** What {@link leafValues} reads of an Arrow `Data`. */
interface DataTree {
  readonly length: number;
  readonly children: readonly DataTree[];
}

/** Leaf values under `data` (a list's whole child, so at least what its rows hold). */
function leafValues(data: DataTree): number {
  if (data.children.length === 0) return data.length;
  let values = 0;
  for (const child of data.children) values += leafValues(child);
  return values;
}

function plainReader(vector: Vector): (row: number) => unknown {
  const data = vector.data.length === 1 ? vector.data[0] : undefined;
  const child = data?.children[0];
  if (data !== undefined && child !== undefined && (data.type as DataType).typeId === Type.FixedSizeList) {
    const width = (data.type as FixedSizeList).listSize;
    const values: unknown = child.values;
    if (
      data.offset === 0 &&
      child.offset === 0 &&
      data.nullCount === 0 &&
      child.nullCount === 0 &&
      (values instanceof Float64Array || values instanceof Float32Array || values instanceof Int32Array)
    ) {
      // A plain loop into a fresh array: no subarray view and no iterator per row (for JSON
      // records decoded in a worker, Array.from(subarray) cost more than parsing them). The
      // array is packed, not `new Array(width)`: JSON.stringify has a fast path for packed
      // arrays only and reads a holey one element by element (1000 rows of 18 numbers: 1.27 ms
      // against 0.82 for packed ones or the arrays JSON.parse made, measured in-process).
      if (width === 0) return () => [];
      return (row) => {
        const base = row * width;
        const out = [values[base]!];
        for (let i = 1; i < width; i++) out.push(values[base + i]!);
        return out;
      };
    }
  }
  return (row) => toPlain(vector.get(row));
}

function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value !== null && typeof value === 'object' && Symbol.iterator in value && typeof value !== 'string') {
    return Array.from(value as Iterable<unknown>, toPlain);
  }
  return value;
}
