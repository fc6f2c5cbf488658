import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerSendDeadline, type AnswerCut } from './answer-send-deadline.js';

const IDLE_MS = 300;
/** An answer far larger than what the kernel's buffers of a loopback connection take. */
const ANSWER_BYTES = 64 * 1024 * 1024;
let server: Server | null = null;
let deadline: AnswerSendDeadline | null = null;
const clients: Socket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  deadline?.stop();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A plain HTTP server whose connections are watched; `handle` answers each request. */
async function serve(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  cuts: number[] = [],
): Promise<number> {
  deadline = new AnswerSendDeadline(
    { idleMs: IDLE_MS, minBytesPerSecond: 16 * 1024 },
    (_socket, _why, unsent) => cuts.push(unsent),
  );
  server = createServer(handle);
  deadline.attach(server);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Answers ANSWER_BYTES in one write, and says when its response closes (sent, or cut). */
function bigAnswer(closed: (how: 'closed') => void) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    res.on('close', () => closed('closed'));
    res.end(Buffer.alloc(ANSWER_BYTES, 1));
  };
}

/** A raw connection that sends one GET and reads nothing until told to. */
function stalledClient(port: number): Socket {
  const client = connect(port, '127.0.0.1', () => client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  client.pause();
  clients.push(client);
  return client;
}

/** Resolves with `settled`'s value, or 'still open' after `ms` (a bound, not a timing assertion). */
function within<T>(settled: Promise<T>, ms: number): Promise<T | 'still open'> {
  return Promise.race([settled, new Promise<'still open'>((r) => setTimeout(() => r('still open'), ms))]);
}

describe('AnswerSendDeadline', () => {
  it('closes a connection whose client reads none of its answer, and stops watching it', async () => {
    // Before: the 64 MiB answer (and an inference request's share of the body budget) stayed
    // held for as long as the client kept the connection open, which was forever.
    const cuts: number[] = [];
    let closed!: (how: 'closed') => void;
    const how = new Promise<'closed'>((resolve) => (closed = resolve));
    const port = await serve(bigAnswer(closed), cuts);
    const client = stalledClient(port);
    let received = 0;
    const clientClosed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.on('error', () => undefined);
    expect(await within(how, 20 * IDLE_MS + 5000)).toBe('closed');
    expect(cuts).toHaveLength(1);
    expect(cuts[0]).toBeGreaterThan(0);
    // The client gets what the kernel held, then the end of the connection: never the whole answer.
    client.on('data', (chunk: Buffer) => (received += chunk.length));
    client.resume();
    await clientClosed;
    expect(received).toBeLessThan(ANSWER_BYTES);
    expect(deadline!.watching).toBe(0);
  });

  it('never cuts a client that keeps reading, however long the answer takes', async () => {
    const cuts: number[] = [];
    let closed!: (how: 'closed') => void;
    const how = new Promise<'closed'>((resolve) => (closed = resolve));
    const port = await serve(bigAnswer(closed), cuts);
    const client = stalledClient(port);
    // A reader that takes what has arrived every 5 ms: the 64 MiB take many idle periods to send.
    let received = 0;
    const reading = setInterval(() => {
      for (let chunk = client.read() as Buffer | null; chunk !== null; chunk = client.read() as Buffer | null)
        received += chunk.length;
    }, 5);
    try {
      expect(await within(how, 60_000)).toBe('closed');
      // The rest of the answer, still in the kernel when the response finished.
      while (received < ANSWER_BYTES && !client.destroyed) await new Promise((r) => setTimeout(r, 10));
    } finally {
      clearInterval(reading);
    }
    expect(cuts).toEqual([]);
    expect(received).toBeGreaterThan(ANSWER_BYTES);
  });

  it('never cuts a connection with nothing unsent: a request still being answered, an idle keep-alive', async () => {
    const cuts: number[] = [];
    const port = await serve((_req, res) => {
      // A slow model: nothing is written for several idle periods, then a small answer.
      setTimeout(() => res.end('done'), 4 * IDLE_MS);
    }, cuts);
    const client = stalledClient(port);
    client.resume();
    let text = '';
    client.setEncoding('utf8');
    client.on('data', (chunk: string) => (text += chunk));
    await new Promise((resolve) => setTimeout(resolve, 8 * IDLE_MS));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*done$/);
    expect(client.destroyed).toBe(false);
    expect(cuts).toEqual([]);
  });
});

/**
 * A connection as the deadline reads it, on a clock the test moves: `write` hands the server's
 * bytes to it (Node buffers them, libuv queues them), `read` lets the client take some (libuv's
 * queue shrinks; a write whose queue is empty completes).
 */
class FakeConnection extends EventEmitter {
  destroyed = false;
  /** Bytes the server wrote, sent or not (Node's `bytesWritten`). */
  bytesWritten = 0;
  /** Bytes of writes not yet completed (Node's `writableLength`). */
  writableLength = 0;
  readonly _handle = { writeQueueSize: 0 };
  readonly #writes: number[] = [];

  write(bytes: number): void {
    this.#writes.push(bytes);
    this.bytesWritten += bytes;
    this.writableLength += bytes;
    if (this.#writes.length === 1) this._handle.writeQueueSize = bytes;
  }

  read(bytes: number): void {
    while (bytes > 0 && this.#writes.length > 0) {
      const taken = Math.min(bytes, this._handle.writeQueueSize);
      bytes -= taken;
      this._handle.writeQueueSize -= taken;
      if (this._handle.writeQueueSize > 0) break;
      this.writableLength -= this.#writes.shift()!;
      this._handle.writeQueueSize = this.#writes[0] ?? 0;
    }
  }

  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

describe('AnswerSendDeadline minimum rate', () => {
  const GRACE_MS = 1000;
  const MIN_RATE = 16 * 1024;
  const TICK_MS = 250;

  /** A deadline on a clock the test moves, watching one connection; its cuts and the clock. */
  function watched(): {
    conn: FakeConnection;
    cuts: AnswerCut[];
    step: (ms: number) => void;
    clock: () => number;
  } {
    let clock = 0;
    const cuts: AnswerCut[] = [];
    const watcher = new AnswerSendDeadline(
      { idleMs: GRACE_MS, minBytesPerSecond: MIN_RATE },
      (_socket, why) => cuts.push(why),
      () => clock,
    );
    deadlines.push(watcher);
    const conn = new FakeConnection();
    watcher.watch(conn as unknown as Socket);
    watcher.stop(); // the test sweeps
    return {
      conn,
      cuts,
      clock: () => clock,
      step: (ms: number) => {
        clock += ms;
        watcher.sweep();
      },
    };
  }
  const deadlines: AnswerSendDeadline[] = [];
  afterEach(() => {
    for (const watcher of deadlines.splice(0)) watcher.stop();
  });

  it('cuts a client that reads a little of a large answer every sweep, slower than the minimum rate', () => {
    // Before: 1 KiB every 250 ms (4 KiB/s) was progress, so the idle deadline never came and the
    // 64 MiB answer was held for as long as the client liked (4.5 hours at that rate).
    const { conn, cuts, step, clock } = watched();
    conn.write(64 * 1024 * 1024);
    while (cuts.length === 0 && clock() < 60_000) {
      conn.read(1024);
      step(TICK_MS);
    }
    expect(cuts).toEqual(['slow']);
    expect(conn.destroyed).toBe(true);
    // The first sweep sees the bytes wait, then the grace, then the first sweep after it.
    expect(clock()).toBeLessThanOrEqual(TICK_MS + GRACE_MS + TICK_MS);
  });

  it('never cuts a client reading at the minimum rate or faster, over many answers and writes', () => {
    const { conn, cuts, step } = watched();
    // 256 KiB answers in 16 KiB writes, read at 1.25× the minimum rate, for ten minutes.
    for (let ms = 0; ms < 600_000; ms += TICK_MS) {
      if (conn.writableLength === 0) for (let i = 0; i < 16; i += 1) conn.write(16 * 1024);
      conn.read(Math.round((1.25 * MIN_RATE * TICK_MS) / 1000));
      step(TICK_MS);
    }
    expect(cuts).toEqual([]);
    expect(conn.destroyed).toBe(false);
  });

  it('measures each wait afresh: an answer read slowly at first is not held against the next one', () => {
    const { conn, cuts, step } = watched();
    // A quarter of the minimum rate, but all read within the grace.
    conn.write(3 * 1024);
    for (let ms = 0; ms < GRACE_MS && conn.writableLength > 0; ms += TICK_MS) {
      conn.read(1024);
      step(TICK_MS);
    }
    expect(conn.writableLength).toBe(0);
    step(TICK_MS);
    // The next answer, read just above the minimum rate: measured with the first, it would be under.
    conn.write(1024 * 1024);
    for (let ms = 0; ms < 20_000; ms += TICK_MS) {
      conn.read(Math.round((1.1 * MIN_RATE * TICK_MS) / 1000));
      step(TICK_MS);
    }
    expect(cuts).toEqual([]);
  });

  it('does not count an event-loop stall against the client', () => {
    const { conn, cuts, step } = watched();
    conn.write(64 * 1024 * 1024);
    // Read at twice the minimum rate, then a 10 s stall of the server (no sweep, nothing written).
    for (let ms = 0; ms < 2 * GRACE_MS; ms += TICK_MS) {
      conn.read((2 * MIN_RATE * TICK_MS) / 1000);
      step(TICK_MS);
    }
    conn.read(10 * 1024);
    step(10_000);
    for (let ms = 0; ms < 4 * GRACE_MS; ms += TICK_MS) {
      conn.read((2 * MIN_RATE * TICK_MS) / 1000);
      step(TICK_MS);
    }
    expect(cuts).toEqual([]);
  });
});
