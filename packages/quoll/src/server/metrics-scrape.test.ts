import { IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { metricsScrape } from './metrics-scrape.js';
import type { ServerContext } from './server-context.js';

// V8's own answer to "do these two objects have the same hidden class", for objects whose
// class decides whether shared code stays optimised (not a public API; tests only).
setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- %-syntax parses only in code compiled after the flag
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

/** What a handler handed to Node's `ServerResponse`: `writeHead`'s and `end`'s arguments. */
interface Written {
  status: number;
  headers: OutgoingHttpHeaders;
  end: unknown[];
}

/** A `ServerResponse` stand-in that keeps what is written to it; resolves at `end`. */
function recordingResponse(): { res: ServerResponse; written: Promise<Written> } {
  let status = 0;
  let headers: OutgoingHttpHeaders = {};
  let resolve: (w: Written) => void = () => undefined;
  const written = new Promise<Written>((r) => (resolve = r));
  const res = {
    writeHead(s: number, h: OutgoingHttpHeaders) {
      status = s;
      headers = h;
      return this;
    },
    end(...args: unknown[]) {
      resolve({ status, headers, end: args });
      return this;
    },
  } as unknown as ServerResponse;
  return { res, written };
}

const TEXT = '# HELP x An example.\n# TYPE x counter\nx 1\n';

/** The scrape handler of a public metrics server whose render answers {@link TEXT}. */
function publicScrape(): ReturnType<typeof metricsScrape> {
  const ctx = {
    config: { metrics: true, metricsPublic: true },
    metrics: {
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      render: () => Promise.resolve(TEXT),
    },
  } as unknown as ServerContext;
  return metricsScrape(ctx, { ready: () => null, privatePaths: [], logError: () => undefined });
}

const getMetrics = {
  method: 'GET',
  url: '/metrics',
  headers: {},
  on: () => undefined,
} as unknown as IncomingMessage;

let close: (() => Promise<void>) | null = null;
afterEach(async () => {
  await close?.();
  close = null;
});

describe('metricsScrape', () => {
  it('answers GET /metrics with the text, its type and length', async () => {
    const { res, written } = recordingResponse();
    expect(publicScrape()(getMetrics, res)).toBe(true);
    const w = await written;
    expect(w.status).toBe(200);
    expect(w.headers).toEqual({
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': String(Buffer.byteLength(TEXT)),
    });
    expect(w.end[0]).toBe(TEXT);
  });

  it('leaves every other request to Fastify', () => {
    const { res } = recordingResponse();
    const scrape = publicScrape();
    expect(scrape({ ...getMetrics, method: 'HEAD' } as IncomingMessage, res)).toBe(false);
    expect(scrape({ ...getMetrics, url: '/metricsx' } as IncomingMessage, res)).toBe(false);
    expect(scrape({ ...getMetrics, url: '/v1/health' } as IncomingMessage, res)).toBe(false);
  });

  it('reads its request as an inference body is read: the same hidden class when it answers, and consumed', async () => {
    // Node's resOnFinish reads both kinds: an inference request has had listeners (Fastify reads
    // its body through them), and a request of another class de-optimises it (metrics-scrape.ts).
    const request = (method: string, url: string): IncomingMessage => {
      const req = new IncomingMessage(new Socket());
      req.method = method;
      req.url = url;
      return req;
    };
    const inference = request('POST', '/v1/workspaces/1/pipelines/p/infer');
    inference.on('data', () => undefined);
    const scrape = request('GET', '/metrics');
    let sameAtAnswer: boolean | null = null;
    const { res, written } = recordingResponse();
    const writeHead = res.writeHead.bind(res);
    res.writeHead = ((s: number, h: OutgoingHttpHeaders) => {
      sameAtAnswer = haveSameMap(scrape, inference);
      return writeHead(s, h);
    }) as typeof res.writeHead;
    expect(publicScrape()(scrape, res)).toBe(true);
    await written;
    expect(sameAtAnswer).toBe(true);
    // Read, as an inference body is, by the time Node's resOnFinish runs (after this turn): it
    // then skips the `_dump()` an unread request gets.
    await new Promise((resolve) => setImmediate(resolve));
    expect((scrape as IncomingMessage & { _consuming: boolean })._consuming).toBe(true);
  });

  it("writes through Node's response as Fastify writes a string answer: same header object class, a string length, end(body, null, null)", async () => {
    // What Fastify hands to Node for an answer sent like an inference answer (a type, then a
    // string body): the call sites of Node's ServerResponse that both reach are optimised for
    // these shapes, and a scrape that brings others de-optimises them (metrics-scrape.ts).
    const app = Fastify({ logger: false });
    let fastify: Written | null = null;
    app.addHook('onRequest', (_req, reply, done) => {
      const res = reply.raw;
      const writeHead = res.writeHead.bind(res) as (s: number, h: OutgoingHttpHeaders) => ServerResponse;
      const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
      let status = 0;
      let headers: OutgoingHttpHeaders = {};
      res.writeHead = ((s: number, h: OutgoingHttpHeaders) => {
        status = s;
        headers = h;
        return writeHead(s, h);
      }) as typeof res.writeHead;
      res.end = ((...args: unknown[]) => {
        fastify = { status, headers, end: args };
        return end(...args);
      }) as typeof res.end;
      done();
    });
    app.get('/answer', (_req, reply) => {
      void reply.header('content-type', 'application/json').send('[{"y":1}]');
    });
    await app.ready();
    close = () => app.close();
    await app.inject({ method: 'GET', url: '/answer' });
    expect(fastify).not.toBeNull();
    const theirs = fastify!;

    const { res, written } = recordingResponse();
    publicScrape()(getMetrics, res);
    const ours = await written;

    expect(typeof theirs.headers['content-length']).toBe('string');
    expect(typeof ours.headers['content-length']).toBe('string');
    expect(Object.keys(ours.headers)).toEqual(Object.keys(theirs.headers));
    expect(haveSameMap(ours.headers, theirs.headers)).toBe(true);
    expect(ours.end.length).toBe(theirs.end.length);
    expect(ours.end.slice(1)).toEqual(theirs.end.slice(1));
  });
});
