import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERROR_CODES } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { errorBody } from './error-handler.js';

/** How slowly a request body may arrive. */
export interface BodyReceiveLimits {
  /** Longest wait for the next body bytes, ms; also the grace before {@link minBytesPerSecond} applies. */
  readonly idleMs: number;
  /** Least average rate of a body, bytes per second, once it has been arriving for `idleMs`. */
  readonly minBytesPerSecond: number;
}

/** Why a body was cut, for the log line. */
export type BodyCut = 'idle' | 'slow';

interface Watch {
  readonly res: ServerResponse;
  readonly socket: Socket;
  readonly startedAt: number;
  readonly startBytes: number;
  lastBytes: number;
  lastProgressAt: number;
  lastSweepAt: number;
  /** Time the server itself did not read (the request's buffer full): not the client's fault. */
  excusedMs: number;
}

/**
 * The receive deadline of request bodies, for every route (inference, Open Inference, uploads,
 * multipart): a body that sends nothing for `idleMs`, or whose average rate after `idleMs` is
 * under `minBytesPerSecond`, is answered 408 `request_timeout` and its connection closed, which
 * gives back what it reserved of the body budget. Node's own `requestTimeout` is a total
 * deadline (a 2 GiB model over a slow link would need hours), and Fastify turns it off; this is
 * the per-read timeout of nginx's `client_body_timeout` with the minimum rate of Apache's
 * `mod_reqtimeout` (`body=20,MinRate=500`).
 *
 * Progress is read from the socket's byte count, so watching consumes nothing and adds no
 * listener on the body. While the request's buffer is full the server is the one not reading
 * (backpressure), and that time counts neither as idle nor against the rate. One timer sweeps
 * all bodies being received; it runs only while there are some, or requests just started.
 */
export class BodyReceiveDeadline {
  readonly #watched = new Map<IncomingMessage, Watch>();
  #timer: NodeJS.Timeout | null = null;
  readonly #tickMs: number;

  constructor(
    readonly limits: BodyReceiveLimits,
    private readonly onCut: (req: IncomingMessage, why: BodyCut, receivedBytes: number) => void = () =>
      undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tickMs = Math.max(50, Math.min(1000, Math.floor(limits.idleMs / 4)));
  }

  /** Requests whose body is being watched now. */
  get watching(): number {
    return this.#watched.size;
  }

  /** Starts watching a request's body if it has one still to come. */
  watch(req: IncomingMessage, res: ServerResponse): void {
    if (req.complete) return;
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (length === undefined || Number(length) === 0)) {
      return;
    }
    // Most bodies come in the packet that brought the headers: the parser has read them once
    // this turn of the event loop's I/O is done (not yet here). Only the others are kept: a
    // request held here until a sweep would be GC work on the serving path, tens of thousands
    // of them a second at batch 1. So the requests still pending are checked at the next
    // request's start (by then they have almost all come whole, and are dropped) and at the
    // sweep, not in an immediate per loop turn: that turn polled the kernel once more per
    // request (an epoll_pwait that found nothing, 6 December 02:00). The wait is timed from
    // here, so starting it later moves no deadline.
    if (this.#pendingReqs.length > 0) this.#startPending();
    this.#pendingReqs.push(req);
    this.#pendingRes.push(res);
    this.#pendingAt.push(this.now());
    this.#pendingBytes.push(req.socket.bytesRead);
    this.#runTimer();
  }

  /** Requests whose body had not all come at their start, their responses, start times and bytes read. */
  readonly #pendingReqs: IncomingMessage[] = [];
  readonly #pendingRes: ServerResponse[] = [];
  readonly #pendingAt: number[] = [];
  readonly #pendingBytes: number[] = [];

  #startPending(): void {
    const n = this.#pendingReqs.length;
    for (let i = 0; i < n; i += 1) {
      this.#start(this.#pendingReqs[i]!, this.#pendingRes[i]!, this.#pendingAt[i]!, this.#pendingBytes[i]!);
    }
    this.#pendingReqs.length = 0;
    this.#pendingRes.length = 0;
    this.#pendingAt.length = 0;
    this.#pendingBytes.length = 0;
  }

  #runTimer(): void {
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(), this.#tickMs);
      this.#timer.unref();
    }
  }

  #start(req: IncomingMessage, res: ServerResponse, at: number, bytes: number): void {
    if (req.complete || req.socket.destroyed) return;
    this.#watched.set(req, {
      res,
      socket: req.socket,
      startedAt: at,
      startBytes: bytes,
      lastBytes: bytes,
      lastProgressAt: at,
      lastSweepAt: at,
      excusedMs: 0,
    });
  }

  /** Checks every watched body once (the timer calls it; exposed for tests). */
  sweep(): void {
    if (this.#pendingReqs.length > 0) this.#startPending();
    const at = this.now();
    const { idleMs, minBytesPerSecond } = this.limits;
    for (const [req, w] of this.#watched) {
      if (req.complete || w.socket.destroyed) {
        this.#watched.delete(req);
        continue;
      }
      const bytes = w.socket.bytesRead;
      const sinceSweep = at - w.lastSweepAt;
      w.lastSweepAt = at;
      // A sweep far later than its interval: the event loop stalled (a synchronous load, a big
      // parse), and bytes waiting in the kernel were not read meanwhile. Not the client's time.
      const stalled = Math.max(0, sinceSweep - 2 * this.#tickMs);
      if (stalled > 0) {
        w.excusedMs += stalled;
        w.lastProgressAt += stalled;
      }
      if (bytes > w.lastBytes) {
        w.lastBytes = bytes;
        w.lastProgressAt = at;
      }
      // The server is the slow reader (its buffer full, or the body paused by a pipe whose
      // destination is slow): that time counts neither as idle nor against the rate, even when
      // a few bytes came in while it drained some.
      if (req.readableLength >= req.readableHighWaterMark || req.isPaused()) {
        w.lastProgressAt = at;
        w.excusedMs += sinceSweep - stalled;
      }
      const active = at - w.startedAt - w.excusedMs;
      const received = w.lastBytes - w.startBytes;
      let why: BodyCut | null = null;
      if (at - w.lastProgressAt > idleMs) why = 'idle';
      else if (active > idleMs && received < (minBytesPerSecond * active) / 1000) why = 'slow';
      if (why === null) continue;
      this.#watched.delete(req);
      this.onCut(req, why, received);
      cut(req, w, why, idleMs, minBytesPerSecond);
    }
    if (this.#watched.size === 0) this.stop();
  }

  /** Stops the timer (the server closing); bodies still arriving are no longer watched. */
  stop(): void {
    this.#pendingReqs.length = 0;
    this.#pendingRes.length = 0;
    this.#pendingAt.length = 0;
    this.#pendingBytes.length = 0;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/**
 * Answers 408 if nothing was answered yet, then fails the body (whoever reads it sees the error:
 * an upload's partial file is removed) and closes the connection. The body has to be failed
 * explicitly: once a response has finished Node no longer aborts its request when the socket
 * closes, so a reader would wait for the rest of the body forever.
 */
function cut(req: IncomingMessage, w: Watch, why: BodyCut, idleMs: number, minBytesPerSecond: number): void {
  const { res, socket } = w;
  const message =
    why === 'idle'
      ? `The request body sent nothing for ${idleMs} ms; send the body without pauses (the server waits at most ${idleMs} ms between bytes).`
      : `The request body arrived slower than ${minBytesPerSecond} bytes per second on average; send it faster or from a closer network.`;
  const close = (): void => {
    // Emitted on the body only if it has an 'error' listener (Node's IncomingMessage).
    req.destroy(new ApiError('request_timeout', message));
    socket.destroy();
  };
  if (res.headersSent || res.writableEnded) {
    close();
    return;
  }
  // Written on the socket, not through `res`: the body's reader (Fastify's body parser, an
  // upload handler) then fails with the error `close` gives it, and Fastify answers that error
  // into the closed socket, as for a client gone away. Through `res`, Fastify found the reply
  // already sent: "Reply was already sent" (a warning), or for an upload its handler's
  // rejection logged at error level with a stack.
  const body = JSON.stringify(errorBody('request_timeout', message));
  const status = ERROR_CODES.request_timeout.status;
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`;
  // A client that reads nothing cannot keep the socket open with the answer unsent.
  const closing = setTimeout(close, 1000);
  closing.unref();
  socket.write(head + body, () => {
    clearTimeout(closing);
    close();
  });
}
