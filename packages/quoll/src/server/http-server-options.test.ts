import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { httpServerOptions } from './http-server-options.js';

let server: Server | null = null;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** The request a server built with `httpServerOptions()` gets for a POST of `body`. */
async function requestSeen(body: Buffer): Promise<IncomingMessage> {
  let seen: (req: IncomingMessage) => void = () => undefined;
  const got = new Promise<IncomingMessage>((resolve) => (seen = resolve));
  server = createServer(httpServerOptions({ maxHeaderSize: 16 * 1024 }), (req, res) => {
    seen(req);
    req.resume();
    req.on('end', () => res.end());
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const client = request({
    port,
    host: '127.0.0.1',
    method: 'POST',
    headers: { 'content-length': body.length, connection: 'close' },
  });
  client.on('response', (res) => res.resume());
  client.end(body);
  return got;
}

describe('httpServerOptions', () => {
  it("keeps Fastify's options", () => {
    expect(httpServerOptions({ maxHeaderSize: 1234 }).maxHeaderSize).toBe(1234);
  });

  it('buffers a 72 KB body (an Arrow batch of 1000) without pushing back on the socket', async () => {
    // At Node's default 16 KiB the parser's push of the first 64 KiB read returned false: the
    // socket's reading stopped, then restarted when the body's reader attached, two epoll_ctl
    // calls a request (strace, 6 December 01:53).
    const req = await requestSeen(Buffer.alloc(72 * 1024, 1));
    expect(req.readableHighWaterMark).toBeGreaterThan(72 * 1024 + 64 * 1024);
    expect(req.socket.readableHighWaterMark).toBe(req.readableHighWaterMark);
  });
});
