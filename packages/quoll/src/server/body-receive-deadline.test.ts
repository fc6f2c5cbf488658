import {
  createServer,
  request,
  type ClientRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyReceiveDeadline } from './body-receive-deadline.js';

const IDLE_MS = 300;
let server: Server | null = null;
let deadline: BodyReceiveDeadline | null = null;

afterEach(async () => {
  deadline?.stop();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A plain HTTP server whose bodies are watched; `handle` answers each request. */
async function serve(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  minBytesPerSecond = 16 * 1024,
): Promise<string> {
  deadline = new BodyReceiveDeadline({ idleMs: IDLE_MS, minBytesPerSecond });
  server = createServer((req, res) => {
    deadline!.watch(req, res);
    handle(req, res);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Reads the whole body, then answers 200 with its length. */
function readAll(req: IncomingMessage, res: ServerResponse): void {
  let n = 0;
  req.on('data', (c: Buffer) => (n += c.length));
  req.on('end', () => res.end(String(n)));
}

/** Sends `body` in `parts` writes `everyMs` apart; the status and body answered, or 0 if closed. */
function send(
  url: string,
  body: Buffer,
  parts: number,
  everyMs: number,
): Promise<{ status: number; text: string }> {
  const req = request(url, { method: 'POST', headers: { 'content-length': String(body.length) } });
  const answer = answerOf(req);
  const size = Math.ceil(body.length / parts);
  let at = 0;
  const next = (): void => {
    const part = body.subarray(at, at + size);
    at += part.length;
    if (at >= body.length) req.end(part);
    else req.write(part, () => setTimeout(next, everyMs));
  };
  next();
  return answer;
}

/** The status and body of a request's answer; status 0 when the connection failed instead. */
function answerOf(req: ClientRequest): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', () => resolve({ status: 0, text: '' }));
  });
}

describe('BodyReceiveDeadline', () => {
  it('cuts a body that stops with 408 request_timeout and stops watching it', async () => {
    const url = await serve(readAll);
    const started = performance.now();
    const req = request(url, { method: 'POST', headers: { 'content-length': '1000' } });
    const answered = answerOf(req);
    req.write('x');
    const answer = await answered;
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { code: 'request_timeout' } });
    expect(performance.now() - started).toBeGreaterThanOrEqual(IDLE_MS);
    expect(deadline!.watching).toBe(0);
  });

  it('fails the body for whoever reads it, so an upload in progress is cleaned up', async () => {
    let failed: unknown = null;
    const url = await serve((req) => {
      // Like the blob store: the body piped to a sink, the partial file removed when it fails.
      pipeline(req, new Writable({ write: (_chunk, _enc, done) => done() })).catch(
        (err: unknown) => (failed = err),
      );
    });
    const answer = await new Promise<number>((resolve) => {
      const req = request(url, { method: 'POST', headers: { 'content-length': '100000' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.write(Buffer.alloc(1000, 1));
    });
    expect(answer).toBe(408);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(failed).toMatchObject({ code: 'request_timeout' });
  });

  it('does not count the time the server itself is not reading', async () => {
    // The handler reads nothing for 4 idle timeouts: the request's buffer fills and the socket
    // is paused by the server, not the client.
    const url = await serve((req, res) => setTimeout(() => readAll(req, res), 4 * IDLE_MS));
    const body = Buffer.alloc(4 * 1024 * 1024, 1);
    const answer = await send(url, body, 1, 0);
    expect(answer).toEqual({ status: 200, text: String(body.length) });
  });

  it('does not blame the client when the server drains the body slower than the minimum rate', async () => {
    // The handler pipes the body into a destination that takes ≈ 1 MiB/s, under the 4 MiB/s
    // minimum: bytes keep coming in as it drains, but the wait is the server's.
    const url = await serve(
      (req, res) => {
        const slow = new Writable({
          highWaterMark: 16 * 1024,
          write: (chunk: Buffer, _enc, done) => setTimeout(done, chunk.length / 1024),
        });
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        void pipeline(req, slow).then(() => res.end(String(n)));
      },
      4 * 1024 * 1024,
    );
    const body = Buffer.alloc(2 * 1024 * 1024, 1);
    expect(await send(url, body, 1, 0)).toEqual({ status: 200, text: String(body.length) });
  });

  it('serves a steady body above the minimum rate and takes no body at all as done', async () => {
    const url = await serve(readAll);
    // 64 KiB in 16 parts 50 ms apart: ≈ 80 KiB/s for ≈ 0.8 s, past the grace.
    expect(await send(url, Buffer.alloc(64 * 1024, 1), 16, 50)).toEqual({ status: 200, text: '65536' });
    expect(await send(url, Buffer.alloc(0), 1, 0)).toEqual({ status: 200, text: '0' });
    deadline!.sweep();
    expect(deadline!.watching).toBe(0);
  });

  it('keeps nothing of a request whose body came with its headers (the serving path)', async () => {
    const url = await serve(readAll);
    for (let i = 0; i < 20; i += 1) {
      expect(await send(url, Buffer.alloc(200, 1), 1, 0)).toEqual({ status: 200, text: '200' });
    }
    // No sweep ran (its interval is 75 ms and nothing started it): nothing was kept to sweep.
    expect(deadline!.watching).toBe(0);
  });
});
