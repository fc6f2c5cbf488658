import type { Connection, Submittable } from 'pg';

/** A parameter: text (`string`), `NULL`, or bytes given as chunks (sent in binary format). */
export type BoundValue = string | null | { chunks: readonly Uint8Array[]; bytes: number };

/** What a {@link PostgresBoundStatement} returned: its rows (text fields) and the rows it changed. */
export interface BoundResult {
  rows: (string | null)[][];
  rowCount: number;
}

/** Most bytes of the message buffer kept from one statement to the next. */
const KEEP_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The message buffer one connection's {@link PostgresBoundStatement}s are written into, reused
 * from statement to statement: a statement is only built when the driver sends it, after the
 * one before has been answered (so its bytes have left the process).
 */
export class BoundMessageBuffer {
  #buffer = Buffer.allocUnsafeSlow(64 * 1024);

  /** A buffer of at least `size` bytes (the kept one while it is big enough, else a new one). */
  take(size: number): Buffer {
    if (this.#buffer.length >= size) return this.#buffer;
    const grown = Buffer.allocUnsafeSlow(Math.max(size, Math.min(KEEP_MAX_BYTES, 2 * this.#buffer.length)));
    if (grown.length <= KEEP_MAX_BYTES) this.#buffer = grown;
    return grown;
  }
}

/**
 * One named (prepared) statement as a `pg` submittable (`client.query(statement)`), for
 * statements with large byte parameters: it writes the Parse (the first time on a
 * connection), Bind, Execute and Sync messages itself into a {@link BoundMessageBuffer},
 * copying each byte parameter once from its chunks, where the driver would grow a fresh
 * buffer per statement and copy each value into it (memory outside V8's heap that brings its
 * collections forward). Text parameters are sent as text, result fields come back as text.
 */
export class PostgresBoundStatement implements Submittable {
  /** The statement's name and text, read by the driver's bookkeeping of parsed statements. */
  readonly name: string;
  readonly text: string;
  readonly #values: readonly BoundValue[];
  readonly #buffer: BoundMessageBuffer;
  readonly #rows: (string | null)[][] = [];
  #rowCount = 0;
  #error: Error | null = null;
  #settle: ((err: Error | null, result: BoundResult | null) => void) | null = null;
  /** Resolves with the statement's result once the server has answered it. */
  readonly result: Promise<BoundResult>;

  constructor(name: string, text: string, values: readonly BoundValue[], buffer: BoundMessageBuffer) {
    if (name === '') throw new Error('a bound statement needs a name');
    for (const v of values) {
      if (v === null || typeof v === 'string') continue;
      const held = v.chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      if (held !== v.bytes) throw new Error(`a byte parameter's chunks hold ${held} bytes, not ${v.bytes}`);
    }
    this.name = name;
    this.text = text;
    this.#values = values;
    this.#buffer = buffer;
    this.result = new Promise((resolve, reject) => {
      this.#settle = (err, result) => (err !== null ? reject(err) : resolve(result as BoundResult));
    });
  }

  /** Writes the statement's messages (the driver calls it once the connection is free). */
  submit(connection: Connection): Error | undefined {
    const parsed = connection as unknown as {
      parsedStatements: Record<string, string>;
      submittedNamedStatements: Record<string, string>;
    };
    const known = parsed.parsedStatements[this.name] ?? parsed.submittedNamedStatements[this.name];
    if (known !== undefined && known !== this.text) {
      // The driver passes it to handleError and moves on to the next query.
      return new Error(`prepared statement ${this.name} was used for a different statement`);
    }
    const parse = known === undefined;
    const name = Buffer.byteLength(this.name);
    const text = Buffer.byteLength(this.text);
    let size = 10 + 5 + 5; // Execute, Sync, and Bind's code and length
    if (parse) size += 1 + 4 + name + 1 + text + 1 + 2;
    size += 1 + name + 1 + 2 + 2 * this.#values.length + 2 + 2;
    for (const v of this.#values)
      size += 4 + (v === null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.bytes);
    const buf = this.#buffer.take(size);
    let at = 0;
    if (parse) {
      buf[at] = 0x50; // 'P'
      buf.writeInt32BE(4 + name + 1 + text + 1 + 2, at + 1);
      at += 5;
      at += buf.write(this.name, at);
      buf[at++] = 0;
      at += buf.write(this.text, at);
      buf[at++] = 0;
      at = buf.writeInt16BE(0, at);
    }
    const bind = at;
    buf[at] = 0x42; // 'B'
    at += 5;
    buf[at++] = 0; // the unnamed portal
    at += buf.write(this.name, at);
    buf[at++] = 0;
    at = buf.writeInt16BE(this.#values.length, at);
    for (const v of this.#values) at = buf.writeInt16BE(v !== null && typeof v !== 'string' ? 1 : 0, at);
    at = buf.writeInt16BE(this.#values.length, at);
    for (const v of this.#values) {
      if (v === null) {
        at = buf.writeInt32BE(-1, at);
      } else if (typeof v === 'string') {
        const len = buf.write(v, at + 4);
        buf.writeInt32BE(len, at);
        at += 4 + len;
      } else {
        at = buf.writeInt32BE(v.bytes, at);
        for (const chunk of v.chunks) {
          buf.set(chunk, at);
          at += chunk.byteLength;
        }
      }
    }
    at = buf.writeInt16BE(0, at); // every result field as text
    buf.writeInt32BE(at - bind - 1, bind + 1);
    buf[at] = 0x45; // 'E': the unnamed portal, every row
    buf.writeInt32BE(9, at + 1);
    buf[at + 5] = 0;
    buf.writeInt32BE(0, at + 6);
    at += 10;
    buf[at] = 0x53; // 'S'
    at = buf.writeInt32BE(4, at + 1);
    if (at !== size) return new Error(`bound statement ${this.name}: wrote ${at} bytes, sized ${size}`);
    if (parse) parsed.submittedNamedStatements[this.name] = this.text;
    connection.stream.write(buf.subarray(0, at));
    return undefined;
  }

  handleRowDescription(): void {}

  handleDataRow(msg: { fields: (string | null)[] }): void {
    this.#rows.push(msg.fields);
  }

  handleCommandComplete(msg: { text: string }): void {
    // "INSERT 0 3", "UPDATE 1", "SELECT 2": the count is the last word.
    const count = Number(msg.text.slice(msg.text.lastIndexOf(' ') + 1));
    this.#rowCount = Number.isFinite(count) ? count : 0;
  }

  handleEmptyQuery(): void {}

  handlePortalSuspended(): void {}

  handleCopyInResponse(connection: Connection): void {
    (connection as unknown as { sendCopyFail(msg: string): void }).sendCopyFail('No source stream defined');
  }

  handleCopyData(): void {}

  /** The server refused the statement (the driver drops it as the active query; Sync still comes). */
  handleError(err: Error): void {
    this.#error = err;
    this.#done();
  }

  handleReadyForQuery(): void {
    this.#done();
  }

  #done(): void {
    const settle = this.#settle;
    this.#settle = null;
    settle?.(this.#error, { rows: this.#rows, rowCount: this.#rowCount });
  }
}
