import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** How slowly an answer may be read. */
export interface AnswerSendLimits {
  /** Longest time answer bytes may wait unsent with none leaving, ms; also the grace before {@link minBytesPerSecond} applies. */
  readonly idleMs: number;
  /** Least average rate an answer must leave at, bytes per second, once bytes have waited unsent for `idleMs`. */
  readonly minBytesPerSecond: number;
}

/** Why a connection was cut, for the log line. */
export type AnswerCut = 'idle' | 'slow';

interface Watch {
  /** Bytes of the connection that have left the process (written to the kernel). */
  flushed: number;
  /** libuv's bytes still to write, last seen: it shrinks as a large write goes out piece by piece. */
  queued: number;
  lastProgressAt: number;
  /** When answer bytes began waiting unsent (-1: none wait); the rate is measured from then. */
  pendingSince: number;
  /** Bytes that left since `pendingSince`, as far as seen. */
  sent: number;
  /** Of `sent`, what the write still in flight gave (its queue shrinking); counted again when it completes. */
  sentOfWrite: number;
  /** Event-loop stalls since `pendingSince`: the server wrote nothing then, not the client's time. */
  excusedMs: number;
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
 * `idleMs` can be cut too.
 *
 * A client that reads a little every `idleMs` would still hold its answer forever, so answer
 * bytes that have waited unsent for longer than `idleMs` must also leave at `minBytesPerSecond`
 * on average, measured from when they began to wait (until none wait: the next answer starts
 * over), as the body's minimum rate does for requests (`body-receive-deadline.ts`). Only time
 * while bytes wait unsent is measured, so a client that keeps up is never measured at all; one
 * reading at the minimum rate still holds an answer for its size ÷ rate. Event-loop stalls do
 * not count. One timer sweeps all connections; it runs only while there are some.
 */
export class AnswerSendDeadline {
  readonly #watched = new Map<Socket, Watch>();
  #timer: NodeJS.Timeout | null = null;
  #lastSweepAt = 0;
  readonly #tickMs: number;

  constructor(
    readonly limits: AnswerSendLimits,
    private readonly onCut: (socket: Socket, why: AnswerCut, unsentBytes: number) => void = () => undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tickMs = Math.max(50, Math.min(1000, Math.floor(limits.idleMs / 4)));
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
    this.#watched.set(socket, {
      flushed: 0,
      queued: 0,
      lastProgressAt: at,
      pendingSince: -1,
      sent: 0,
      sentOfWrite: 0,
      excusedMs: 0,
    });
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
    const { idleMs, minBytesPerSecond } = this.limits;
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
      if (unsent === 0 || w.pendingSince < 0) {
        // Nothing waits (nothing to measure), or bytes begin to wait: the measure starts here.
        w.pendingSince = unsent === 0 ? -1 : at;
        w.sent = w.sentOfWrite = w.excusedMs = 0;
        progressed(w, flushed, queued, at);
        continue;
      }
      w.excusedMs += stalled;
      if (flushed !== w.flushed) {
        // Writes completed: their bytes left, less what their queue shrinking already counted.
        w.sent += Math.max(0, flushed - w.flushed - w.sentOfWrite);
        w.sentOfWrite = 0;
        progressed(w, flushed, queued, at);
      } else if (queued !== w.queued) {
        const left = queued >= 0 && queued < w.queued ? w.queued - queued : 0;
        w.sent += left;
        w.sentOfWrite += left;
        progressed(w, flushed, queued, at);
      } else {
        w.lastProgressAt += stalled;
        if (at - w.lastProgressAt > idleMs) {
          this.#cut(socket, 'idle', unsent);
          continue;
        }
      }
      const active = at - w.pendingSince - w.excusedMs;
      if (active > idleMs && w.sent < (minBytesPerSecond * active) / 1000) this.#cut(socket, 'slow', unsent);
    }
    if (this.#watched.size === 0) this.stop();
  }

  #cut(socket: Socket, why: AnswerCut, unsent: number): void {
    this.#watched.delete(socket);
    this.onCut(socket, why, unsent);
    socket.destroy();
  }

  /** Stops the timer (the server closing); connections still open are no longer watched. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** Bytes of the connection left the process since the last sweep. */
function progressed(w: Watch, flushed: number, queued: number, at: number): void {
  w.flushed = flushed;
  w.queued = queued;
  w.lastProgressAt = at;
}

/** libuv's bytes still to write on the socket (Node's own socket timeout reads the same), -1 unknown. */
function writeQueueSize(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const size = handle?.writeQueueSize;
  return typeof size === 'number' ? size : -1;
}
