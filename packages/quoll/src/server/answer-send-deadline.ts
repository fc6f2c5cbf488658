import type { Server } from 'node:http';
import type { Socket } from 'node:net';

interface Watch {
  /** Bytes of the connection that have left the process (written to the kernel). */
  flushed: number;
  /** libuv's bytes still to write, last seen: it shrinks as a large write goes out piece by piece. */
  queued: number;
  lastProgressAt: number;
}

/**
 * The send deadline of answers, for every connection: a connection whose answer bytes wait
 * unsent in the process (the client reads nothing, so its receive window and the kernel's
 * send buffer are full) and none of them leave for `idleMs` is closed. Until then the answer
 * is held in memory, and an inference request keeps its share of the body budget
 * (`body-budget.ts`) until its response closes: eight clients that never read their answers
 * held 16 MiB requests at 503 `server_busy` for everyone, indefinitely. Node itself has no
 * such deadline (Fastify's `connectionTimeout` is off, and a socket timeout would also cut
 * requests that wait for a slow model while nothing is being sent).
 *
 * Progress is read from the socket's byte counts and libuv's write queue, which shrinks as a
 * large write goes out piece by piece, so watching adds no listener on any response. A
 * connection with nothing unsent is never cut (a request still running, an idle keep-alive
 * connection, a log stream between lines). The kernel takes a slow reader's bytes in steps of
 * its send buffer (a megabyte or so), so a client that reads slower than about that much per
 * `idleMs` can be cut too. One timer sweeps all connections; it runs only while there are some.
 */
export class AnswerSendDeadline {
  readonly #watched = new Map<Socket, Watch>();
  #timer: NodeJS.Timeout | null = null;
  #lastSweepAt = 0;
  readonly #tickMs: number;

  constructor(
    /** Longest time answer bytes may wait unsent without any of them leaving, ms. */
    readonly idleMs: number,
    private readonly onCut: (socket: Socket, unsentBytes: number) => void = () => undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tickMs = Math.max(50, Math.min(1000, Math.floor(idleMs / 4)));
  }

  /** Connections being watched now. */
  get watching(): number {
    return this.#watched.size;
  }

  /** Watches every connection `server` accepts from now on; stops when it closes. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.watch(socket));
    server.once('close', () => this.stop());
  }

  /** Watches one connection until it closes. */
  watch(socket: Socket): void {
    const at = this.now();
    this.#watched.set(socket, { flushed: 0, queued: 0, lastProgressAt: at });
    socket.once('close', () => this.#watched.delete(socket));
    if (this.#timer === null) {
      this.#lastSweepAt = at;
      this.#timer = setInterval(() => this.sweep(), this.#tickMs);
      this.#timer.unref();
    }
  }

  /** Checks every watched connection once (the timer calls it; exposed for tests). */
  sweep(): void {
    const at = this.now();
    // A sweep far later than its interval: the event loop stalled, and wrote nothing meanwhile.
    const stalled = Math.max(0, at - this.#lastSweepAt - 2 * this.#tickMs);
    this.#lastSweepAt = at;
    for (const [socket, w] of this.#watched) {
      if (socket.destroyed) {
        this.#watched.delete(socket);
        continue;
      }
      const unsent = socket.writableLength;
      const flushed = socket.bytesWritten - unsent;
      const queued = writeQueueSize(socket);
      if (unsent === 0 || flushed !== w.flushed || queued !== w.queued) {
        w.flushed = flushed;
        w.queued = queued;
        w.lastProgressAt = at;
        continue;
      }
      w.lastProgressAt += stalled;
      if (at - w.lastProgressAt <= this.idleMs) continue;
      this.#watched.delete(socket);
      this.onCut(socket, unsent);
      socket.destroy();
    }
    if (this.#watched.size === 0) this.stop();
  }

  /** Stops the timer (the server closing); connections still open are no longer watched. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** libuv's bytes still to write on the socket (Node's own socket timeout reads the same), -1 unknown. */
function writeQueueSize(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const size = handle?.writeQueueSize;
  return typeof size === 'number' ? size : -1;
}
