import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import { ApiError } from '../errors/index.js';
import { formatOfMediaType } from '../inference/index.js';

/** How many bytes of memory a body of a media type costs once read and decoded. */
export type BodyCost = (contentType: string) => number;

/**
 * Memory one byte of an inference body stands for while its request is served, by format.
 * Not only the body: what decoding it makes, the model's input copy, the model's output and
 * the answer are all held until the answer is sent, and the V8 heaps that held them do not
 * hand their pages back at once. Measured with bursts of 16 concurrent 2 MiB bodies under a
 * 64 MiB budget (`test/e2e/hostile-input.test.ts`): the server's peak RSS grew by about 5.6
 * bytes per Arrow body byte in flight and 5 per JSON body byte (when Arrow counted 1, a burst
 * grew it by 170 MiB). Both count 8, so the budget bounds the growth with a margin:
 *
 * - Arrow: the body (1), the columns rebuilt from it after the decode worker (views, but the
 *   worker's heap grows too), the model input cast to its element type (1), the runtime's
 *   copy of it (1), the answer's Arrow table and IPC bytes (2), heap slack.
 * - JSON: the text (1), the parsed records or float64 columns (2–3), the model input (0.5),
 *   the answer's text, which repeats the inputs (1.5), heap slack.
 */
export const INFERENCE_BODY_COST = Object.freeze({ arrow: 8, json: 8 });

/**
 * {@link INFERENCE_BODY_COST} of a request's Content-Type; 1 for a type the endpoint does not
 * take (refused 415 before it is read).
 */
export function inferenceBodyCost(contentType: string): number {
  const format = formatOfMediaType(contentType);
  if (format === null) return 1;
  return format === 'json' ? INFERENCE_BODY_COST.json : INFERENCE_BODY_COST.arrow;
}

/**
 * What a request's property holds while it holds nothing ({@link BodyBudget.mark}): a function
 * of the same kind as the release the property holds later, so the property's type stays one.
 */
const NOTHING_HELD = (): void => undefined;

/** A Node request as {@link BodyBudget} marks it: how to give back what it holds, under the budget's key. */
type Releasable = IncomingMessage & Partial<Record<symbol, () => void>>;

/**
 * The server-wide memory budget of request bodies held at once: a request reserves its body's
 * cost before the body is read and gives it back when its response ends (or its connection
 * drops). A body that could never fit is refused 413, one that does not fit now 503
 * `server_busy`, so concurrent large bodies cannot exhaust the process.
 */
export class BodyBudget {
  #inUse = 0;
  /**
   * The property of a Node request that holds how to give back what it still holds, one key per
   * budget. Not a `WeakMap` entry per request: a scavenge does not collect an ephemeron whose
   * table is old, and the entry's value (this closure) reaches the request, so every request in
   * flight at a scavenge survived it with all it held, was copied, then promoted (issue 10:
   * ~0.9 MB promoted per scavenge of the HTTP thread at JSON batch 1 × 16, 8 KB without).
   */
  readonly #key = Symbol('BodyBudget.release');

  constructor(
    /** The budget, bytes. */
    readonly limit: number,
    /** Cost multiplier per media type (JSON expands when parsed). */
    readonly costOf: BodyCost = () => 1,
  ) {}

  /**
   * Gives `req` the budget's property, holding nothing yet. The server calls it for every
   * request it receives, before anything else reads the request, so that every Node request
   * object of the server has one hidden class, whether or not it reaches an inference route.
   * Added only when a body was reserved, the property gave inference requests a class of their
   * own, and a request of another kind (a `/metrics` scrape, a health check) ran through Node's
   * request code, which V8 had optimised for inference requests alone, in another: a first
   * scrape de-optimised `resOnFinish` and `clearIncoming` ("wrong map";
   * bench/metrics-scrape-deopt-probe.ts). The scrape also reads its request as an inference body
   * is read (metrics-scrape.ts), which the same class needs too.
   */
  mark(req: IncomingMessage): void {
    (req as Releasable)[this.#key] = NOTHING_HELD;
  }

  /** Bytes currently reserved. */
  get inUse(): number {
    return this.#inUse;
  }

  /**
   * Gives back at once what `req` holds, before its response closes: for a request whose body
   * was cut (answered 408 straight on the socket), the client may read that answer and send its
   * next request before the server sees the socket close. Later chunks of its body are not
   * counted; releasing twice, or a request that holds nothing, is a no-op.
   */
  release(req: IncomingMessage): void {
    (req as Releasable)[this.#key]?.();
  }

  /**
   * A Fastify `preParsing` hook: reserves `Content-Length` × cost up front, or chunk by chunk
   * for a body of unknown length, and releases it when the response closes. Callback style
   * (no promise per request: it runs on every inference request).
   */
  readonly hook = (
    req: FastifyRequest,
    reply: FastifyReply,
    payload: RequestPayload,
    done: (error?: Error | null, payload?: RequestPayload) => void,
  ): void => this.#run(req, reply, payload, this.costOf, done);

  /**
   * The same hook with the route's own cost per media type (e.g. the Open Inference routes,
   * whose bodies are JSON whatever Content-Type they say).
   */
  hookWith(costOf: BodyCost): typeof this.hook {
    return (req, reply, payload, done) => this.#run(req, reply, payload, costOf, done);
  }

  #run(
    req: FastifyRequest,
    reply: FastifyReply,
    payload: RequestPayload,
    costOf: BodyCost,
    done: (error?: Error | null, payload?: RequestPayload) => void,
  ): void {
    let stream: RequestPayload;
    try {
      stream = this.#reserve(req, reply, payload, costOf);
    } catch (error) {
      done(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    done(null, stream);
  }

  #reserve(
    req: FastifyRequest,
    reply: FastifyReply,
    payload: RequestPayload,
    costOf: BodyCost,
  ): RequestPayload {
    const factor = costOf(req.headers['content-type'] ?? '');
    let held = 0;
    let answered = false;
    const release = (): void => {
      answered = true;
      this.#inUse -= held;
      held = 0;
    };
    reply.raw.once('close', release);
    (req.raw as Releasable)[this.#key] = release;
    const reserve = (bytes: number): void => {
      // Chunks still arriving after the answer (a chunked body refused early) are dropped, not
      // held: counting them would keep their bytes reserved forever.
      if (answered) return;
      const cost = bytes * factor;
      if (held + cost > this.limit) {
        throw new ApiError(
          'payload_too_large',
          `The body is larger than this server holds for one request (${this.limit} bytes${factor > 1 ? `, counting ${factor} bytes per byte of ${req.headers['content-type']?.split(';', 1)[0] ?? ''}` : ''}); send fewer rows per request.`,
          { maxBytes: Math.floor(this.limit / factor) },
        );
      }
      if (this.#inUse + cost > this.limit) {
        throw new ApiError(
          'server_busy',
          'The server holds as many request bodies as its memory budget allows right now; retry shortly.',
        );
      }
      this.#inUse += cost;
      held += cost;
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isSafeInteger(declared) && declared >= 0) {
      // Over the route's own cap: Fastify refuses it 413 without reading it.
      if (declared > req.routeOptions.bodyLimit) return payload;
      reserve(declared);
      return payload;
    }
    // Chunked: reserve as the bytes arrive.
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        try {
          reserve(chunk.length);
          done(null, chunk);
        } catch (error) {
          done(error as Error);
        }
      },
    });
    return payload.pipe(counted);
  }
}
