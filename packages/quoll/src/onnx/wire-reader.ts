/**
 * Reading protobuf's wire format field by field, for the ONNX readers of this folder that walk a
 * model without decoding the parts they do not need.
 */

/** The bytes are not a protobuf message of the shape read, saying why. */
export class OnnxWireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxWireError';
  }
}

/** Wire types (protobuf encoding). */
export const WIRE = { varint: 0, fixed64: 1, delimited: 2, fixed32: 5 } as const;

/** The UTF-8 text in `[start, end)` of `bytes`. */
export function utf8(bytes: Uint8Array, start: number, end: number): string {
  // Short ASCII (op types, names, tree node modes: thousands of them in a forest) without a Buffer.
  if (end - start <= 16) {
    let text = '';
    for (let at = start; at < end; at++) {
      const byte = bytes[at]!;
      if (byte >= 0x80)
        return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
      text += String.fromCharCode(byte);
    }
    return text;
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
}

/** A cursor over the fields of one protobuf message in `[pos, end)` of `bytes`. */
export class WireReader {
  constructor(
    private readonly bytes: Uint8Array,
    private pos: number,
    private readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  tag(): { field: number; wire: number } {
    const key = this.varint();
    if (key > 0xffffffff) throw new OnnxWireError(`a field key (${key}) is out of range`);
    return { field: Math.floor(key / 8), wire: key % 8 };
  }

  /** A varint as an unsigned number (exact up to 2^53). */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OnnxWireError('a varint is cut off');
      const byte = this.bytes[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 128;
    }
    throw new OnnxWireError('a varint is longer than 10 bytes');
  }

  /** A varint read as a signed 64-bit integer (as protobuf's int64), as a number. */
  int64(): number {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OnnxWireError('a varint is cut off');
      const byte = this.bytes[this.pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return Number(BigInt.asIntN(64, result));
      shift += 7n;
    }
    throw new OnnxWireError('a varint is longer than 10 bytes');
  }

  /** A varint as a signed 64-bit integer, by {@link varint} when it is below 2^53 (exact), else by {@link int64}. */
  int64Fast(): number {
    const at = this.pos;
    const value = this.varint();
    if (value < 2 ** 53) return value;
    this.pos = at;
    return this.int64();
  }

  /** Appends the values of one occurrence of a repeated int64 field (one value, or a packed run) to `into`. */
  int64s(field: number, wire: number, into: number[]): void {
    if (wire === WIRE.varint) {
      into.push(this.int64Fast());
      return;
    }
    const { start, end } = this.delimited(field, wire);
    const packed = new WireReader(this.bytes, start, end);
    while (!packed.done) into.push(packed.int64Fast());
  }

  /**
   * Appends the value of an unpacked int64 field whose key (`field * 8`) was just read, and of
   * the occurrences of that key that follow it at once (how proto2 writers, ONNX's among them,
   * write repeated ints: a key before every value), without a tag object per value.
   */
  int64Run(key: number, into: number[]): void {
    into.push(this.int64Fast());
    while (this.pos < this.end) {
      const at = this.pos;
      if (this.varint() !== key) {
        this.pos = at;
        return;
      }
      into.push(this.int64Fast());
    }
  }

  /** As {@link int64Run} for a fixed-width field (`field * 8 + 5` or `+ 1`): skips the run, returning how many values it held. */
  fixedRun(key: number, width: 4 | 8): number {
    this.advance(width);
    let count = 1;
    while (this.pos < this.end) {
      const at = this.pos;
      if (this.varint() !== key) {
        this.pos = at;
        return count;
      }
      this.advance(width);
      count++;
    }
    return count;
  }

  /** Skips one occurrence of a repeated fixed-width field (one value, or a packed run), returning how many values it held. */
  countFixed(field: number, wire: number, width: 4 | 8): number {
    if (wire === (width === 4 ? WIRE.fixed32 : WIRE.fixed64)) {
      this.advance(width);
      return 1;
    }
    const { start, end } = this.delimited(field, wire);
    return Math.floor((end - start) / width);
  }

  expect(field: number, wire: number, expected: number): void {
    if (wire !== expected) throw new OnnxWireError(`field ${field} has wire type ${wire}, not ${expected}`);
  }

  delimited(field: number, wire: number): { start: number; end: number } {
    this.expect(field, wire, WIRE.delimited);
    return this.span();
  }

  string(field: number, wire: number): string {
    const { start, end } = this.delimited(field, wire);
    return utf8(this.bytes, start, end);
  }

  /** Skips one field's value. Groups (wire types 3 and 4, deprecated, never written by ONNX) are refused. */
  skip(wire: number): void {
    switch (wire) {
      case WIRE.varint:
        this.varint();
        return;
      case WIRE.fixed64:
        this.advance(8);
        return;
      case WIRE.delimited:
        this.span();
        return;
      case WIRE.fixed32:
        this.advance(4);
        return;
      default:
        throw new OnnxWireError(`invalid wire type ${wire} at offset ${this.pos}`);
    }
  }

  private span(): { start: number; end: number } {
    const length = this.varint();
    const start = this.pos;
    this.advance(length);
    return { start, end: this.pos };
  }

  private advance(length: number): void {
    if (length > this.end - this.pos)
      throw new OnnxWireError(`a field of ${length} bytes runs past its message`);
    this.pos += length;
  }
}

/** The string in field `wanted` of the message in `[from, to)` (the last, if repeated), or `''`. */
export function readNameField(bytes: Uint8Array, from: number, to: number, wanted: number): string {
  const range = lastDelimited(bytes, from, to, wanted);
  return range === null ? '' : utf8(bytes, range.start, range.end);
}

/** Where the last length-delimited field `wanted` of the message in `[from, to)` lies, or null. */
export function lastDelimited(
  bytes: Uint8Array,
  from: number,
  to: number,
  wanted: number,
): { start: number; end: number } | null {
  let found: { start: number; end: number } | null = null;
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    if (field === wanted) found = reader.delimited(field, wire);
    else reader.skip(wire);
  }
  return found;
}
