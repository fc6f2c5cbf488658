import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '@quoll/client/wire';
import type { ForwardTarget } from '../serving/index.js';
import { installErrorHandlers } from './error-handler.js';
import { FORWARDED_BY_HEADER, forwardRequest, SERVED_BY_HEADER } from './forward-request.js';

/** A node that echoes what it received: method, path, the headers that matter, the body. */
let echo: Server;
/** A node that takes the request and never answers. */
let silent: Server;
/**
 * A node whose kept-alive connections go stale: the second request on a connection is met with a
 * reset before any answer (as when the node closed or lost it while it sat in the pool); a
 * request on a fresh connection is echoed. Counts the requests it received and answered.
 */
let stale: Server;
const staleSeen = { received: 0, answered: 0 };
/** A port nobody listens on. */
let closedPort: number;
let app: FastifyInstance;
const unreachable: string[] = [];
const targetsByName = new Map<string, ForwardTarget[]>();

const urlOf = (server: Server): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const listen = async (server: Server): Promise<Server> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
};

beforeAll(async () => {
  echo = await listen(
    createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.setHeader(SERVED_BY_HEADER, 'echo-node');
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            authorization: req.headers.authorization,
            forwardedBy: req.headers[FORWARDED_BY_HEADER],
            contentType: req.headers['content-type'],
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
    }),
  );
  silent = await listen(createServer(() => undefined));
  const perSocket = new WeakMap<object, number>();
  stale = await listen(
    createServer((req: IncomingMessage, res) => {
      staleSeen.received += 1;
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n > 1) {
        req.socket.resetAndDestroy();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        staleSeen.answered += 1;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ body: Buffer.concat(chunks).toString() }));
      });
    }),
  );
  const probe = await listen(createServer());
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  targetsByName.set('failover', [
    { nodeId: 'dead', url: `http://127.0.0.1:${closedPort}` },
    { nodeId: 'echo', url: urlOf(echo) },
  ]);
  targetsByName.set('slow', [{ nodeId: 'silent', url: urlOf(silent) }]);
  targetsByName.set('stale', [{ nodeId: 'stale', url: urlOf(stale) }]);
  targetsByName.set('starting', [
    { nodeId: 'starting', url: '' },
    { nodeId: 'echo', url: urlOf(echo) },
  ]);
  targetsByName.set('none', [
    { nodeId: 'dead', url: `http://127.0.0.1:${closedPort}` },
    { nodeId: 'dead2', url: `http://127.0.0.1:${closedPort}` },
  ]);
  app = Fastify();
  installErrorHandlers(app);
  app.post<{ Params: { name: string } }>(
    '/infer/:name',
    {
      onRequest: async (req, reply) => {
        const targets = targetsByName.get(req.params.name) ?? [];
        await forwardRequest(req, reply, targets, {
          nodeId: 'here',
          timeoutMs: 500,
          onUnreachable: (id) => unreachable.push(id),
        });
        return reply;
      },
    },
    async () => ({ answeredHere: true }),
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await app.close();
  silent.closeAllConnections();
  stale.closeAllConnections();
  await Promise.all([echo, silent, stale].map((s) => new Promise((resolve) => s.close(resolve))));
});

const post = (name: string, body: string): Promise<Response> =>
  fetch(`${urlOf(app.server)}/infer/${name}?q=1`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok', 'content-type': 'application/json' },
    body,
  });

describe('forwardRequest', () => {
  it('passes over a node that refuses the connection and sends the whole request to the next, auth and all', async () => {
    const body = JSON.stringify([{ tensor: Array.from({ length: 5000 }, (_, i) => i) }]);
    const res = await post('failover', body);
    expect(res.status).toBe(200);
    expect(res.headers.get(SERVED_BY_HEADER)).toBe('echo-node');
    expect(await res.json()).toEqual({
      method: 'POST',
      url: '/infer/failover?q=1',
      authorization: 'Bearer tok',
      forwardedBy: 'here',
      contentType: 'application/json',
      body,
    });
    expect(unreachable).toEqual(['dead']);
  });

  it('answers 503 replica_unavailable naming each node when none can be reached', async () => {
    const res = await post('none', '[]');
    expect(res.status).toBe(503);
    const { error } = (await res.json()) as ErrorBody;
    expect(error.code).toBe('replica_unavailable');
    expect(error.message).toMatch(
      /^No node serving this pipeline could be reached: node dead \(http:\/\/127\.0\.0\.1:\d+\): .*ECONNREFUSED.*; node dead2 /,
    );
  });

  it('a pooled connection reset before any answer is tried once more on a fresh one, the whole body resent', async () => {
    const first = await post('stale', '"warm the pool"');
    expect(first.status).toBe(200);
    // The next request reuses the kept-alive connection, which the node resets on sight.
    const body = JSON.stringify([{ tensor: Array.from({ length: 20_000 }, (_, i) => i) }]);
    const res = await post('stale', body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ body });
    // Received on the stale connection (reset, never answered), then once more on a fresh one.
    expect(staleSeen).toEqual({ received: 3, answered: 2 });
    expect(unreachable).not.toContain('stale');
  });

  it('passes over a node that is starting and has no URL yet', async () => {
    const res = await post('starting', '[1]');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { body: string }).body).toBe('[1]');
    expect(unreachable).toContain('starting');
  });

  it('bounds the exchange: a node that never answers is a 504 timeout naming it', async () => {
    const res = await post('slow', '[]');
    expect(res.status).toBe(504);
    const { error } = (await res.json()) as ErrorBody;
    expect(error.code).toBe('timeout');
    expect(error.message).toMatch(
      /^Node silent \(http:\/\/127\.0\.0\.1:\d+\) did not answer the forwarded request within 500 ms/,
    );
  });
});
