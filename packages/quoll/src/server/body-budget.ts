import { Transform } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors/index.js';

/** How many bytes of memory a body of a media type costs once read and decoded. */
export type BodyCost = (contentType: string) => number;

/**
 * The server-wide memory budget of request bodies held at once: a request reserves its body's
 * cost before the body is read and gives it back when its response ends (or its connection
 * drops). A body that could never fit is refused 413, one that does not fit now 503
 * `server_busy`, so concurrent large bodies cannot exhaust the process.
 */
export class BodyBudget {
  #inUse = 0;

  constructor(
    /** The budget, bytes. */
    readonly limit: number,
    /** Cost multiplier per media type (JSON expands when parsed). */
    readonly costOf: BodyCost = () => 1,
  ) {}

  /** Bytes currently reserved. */
  get inUse(): number {
    return this.#inUse;
  }

  /**
   * A Fastify `preParsing` hook: reserves `Content-Length` × cost up front, or chunk by chunk
   * for a body of unknown length, and releases it when the response closes.
   */
  readonly hook = (
    req: FastifyRequest,
    reply: FastifyReply,
    payload: NodeJS.ReadableStream,
  ): Promise<NodeJS.ReadableStream> => this.#reserve(req, reply, payload, this.costOf);

  /**
   * The same hook with the route's own cost per media type (e.g. the Open Inference routes,
   * whose bodies are JSON whatever Content-Type they say).
   */
  hookWith(costOf: BodyCost): typeof this.hook {
    return (req, reply, payload) => this.#reserve(req, reply, payload, costOf);
  }

  async #reserve(
    req: FastifyRequest,
    reply: FastifyReply,
    payload: NodeJS.ReadableStream,
    costOf: BodyCost,
  ): Promise<NodeJS.ReadableStream> {
    const factor = costOf(req.headers['content-type'] ?? '');
    let held = 0;
    let answered = false;
    reply.raw.once('close', () => {
      answered = true;
      this.#inUse -= held;
      held = 0;
    });
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
    return (payload as unknown as NodeJS.ReadableStream & { pipe: Transform['pipe'] }).pipe(counted);
  }
}
