import type { TensorElementType } from '@quoll/client/wire';
import type { TensorData, WireTensor } from './tensor-data.js';

/**
 * The synchronous hand-off between the HTTP thread and one model worker: a SharedArrayBuffer
 * with a few control words and one slot. An idle worker parks in `Atomics.wait` on the
 * doorbell instead of returning to its event loop; the parent writes a small run (plan key,
 * rows, feeds) into the slot, rings, and may itself wait in `Atomics.wait` for a bounded time
 * for the answer, which the worker writes into the same slot. A message to the worker rings
 * the doorbell too, so a parked worker goes back to its event loop to read it.
 *
 * Both threads import this file; the layout below is the whole protocol.
 */

/** Control words (Int32 indexes). */
export const LANE = {
  /** Bumped by the parent for every event (a slot request, a posted message, stop); the worker waits on it. */
  doorbell: 0,
  /** Messages the parent has posted (the worker leaves its park when it has received fewer). */
  posted: 1,
  /** 1 while the worker is parked (takes slot requests), else 0. */
  parked: 2,
  /** The slot's state (see {@link SLOT}); the parent waits on it. */
  state: 3,
  /** 1: the worker leaves its park for good (the parent is closing it). */
  stop: 4,
  /** The worker's run time of the last slot run, in µs. */
  runUs: 5,
  /** 1 while the parent wants an idle worker parked (0 while requests overlap: parking would only cost). */
  parkable: 6,
  /** Times the worker has parked (bumped by the worker on each park; read by tests and probes). */
  parks: 7,
} as const;

/** States of the slot. */
export const SLOT = {
  empty: 0,
  /** The parent wrote a request; the worker runs it. */
  request: 1,
  /** The worker wrote the outputs. */
  done: 2,
  /** The run failed; the slot holds `{ message, step }` as JSON. */
  failed: 3,
  /** The outputs did not fit the slot (or are no tensors): the parent sends the run again by message. */
  declined: 4,
} as const;

const CONTROL_BYTES = 64;
/** Bytes of a worker's lane: control words and the slot. */
export const LANE_BYTES = 64 * 1024;

const TYPES: readonly TensorElementType[] = [
  'float32',
  'float64',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'bool',
  'string',
];

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One side's view of a lane buffer. */
export class Lane {
  readonly buffer: SharedArrayBuffer;
  readonly control: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(LANE_BYTES)) {
    this.buffer = buffer;
    this.control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.#bytes = new Uint8Array(buffer, CONTROL_BYTES);
    this.#view = new DataView(buffer, CONTROL_BYTES);
  }

  /** Rings the doorbell: a parked worker wakes. */
  ring(): void {
    Atomics.add(this.control, LANE.doorbell, 1);
    Atomics.notify(this.control, LANE.doorbell);
  }

  /**
   * Parent: a message was posted; wakes the worker if it is parked. (The worker sets `parked`
   * before it reads `posted`, and this bumps `posted` before it reads `parked`: one of the two
   * sees the other's write, so a worker that just parked never sleeps on a message.)
   */
  posted(): void {
    Atomics.add(this.control, LANE.posted, 1);
    if (Atomics.load(this.control, LANE.parked) === 1) this.ring();
  }

  /** Sets the slot's state and wakes the parent if it waits. */
  settle(state: number): void {
    Atomics.store(this.control, LANE.state, state);
    Atomics.notify(this.control, LANE.state);
  }

  /** Writes a request; false (nothing usable written) when it does not fit. */
  writeRequest(plan: string, rows: number, feeds: readonly WireTensor[]): boolean {
    const at = this.#string(0, plan);
    if (at < 0) return false;
    if (at + 4 > this.#bytes.length) return false;
    this.#view.setUint32(at, rows);
    return this.#tensors(at + 4, feeds) >= 0;
  }

  readRequest(): { plan: string; rows: number; feeds: WireTensor[] } {
    const [plan, at] = this.#readString(0);
    const rows = this.#view.getUint32(at);
    return { plan, rows, feeds: this.#readTensors(at + 4) };
  }

  /** Writes outputs; false when they do not fit or are not tensors of a known type. */
  writeTensors(tensors: readonly WireTensor[]): boolean {
    return this.#tensors(0, tensors) >= 0;
  }

  /** Copies the tensors out of the slot (the slot is reused by the next run). */
  readTensors(): WireTensor[] {
    return this.#readTensors(0);
  }

  writeFailure(failure: { message: string; step?: number }): void {
    // A message longer than the slot is cut (it is read back as text, not parsed, when cut).
    const bytes = encoder.encode(JSON.stringify(failure));
    const length = Math.min(bytes.length, this.#bytes.length - 4);
    this.#view.setUint32(0, length);
    this.#bytes.set(bytes.subarray(0, length), 4);
  }

  readFailure(): { message: string; step?: number } {
    const length = this.#view.getUint32(0);
    const text = decoder.decode(this.#bytes.slice(4, 4 + length));
    try {
      const parsed = JSON.parse(text) as { message?: unknown; step?: unknown };
      return {
        message: String(parsed.message),
        ...(typeof parsed.step === 'number' ? { step: parsed.step } : {}),
      };
    } catch {
      return { message: text };
    }
  }

  /** Writes a length-prefixed UTF-8 string at `at`; the offset after it, or -1. */
  #string(at: number, text: string): number {
    if (at + 4 + text.length * 3 > this.#bytes.length) return -1;
    const { written } = encoder.encodeInto(text, this.#bytes.subarray(at + 4));
    this.#view.setUint32(at, written);
    return at + 4 + written;
  }

  #readString(at: number): [string, number] {
    const length = this.#view.getUint32(at);
    return [decoder.decode(this.#bytes.slice(at + 4, at + 4 + length)), at + 4 + length];
  }

  /** count, then per tensor: type, name, rank, dims (float64), data (8-aligned bytes, or JSON for strings). */
  #tensors(at: number, tensors: readonly WireTensor[]): number {
    const limit = this.#bytes.length;
    if (at + 4 > limit) return -1;
    this.#view.setUint32(at, tensors.length);
    at += 4;
    for (const tensor of tensors) {
      const type = TYPES.indexOf(tensor.type);
      if (type < 0 || at + 8 > limit) return -1;
      this.#view.setUint32(at, type);
      at = this.#string(at + 4, tensor.name);
      if (at < 0 || at + 4 + tensor.dims.length * 8 > limit) return -1;
      this.#view.setUint32(at, tensor.dims.length);
      at += 4;
      at = align(at);
      for (const dim of tensor.dims) {
        this.#view.setFloat64(at, dim);
        at += 8;
      }
      const data: unknown = tensor.data;
      if (tensor.type === 'string') {
        if (!Array.isArray(data)) return -1;
        at = this.#string(at, JSON.stringify(data));
        if (at < 0) return -1;
        continue;
      }
      const array = ARRAYS[tensor.type as keyof typeof ARRAYS];
      if (!(data instanceof array)) return -1;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (at + 8 + bytes.length > limit) return -1;
      this.#view.setUint32(at, bytes.length);
      at = align(at + 4);
      this.#bytes.set(bytes, at);
      at += bytes.length;
    }
    return at;
  }

  #readTensors(at: number): WireTensor[] {
    const count = this.#view.getUint32(at);
    at += 4;
    const tensors: WireTensor[] = [];
    for (let i = 0; i < count; i++) {
      const type = TYPES[this.#view.getUint32(at)]!;
      const [name, next] = this.#readString(at + 4);
      at = next;
      const rank = this.#view.getUint32(at);
      at = align(at + 4);
      const dims: number[] = [];
      for (let d = 0; d < rank; d++) {
        dims.push(this.#view.getFloat64(at));
        at += 8;
      }
      let data: TensorData;
      if (type === 'string') {
        const [text, after] = this.#readString(at);
        at = after;
        data = JSON.parse(text) as string[];
      } else {
        const length = this.#view.getUint32(at);
        at = align(at + 4);
        // A copy into a buffer of its own: the slot is overwritten by the next run.
        const own = this.#bytes.slice(at, at + length).buffer;
        const array = ARRAYS[type as keyof typeof ARRAYS];
        data = new array(own, 0, length / array.BYTES_PER_ELEMENT);
        at += length;
      }
      tensors.push({ name, type, dims, data });
    }
    return tensors;
  }
}

function align(at: number): number {
  return (at + 7) & ~7;
}
