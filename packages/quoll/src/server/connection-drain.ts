import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * How long a connection has, once a stop begins, to deliver the headers of a request it has
 * begun, ms: past it the connection is closed. A connection still receiving a request body is
 * closed only when no byte of it has arrived for this long (checked each period; a body that
 * keeps coming, too slowly, is the body-receive deadline's to cut). A request whose bytes have
 * all arrived is never cut; it runs to its answer.
 */
export const STOP_REQUEST_GRACE_MS = 5000;

/**
 * The connections of an HTTP server as a stop sees them, so that a stop ends: once {@link drain}
 * is called, every connection is closed as soon as it has no request left to answer (the answers
 * of requests in flight say `Connection: close`, and a keep-alive connection whose answer has
 * gone is closed), and a connection that has not delivered a whole request within the grace
 * ({@link STOP_REQUEST_GRACE_MS}) is closed then, unless it is receiving a body still coming
 * (an upload under way): that one is checked again each grace, and closed once it stalls.
 *
 * Node closes idle connections only once, when the server stops listening
 * (`server.close()` → `closeIdleConnections()`), and stops its header and request timeouts then:
 * a keep-alive connection whose request was in flight at that moment stayed open after its
 * answer for the keep-alive timeout (Fastify's 72 s: the server exited 73 s after SIGTERM), and
 * one that had sent half its headers was never closed at all.
 */
export class ConnectionDrain {
  /** Each open connection and its requests whose answer has not finished (with those answers). */
  readonly #connections = new Map<Socket, Map<IncomingMessage, ServerResponse>>();
  #server: Server | null = null;
  readonly #graceMs: number;
  #draining = false;
  #grace: NodeJS.Timeout | null = null;
  /** During the stop: each connection's `bytesRead` at the last check of the grace. */
  readonly #bytesAtCheck = new Map<Socket, number>();
  /** During the stop: answers made to say `Connection: close` here (the newest of their connection). */
  readonly #closing = new WeakSet<ServerResponse>();

  constructor(graceMs: number = STOP_REQUEST_GRACE_MS) {
    this.#graceMs = graceMs;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Whether a stop has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Follows every connection `server` accepts from now on. Call {@link track} for each request. */
  attach(server: Server): void {
    this.#server = server;
    server.on('connection', (socket: Socket) => {
      this.#connections.set(socket, new Map());
      socket.once('close', () => {
        this.#connections.delete(socket);
        this.#bytesAtCheck.delete(socket);
      });
    });
    server.once('close', () => this.#clearGrace());
  }

  /**
   * A request has arrived (its headers): its connection stays until its answer is done. No
   * listener is added on the hot path: answers done are dropped at the connection's next request,
   * and listened to only once a stop has begun.
   *
   * @returns false when the request must not be run: during the stop, an earlier answer on its
   *   connection has already gone out saying `Connection: close`, so this one could never be
   *   answered (RFC 9112 9.6: a server closing a pipelined connection must not have processed
   *   the requests it leaves unanswered; the client retries them elsewhere).
   */
  track(req: IncomingMessage, res: ServerResponse): boolean {
    const socket = req.socket;
    let requests = this.#connections.get(socket);
    if (requests === undefined) {
      requests = new Map();
      this.#connections.set(socket, requests);
    }
    if (this.#draining) return this.#trackDraining(socket, requests, req, res);
    // The connection's earlier requests (one, keep-alive): forgotten once answered.
    for (const [earlier, answer] of requests) if (done(answer)) requests.delete(earlier);
    requests.set(req, res);
    return true;
  }

  /** {@link track} during the stop: only the connection's newest answer says it closes. */
  #trackDraining(
    socket: Socket,
    requests: Map<IncomingMessage, ServerResponse>,
    req: IncomingMessage,
    res: ServerResponse,
  ): boolean {
    let answerable = !socket.writableEnded;
    for (const [earlier, answer] of requests) {
      if (answer.headersSent && saysClose(answer)) answerable = false;
      // Pipelined behind it now: the earlier answer is no longer the last (its headers unsent).
      else if (this.#closing.delete(answer)) answer.shouldKeepAlive = true;
      if (done(answer)) requests.delete(earlier);
    }
    requests.set(req, res);
    this.#closeAfter(socket, requests, req, res);
    this.#lastAnswer(res);
    return answerable;
  }

  /**
   * Begins the stop: the newest answer of each connection, if not begun yet, will say
   * `Connection: close` (only the newest: an earlier one saying it would end the connection
   * before the pipelined answers behind it); connections with no request close now (idle ones)
   * or after the grace (one that has begun a request and not delivered it whole by then); the
   * others close once their last answer is done.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const [socket, requests] of this.#connections) {
      let newest: ServerResponse | null = null;
      for (const [req, res] of requests) {
        if (done(res)) requests.delete(req);
        else {
          this.#closeAfter(socket, requests, req, res);
          newest = res;
        }
      }
      if (newest !== null) this.#lastAnswer(newest);
    }
    // Those with no request begun (Node does it too as it stops listening; Node 19 and later).
    this.#server?.closeIdleConnections();
    for (const socket of this.#connections.keys()) this.#bytesAtCheck.set(socket, socket.bytesRead);
    this.#armGrace();
  }

  /** During the stop: `res`, its connection's newest answer, says the connection closes (if its headers are not sent yet). */
  #lastAnswer(res: ServerResponse): void {
    if (res.headersSent || !res.shouldKeepAlive) return;
    res.shouldKeepAlive = false;
    this.#closing.add(res);
  }

  #armGrace(): void {
    this.#grace = setTimeout(() => this.#cutStalled(), this.#graceMs);
    // A process with nothing else left need not stay for it.
    this.#grace.unref();
  }

  /** During the stop: the connection closes once it has no answer left to give. */
  #closeAfter(
    socket: Socket,
    requests: Map<IncomingMessage, ServerResponse>,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    res.once('close', () => {
      requests.delete(req);
      if (requests.size === 0) closeAfterWrites(socket);
    });
  }

  /**
   * A grace is over: connections still short of a whole request are closed, but for one whose
   * request body has advanced since the last check (or is waiting in the server's own buffer):
   * it gets another grace.
   */
  #cutStalled(): void {
    this.#grace = null;
    let receiving = false;
    for (const [socket, requests] of this.#connections) {
      // Closing already, once its last answer has left (a slow reader's answer is not cut here).
      if (socket.writableEnded) continue;
      const before = this.#bytesAtCheck.get(socket);
      this.#bytesAtCheck.set(socket, socket.bytesRead);
      // No request begun (half its headers, or none): the fixed grace.
      if (requests.size === 0) {
        socket.destroy();
        continue;
      }
      let stalled = false;
      let moving = false;
      for (const req of requests.keys()) {
        if (req.complete) continue;
        // Bytes the server has not read yet (its consumer is behind): not the client's stall. A
        // connection first seen now has had no period to be judged on.
        if (req.readableLength > 0 || before === undefined || socket.bytesRead > before) moving = true;
        else stalled = true;
      }
      if (stalled && !moving) socket.destroy();
      else if (moving) receiving = true;
    }
    if (receiving) this.#armGrace();
  }

  #clearGrace(): void {
    if (this.#grace !== null) clearTimeout(this.#grace);
    this.#grace = null;
  }
}

/** Ends the connection once what was written to it has left (as Node does after a `Connection: close` answer). */
function closeAfterWrites(socket: Socket): void {
  if (socket.destroyed) return;
  socket.destroySoon();
}

/**
 * Whether an answer, its headers sent, ends its connection (`Connection: close`: the answer was
 * not keep-alive, or its handler set the header, as Fastify's 503 during a stop does; Node marks
 * both `_last` and ends the connection after it).
 */
function saysClose(res: ServerResponse): boolean {
  return !res.shouldKeepAlive || (res as ServerResponse & { _last?: boolean })._last === true;
}

/** Whether an answer is done (sent whole, or cut with its connection). */
function done(res: ServerResponse): boolean {
  return res.writableFinished || res.destroyed;
}
