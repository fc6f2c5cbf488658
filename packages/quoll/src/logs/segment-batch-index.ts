import { open, readFile, rename } from 'node:fs/promises';

/** Sidecar layout: Float64 words `[MAGIC, VERSION, schemaBytes, count, …count × (offset, length, rows, firstTime, lastTime)]`. */
const MAGIC = 0x514c4958; // "QLIX"
const VERSION = 1;
const HEADER_WORDS = 4;
const ENTRY_WORDS = 5;

/**
 * Where each record batch of one segment file lies, how many rows it has and the `time`
 * of its first and last row. A query binary-searches it (time is non-decreasing along the
 * file) and then reads only the byte range of the batches it needs.
 *
 * The open segment's index lives in memory and grows as the writer appends; a sealed
 * segment's index is saved beside it as `<seq>.idx` (see {@link SegmentBatchIndex.save}).
 */
export class SegmentBatchIndex {
  /** Byte length of the schema message at the start of the file. */
  readonly schemaBytes: number;
  readonly #offset: number[] = [];
  readonly #length: number[] = [];
  /** Row number (within the segment) just past each batch: cumulative row counts. */
  readonly #rowEnd: number[] = [];
  readonly #firstTime: number[] = [];
  readonly #lastTime: number[] = [];

  /** @param schemaBytes byte length of the schema message that opens the file */
  constructor(schemaBytes: number) {
    this.schemaBytes = schemaBytes;
  }

  /** Number of batches. */
  get count(): number {
    return this.#offset.length;
  }

  /** Number of rows in all batches. */
  get rows(): number {
    return this.#rowEnd[this.#rowEnd.length - 1] ?? 0;
  }

  /** File offset just past the last batch (where the next message goes). */
  get endOffset(): number {
    const n = this.count;
    return n === 0 ? this.schemaBytes : this.offset(n - 1) + this.length(n - 1);
  }

  /** Records a batch written at `offset`. Batches must be pushed in file order. */
  push(offset: number, length: number, rows: number, firstTime: number, lastTime: number): void {
    this.#offset.push(offset);
    this.#length.push(length);
    this.#rowEnd.push(this.rows + rows);
    this.#firstTime.push(firstTime);
    this.#lastTime.push(lastTime);
  }

  /** File offset of batch `b`'s message. */
  offset(b: number): number {
    return this.#offset[b] ?? 0;
  }
  /** Byte length of batch `b`'s message (metadata + body). */
  length(b: number): number {
    return this.#length[b] ?? 0;
  }
  /** First row (segment-wide numbering) of batch `b`. */
  rowStart(b: number): number {
    return b === 0 ? 0 : (this.#rowEnd[b - 1] ?? 0);
  }
  /** Rows in batch `b`. */
  rowCount(b: number): number {
    return (this.#rowEnd[b] ?? 0) - this.rowStart(b);
  }
  /** `time` of batch `b`'s first row, epoch ms. */
  firstTime(b: number): number {
    return this.#firstTime[b] ?? 0;
  }
  /** `time` of batch `b`'s last row, epoch ms. */
  lastTime(b: number): number {
    return this.#lastTime[b] ?? 0;
  }

  /** The batch holding segment row `row` (clamped to `[0, count-1]`). */
  batchOfRow(row: number): number {
    // First batch whose rowEnd > row.
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#rowEnd[mid] ?? 0) > row) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** First batch whose last time is ≥ `t` (`count` if none): where rows `≥ t` can start. */
  firstBatchEndingAtOrAfter(t: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#lastTime[mid] ?? 0) >= t) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Last batch whose first time is ≤ `t` (`-1` if none): where rows `≤ t` can end. */
  lastBatchStartingAtOrBefore(t: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#firstTime[mid] ?? 0) > t) hi = mid;
      else lo = mid + 1;
    }
    return lo - 1;
  }

  /** Serialises the index to the sidecar format. */
  toBytes(): Uint8Array {
    const n = this.count;
    const words = new Float64Array(HEADER_WORDS + n * ENTRY_WORDS);
    words.set([MAGIC, VERSION, this.schemaBytes, n]);
    for (let b = 0; b < n; b++) {
      words.set(
        [this.offset(b), this.length(b), this.rowCount(b), this.firstTime(b), this.lastTime(b)],
        HEADER_WORDS + b * ENTRY_WORDS,
      );
    }
    return new Uint8Array(words.buffer);
  }

  /**
   * Parses a sidecar; `null` when it is not one, or does not describe a file of
   * `fileBytes` bytes (the caller then rebuilds the index by scanning the segment).
   */
  static fromBytes(bytes: Uint8Array, fileBytes: number): SegmentBatchIndex | null {
    if (bytes.byteLength < HEADER_WORDS * 8 || bytes.byteLength % 8 !== 0) return null;
    const words = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const [magic, version, schemaBytes, n] = words;
    if (magic !== MAGIC || version !== VERSION || schemaBytes === undefined || n === undefined) return null;
    if (words.length !== HEADER_WORDS + n * ENTRY_WORDS) return null;
    const index = new SegmentBatchIndex(schemaBytes);
    for (let b = 0; b < n; b++) {
      const at = HEADER_WORDS + b * ENTRY_WORDS;
      const [offset = 0, length = 0, rows = 0, first = 0, last = 0] = words.subarray(at, at + ENTRY_WORDS);
      if (offset !== index.endOffset) return null;
      index.push(offset, length, rows, first, last);
    }
    // A sealed segment is the batches plus the 8-byte end-of-stream marker.
    return index.endOffset + 8 === fileBytes ? index : null;
  }

  /** Writes the sidecar durably: to a temporary file, fsync, then rename over `path`. */
  async save(path: string): Promise<void> {
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(this.toBytes());
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  }

  /** Reads a sidecar; `null` when missing or invalid for a file of `fileBytes` bytes. */
  static async load(path: string, fileBytes: number): Promise<SegmentBatchIndex | null> {
    try {
      return SegmentBatchIndex.fromBytes(await readFile(path), fileBytes);
    } catch {
      return null;
    }
  }
}
