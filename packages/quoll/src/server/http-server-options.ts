import type { ServerOptions } from 'node:http';

/**
 * How much of a request body Node's HTTP parser buffers before it stops reading the socket
 * (and of an answer before a write asks to wait): every socket's and request's high-water mark.
 * At Node's default 16 KiB, a body over it that came with its headers (an Arrow batch of 1000
 * rows is 72 KB) stopped the socket's reading in the parser's first push and restarted it
 * when the body's reader attached, a turn later: two epoll_ctl calls a request on the HTTP
 * thread (strace, 6 December 01:53). Libuv reads 64 KiB at a time; at 256 KiB a body of a few
 * reads flows through. It is a threshold, not an allocation: a connection holds more only
 * while its body's reader is slower than the client, within the body budget's reservation.
 */
export const HTTP_HIGH_WATER_MARK = 256 * 1024;

/** The options of Quoll's HTTP server: Fastify's own (`base`) with the high-water mark above. */
export function httpServerOptions(base: ServerOptions = {}): ServerOptions {
  return { ...base, highWaterMark: HTTP_HIGH_WATER_MARK };
}
