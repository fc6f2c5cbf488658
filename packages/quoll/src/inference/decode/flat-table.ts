/**
 * A bounds-checked reader of one FlatBuffers table inside a byte range, for reading Arrow IPC
 * metadata that nobody has vetted yet. Every read checks that it stays inside the range and
 * throws {@link FlatBufferBoundsError} otherwise (the `flatbuffers` package reads past the end
 * as zeros, which is how corrupt offsets turn into absurd counts).
 */
export class FlatBufferBoundsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlatBufferBoundsError';
  }
}

/**
 * How much metadata work a walk may still do, in steps (one step: one table read, or one
 * small fixed slice of a loop or of a string). Flatbuffers can point many times at one table, so the work of
 * a walk is not bounded by the bytes alone; a walk that must stay cheap (on the HTTP thread)
 * gives itself a budget and stops with {@link WalkBudgetExceeded} when it runs out.
 */
export class WalkBudget {
  constructor(public left: number) {}

  /** Takes `steps` from the budget; throws {@link WalkBudgetExceeded} when there are not enough. */
  spend(steps: number): void {
    this.left -= steps;
    if (this.left < 0) throw new WalkBudgetExceeded();
  }
}

/** A budget without a limit (a walk in a decode worker, under the pool's deadline). */
export const UNLIMITED_WALK: WalkBudget = new WalkBudget(Infinity);

/** A walk ran out of its {@link WalkBudget}: not a verdict on the body, only on where to walk it. */
export class WalkBudgetExceeded extends Error {
  constructor() {
    super('The metadata walk ran out of its step budget.');
    this.name = 'WalkBudgetExceeded';
  }
}

/** One table of a flatbuffer: its position and its vtable, inside `[start, end)` of `view`. */
export class FlatTable {
  private constructor(
    private readonly view: DataView,
    private readonly start: number,
    private readonly end: number,
    private readonly pos: number,
    private readonly vtable: number,
    private readonly vtableSize: number,
    private readonly budget: WalkBudget,
  ) {}

  /** The root table of the flatbuffer stored in `[start, end)` of `view`; every table read spends a step of `budget`. */
  static root(view: DataView, start: number, end: number, budget: WalkBudget = UNLIMITED_WALK): FlatTable {
    const rootOffset = u32(view, start, end, start);
    return FlatTable.at(view, start, end, start + rootOffset, budget);
  }

  private static at(view: DataView, start: number, end: number, pos: number, budget: WalkBudget): FlatTable {
    budget.spend(1);
    const soffset = i32(view, start, end, pos);
    const vtable = pos - soffset;
    const vtableSize = u16(view, start, end, vtable);
    if (vtableSize < 4 || vtableSize % 2 !== 0) throw new FlatBufferBoundsError('bad vtable size');
    inRange(start, end, vtable, vtableSize);
    return new FlatTable(view, start, end, pos, vtable, vtableSize, budget);
  }

  /** The position of field `index`, or -1 when the field is absent. */
  private field(index: number): number {
    const entry = 4 + 2 * index;
    if (entry + 2 > this.vtableSize) return -1;
    const offset = this.view.getUint16(this.vtable + entry, true);
    return offset === 0 ? -1 : this.pos + offset;
  }

  has(index: number): boolean {
    return this.field(index) !== -1;
  }

  uint8(index: number, fallback: number): number {
    const at = this.field(index);
    if (at === -1) return fallback;
    inRange(this.start, this.end, at, 1);
    return this.view.getUint8(at);
  }

  int16(index: number, fallback: number): number {
    const at = this.field(index);
    if (at === -1) return fallback;
    inRange(this.start, this.end, at, 2);
    return this.view.getInt16(at, true);
  }

  int32(index: number, fallback: number): number {
    const at = this.field(index);
    return at === -1 ? fallback : i32(this.view, this.start, this.end, at);
  }

  /** An int64 field as a number; values outside ±2^53 come back as `Infinity` with their sign. */
  int64(index: number, fallback: number): number {
    const at = this.field(index);
    return at === -1 ? fallback : i64(this.view, this.start, this.end, at);
  }

  /** A table field, or null when absent. */
  table(index: number): FlatTable | null {
    const at = this.field(index);
    if (at === -1) return null;
    return FlatTable.at(
      this.view,
      this.start,
      this.end,
      at + u32(this.view, this.start, this.end, at),
      this.budget,
    );
  }

  /** A string field (UTF-8), or null when absent. */
  string(index: number): string | null {
    const at = this.field(index);
    if (at === -1) return null;
    const target = at + u32(this.view, this.start, this.end, at);
    const length = u32(this.view, this.start, this.end, target);
    inRange(this.start, this.end, target + 4, length);
    // Many fields may share one long string: its bytes are work too (a step per 256).
    this.budget.spend(length >>> 8);
    return Buffer.from(this.view.buffer, this.view.byteOffset + target + 4, length).toString('utf8');
  }

  /** A vector of tables; each element is read when asked for (the length is checked against the range). */
  tables(index: number): FlatTable[] {
    const vector = this.vector(index, 4);
    if (vector === null) return [];
    const out: FlatTable[] = [];
    for (let i = 0; i < vector.length; i++) {
      const slot = vector.at + 4 * i;
      out.push(
        FlatTable.at(
          this.view,
          this.start,
          this.end,
          slot + u32(this.view, this.start, this.end, slot),
          this.budget,
        ),
      );
    }
    return out;
  }

  /**
   * A vector of structs of `size` bytes: where its elements start and how many there are (the
   * whole vector is checked to lie inside the range).
   */
  vector(index: number, size: number): { at: number; length: number } | null {
    const field = this.field(index);
    if (field === -1) return null;
    const target = field + u32(this.view, this.start, this.end, field);
    const length = u32(this.view, this.start, this.end, target);
    inRange(this.start, this.end, target + 4, length * size);
    return { at: target + 4, length };
  }

  /** Spends `steps` of this walk's budget (for loops over what the table describes). */
  spend(steps: number): void {
    this.budget.spend(steps);
  }

  /** Reads an int64 inside the range (for struct members of a {@link vector}). */
  int64At(at: number): number {
    return i64(this.view, this.start, this.end, at);
  }

  int32At(at: number): number {
    return i32(this.view, this.start, this.end, at);
  }
}

function inRange(start: number, end: number, at: number, size: number): void {
  if (!(at >= start && size >= 0 && at + size <= end)) {
    throw new FlatBufferBoundsError('offset outside the message');
  }
}

function u16(view: DataView, start: number, end: number, at: number): number {
  inRange(start, end, at, 2);
  return view.getUint16(at, true);
}

function u32(view: DataView, start: number, end: number, at: number): number {
  inRange(start, end, at, 4);
  return view.getUint32(at, true);
}

function i32(view: DataView, start: number, end: number, at: number): number {
  inRange(start, end, at, 4);
  return view.getInt32(at, true);
}

function i64(view: DataView, start: number, end: number, at: number): number {
  inRange(start, end, at, 8);
  const low = view.getUint32(at, true);
  const high = view.getInt32(at + 4, true);
  // Beyond ±2^53 a count or offset is absurd anyway; say so with an infinity of the right sign.
  if (high >= 0x200000) return Infinity;
  if (high < -0x200000) return -Infinity;
  return high * 0x1_0000_0000 + low;
}
