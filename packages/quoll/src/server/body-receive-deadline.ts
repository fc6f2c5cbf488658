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
 * all bodies being received; it runs only while there are some.
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
    // this turn of the event loop's I/O is done (not yet at the next tick). Only the others are
    // kept: a request held here until a sweep would be GC work on the serving path, tens of
    // thousands of them a second at batch 1. One immediate per loop turn checks them all.
    this.#pending.push(req, res);
    if (this.#pending.length === 2) setImmediate(this.#startPending);
  }

  /** Requests (and their responses, interleaved) whose body had not all come at their start. */
  readonly #pending: (IncomingMessage | ServerResponse)[] = [];

  readonly #startPending = (): void => {
    const pending = this.#pending.splice(0);
    for (let i = 0; i < pending.length; i += 2) {
      this.#start(pending[i] as IncomingMessage, pending[i + 1] as ServerResponse);
    }
  };

  #start(req: IncomingMessage, res: ServerResponse): void {
    if (req.complete || req.socket.destroyed) return;
    const at = this.now();
    const bytes = req.socket.bytesRead;
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
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(), this.#tickMs);
      this.#timer.unref();
    }
  }

  /** Checks every watched body once (the timer calls it; exposed for tests). */
  sweep(): void {
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
