import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hasRefusedQueryParameter } from './strict-query.js';
import { ApiError } from '../errors/index.js';
import type { ForwardTarget, PipelineAddress } from '../serving/index.js';
import type { ServerContext } from './server-context.js';
import { principalOf } from './server-context.js';

/** Set on a forwarded request (the forwarding node's id): the receiver never forwards it again. */
export const FORWARDED_BY_HEADER = 'x-quoll-forwarded-by';
/** Set on every inference answer of a cluster node: the id of the node that ran it. */
export const SERVED_BY_HEADER = 'x-quoll-served-by';

/** Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and `host`. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

/** What {@link forwardRequest} needs besides the request. */
export interface ForwardOptions {
  /** This node's id (sent in {@link FORWARDED_BY_HEADER}). */
  nodeId: string;
  /** The bound on one forwarded exchange, from connecting to the answer's last byte, ms. */
  timeoutMs: number;
  /** Told of a node that could not be reached (it is tried last for a while). */
  onUnreachable: (nodeId: string) => void;
}

/**
 * The request body as far as it was read from the caller while an attempt on a pooled
 * connection went on, to send again on a fresh connection; `ended`: that was all of it.
 */
interface Replay {
  chunks: Buffer[];
  ended: boolean;
}

/**
 * How one attempt ended: answered (the reply is streaming), or the node could not be reached;
 * with `replay`, a pooled connection failed before any answer and the request may be sent
 * again, whole, on a fresh connection.
 */
type Attempt = { sent: true } | { sent: false; reason: string; replay?: Replay };

/**
 * Most request-body bytes kept for a resend while a request on a pooled connection has no
 * answer yet; a larger body read before the failure is not resent (the caller gets the 503).
 */
const REPLAY_LIMIT_BYTES = 4 * 1024 * 1024;

/** Socket errors of a pooled connection the node had closed or lost: nothing of the request was taken. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE']);

class ForwardTimeout extends Error {}

/** How long a node may take to accept the connection before the next one is tried, ms. */
const CONNECT_TIMEOUT_MS = 2_000;

/**
 * Sends the request, as it arrives (body streamed, not buffered; the same method, path, query
 * and headers, the caller's `Authorization` included), to the first of `targets` that can be
 * reached, and streams its answer back (status, headers and body). A node that refuses the
 * connection is skipped before a byte of the body is read, so the next one gets the whole
 * request. Throws `replica_unavailable` when no target could be reached (or one failed
 * mid-request) and `timeout` when the exchange outlasts `timeoutMs`.
 *
 * A kept-alive (pooled) connection that fails with a reset or a broken pipe before any byte of
 * the answer is tried once more on a fresh connection, with the body read so far sent again
 * (kept up to {@link REPLAY_LIMIT_BYTES}): the node had closed or lost that connection (its
 * idle timeout, a restart, a crash), so it took nothing of this request — Node's own advice for
 * `reusedSocket`. A failure on a fresh connection, or after the answer began, is never resent.
 */
export async function forwardRequest(
  req: FastifyRequest,
  reply: FastifyReply,
  targets: readonly ForwardTarget[],
  options: ForwardOptions,
): Promise<void> {
  const failures: Array<{ node: string; url: string; reason: string }> = [];
  // Once part of the body was read for a pooled connection that failed, every later attempt
  // sends it again first (on a fresh connection).
  let replay: Replay | undefined;
  for (const target of targets) {
    let attempt = await forwardOnce(req, reply, target, options, replay);
    if (!attempt.sent && attempt.replay !== undefined) {
      replay = attempt.replay;
      attempt = await forwardOnce(req, reply, target, options, replay);
    }
    if (attempt.sent) return;
    options.onUnreachable(target.nodeId);
    failures.push({ node: target.nodeId, url: target.url, reason: attempt.reason });
  }
  throw new ApiError(
    'replica_unavailable',
    `No node serving this pipeline could be reached: ${failures
      .map((f) => `node ${f.node} (${f.url}): ${f.reason}`)
      .join('; ')}. Retry shortly.`,
    { nodes: failures },
  );
}

function forwardOnce(
  req: FastifyRequest,
  reply: FastifyReply,
  target: ForwardTarget,
  options: ForwardOptions,
  replay?: Replay,
): Promise<Attempt> {
  // A node that is starting has no URL yet (unless QUOLL_NODE_URL gives one): passed over.
  if (target.url === '') return Promise.resolve({ sent: false, reason: 'it is starting (no URL yet)' });
  return new Promise<Attempt>((resolve, reject) => {
    const url = new URL(req.raw.url ?? '/', target.url);
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    headers[FORWARDED_BY_HEADER] = options.nodeId;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    // A resend goes on a connection of its own (`agent: false`), never on another pooled one.
    const upstream = send(url, {
      method: req.method,
      headers,
      ...(replay === undefined ? {} : { agent: false }),
    });
    let bodyStarted = false;
    // The body read for a pooled connection, while it may still be resent (null: it may not).
    let kept: Buffer[] | null = null;
    let keptBytes = 0;
    const keep = (chunk: Buffer): void => {
      if (kept === null) return;
      keptBytes += chunk.length;
      if (keptBytes > REPLAY_LIMIT_BYTES) kept = null;
      else kept.push(chunk);
    };
    const stopKeeping = (): void => {
      req.raw.off('data', keep);
    };
    let answered = false;
    const deadline = setTimeout(() => upstream.destroy(new ForwardTimeout()), options.timeoutMs);
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    // A node that does not even connect in time is passed over for the next one.
    const connectTimer = setTimeout(
      () => {
        if (!bodyStarted) upstream.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`));
      },
      Math.min(CONNECT_TIMEOUT_MS, options.timeoutMs),
    );
    upstream.on('socket', (socket) => {
      // Small answers must not wait for a delayed ACK (Nagle) on a kept-alive connection.
      socket.setNoDelay(true);
      // The body is read only once the node is connected: a refused connection leaves it
      // whole for the next node.
      const go = (): void => {
        clearTimeout(connectTimer);
        bodyStarted = true;
        if (replay !== undefined) {
          for (const chunk of replay.chunks) upstream.write(chunk);
          if (!hasBody || replay.ended) upstream.end();
          else req.raw.pipe(upstream);
          return;
        }
        if (upstream.reusedSocket) {
          kept = [];
          if (hasBody) req.raw.on('data', keep);
        }
        if (hasBody) req.raw.pipe(upstream);
        else upstream.end();
      };
      if (socket.connecting) socket.once('connect', go);
      else go();
    });
    // The caller went away: so does the forwarded request.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) upstream.destroy();
    });
    upstream.on('response', (res: IncomingMessage) => {
      answered = true;
      stopKeeping();
      kept = null;
      const done = (): void => clearTimeout(deadline);
      res.once('end', done);
      res.once('close', done);
      void reply.status(res.statusCode ?? 502);
      for (const [name, value] of Object.entries(res.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) void reply.header(name, value);
      }
      if (res.headers[SERVED_BY_HEADER] === undefined) void reply.header(SERVED_BY_HEADER, target.nodeId);
      void reply.send(res);
      resolve({ sent: true });
    });
    upstream.on('error', (err) => {
      clearTimeout(deadline);
      clearTimeout(connectTimer);
      stopKeeping();
      if (answered) return; // The answer's stream fails and the caller sees it cut.
      const code = (err as NodeJS.ErrnoException).code;
      if (kept !== null && code !== undefined && STALE_SOCKET_CODES.has(code)) {
        // Nothing more is read until the resend pipes the rest.
        if (hasBody) {
          req.raw.unpipe(upstream);
          req.raw.pause();
        }
        resolve({
          sent: false,
          reason: err.message,
          replay: { chunks: kept, ended: !hasBody || req.raw.readableEnded },
        });
        return;
      }
      if (err instanceof ForwardTimeout) {
        reject(
          new ApiError(
            'timeout',
            `Node ${target.nodeId} (${target.url}) did not answer the forwarded request within ${options.timeoutMs} ms (QUOLL_FORWARD_TIMEOUT_MS).`,
            { node: target.nodeId, timeoutMs: options.timeoutMs },
          ),
        );
      } else if (!bodyStarted) {
        resolve({ sent: false, reason: err.message });
      } else {
        reject(
          new ApiError(
            'replica_unavailable',
            `Node ${target.nodeId} (${target.url}) failed while the request was forwarded to it: ${err.message}. Retry shortly.`,
            { nodes: [{ node: target.nodeId, url: target.url, reason: err.message }] },
          ),
        );
      }
    });
  });
}

/**
 * A route's `onRequest` hook on a node of a cluster: forwards the request to a node serving
 * the pipeline when this one does not (see `InferenceService.route`), else lets it through;
 * marks every answer with the node that ran it. Nothing on the embedded home.
 */
export function forwardingHook(
  ctx: ServerContext,
  addressOf: (req: FastifyRequest) => PipelineAddress,
): ((req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>) | undefined {
  const directory = ctx.replicaDirectory;
  if (directory === null) return undefined;
  const options: ForwardOptions = {
    nodeId: ctx.nodeId,
    timeoutMs: ctx.config.forwardTimeoutMs,
    onUnreachable: (nodeId) => directory.unreachable(nodeId),
  };
  return async (req, reply) => {
    // A request its route will refuse is refused here, by the route's own validation, as on
    // any node: never forwarded, nor answered by where the pipeline lives.
    if (hasRefusedQueryParameter(req)) return undefined;
    const forwarded = req.headers[FORWARDED_BY_HEADER] !== undefined;
    const route = await ctx.inference.route(principalOf(req), addressOf(req), forwarded);
    if (route.kind === 'local') {
      void reply.header(SERVED_BY_HEADER, ctx.nodeId);
      return undefined;
    }
    await forwardRequest(req, reply, route.targets, options);
    return reply;
  };
}
