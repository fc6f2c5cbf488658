import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionDrain } from './connection-drain.js';

// Review (review-shutdown): a request whose body is still arriving, steadily, when a stop
// begins (a model upload of hundreds of MiB, an orchestration upload) is in flight: its client
// is sending, not stalled. The grace is there for a connection that has stopped sending.

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

const GRACE_MS = 300;
const CHUNKS = 40;
const CHUNK_EVERY_MS = 25;
const CHUNK = Buffer.alloc(1024, 0x61);

/**
 * A raw TCP client of `server` (listening on 127.0.0.1 at `drain`'s attach), connected: what it
 * has read so far, and a promise settled when the server closes the connection.
 */
async function rawClient(
  drain: ConnectionDrain,
  target: Server,
): Promise<{
  socket: Socket;
  answer: () => string;
  closed: Promise<void>;
}> {
  drain.attach(target);
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  const { port } = target.address() as AddressInfo;
  const socket = connect(port, '127.0.0.1');
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString()));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  return { socket, answer: () => answer, closed };
}

describe('ConnectionDrain (review)', () => {
  it('an upload still streaming its body steadily when the stop begins is received whole and answered, not cut at the grace', async () => {
    const drain = new ConnectionDrain(GRACE_MS);
    let requestArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (requestArrived = resolve));
    server = createServer((req, res) => {
      drain.track(req, res);
      requestArrived();
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => res.end(`received ${bytes}`));
    });
    const { socket, answer, closed } = await rawClient(drain, server);
    socket.write(
      `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${
        CHUNKS * CHUNK.length
      }\r\n\r\n`,
    );
    socket.write(CHUNK);
    await arrived;
    // The stop begins with the upload under way; the client goes on sending, a chunk at a time,
    // well within the grace each, for longer than the grace in all.
    drain.drain();
    server.close();
    for (let i = 1; i < CHUNKS && !socket.destroyed; i++) {
      await new Promise((resolve) => setTimeout(resolve, CHUNK_EVERY_MS));
      socket.write(CHUNK);
    }
    await closed;
    expect(answer()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(answer()).toContain(`received ${CHUNKS * CHUNK.length}`);
  });
  it('an upload that has stopped sending when the stop begins is closed unanswered after the grace', async () => {
    const drain = new ConnectionDrain(GRACE_MS);
    let requestArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (requestArrived = resolve));
    server = createServer((req, res) => {
      drain.track(req, res);
      requestArrived();
      req.on('data', () => undefined);
      req.on('end', () => res.end('received'));
    });
    const { socket, answer: read, closed } = await rawClient(drain, server);
    socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${CHUNKS * CHUNK.length}\r\n\r\n`);
    socket.write(CHUNK);
    await arrived;
    // The client sends nothing more: the stop must not wait for it (it ends with the connection).
    drain.drain();
    const serverClosed = new Promise<void>((resolve) => server!.close(() => resolve()));
    await closed;
    await serverClosed;
    expect(read()).toBe('');
  });
  it('pipelined requests: one already received and run when the stop begins gets its answer (it is not run and then dropped)', async () => {
    const drain = new ConnectionDrain(GRACE_MS);
    const ran: string[] = [];
    let releaseSlow!: () => void;
    const slowReleased = new Promise<void>((resolve) => (releaseSlow = resolve));
    let bothArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (bothArrived = resolve));
    server = createServer((req, res) => {
      drain.track(req, res);
      ran.push(req.url ?? '');
      if (ran.length === 2) bothArrived();
      if (req.url === '/slow') void slowReleased.then(() => res.end('slow done'));
      else res.end('fast done');
    });
    const { socket, answer: read, closed } = await rawClient(drain, server);
    socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    await arrived;
    // Both requests have been received and handed to the handler (the second one has run).
    drain.drain();
    server.close();
    releaseSlow();
    await closed;
    expect(ran).toEqual(['/slow', '/fast']);
    expect(read()).toContain('slow done');
    // The second request ran: its answer is owed (RFC 9112 9.6: a server closing a pipelined
    // connection must not have processed the requests it will not answer).
    expect(read()).toContain('fast done');
  });
});

describe('ConnectionDrain: pipelined requests arriving during the stop', () => {
  /** A server whose `/slow` answers when released (headers first, when `head` is released). */
  async function pipelineServer(drain: ConnectionDrain) {
    const ran: string[] = [];
    let releaseHead!: () => void;
    const head = new Promise<void>((resolve) => (releaseHead = resolve));
    let releaseSlow!: () => void;
    const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
    let slowArrived!: () => void;
    const slowIn = new Promise<void>((resolve) => (slowArrived = resolve));
    let fastArrived!: () => void;
    const fastIn = new Promise<void>((resolve) => (fastArrived = resolve));
    server = createServer((req, res) => {
      if (req.url === '/fast') fastArrived();
      if (!drain.track(req, res)) return;
      ran.push(req.url ?? '');
      if (req.url === '/slow') {
        slowArrived();
        void head.then(() => {
          res.writeHead(200, { 'Content-Length': '9' });
          res.write('slow ');
          return slow.then(() => res.end('done'));
        });
      } else res.end('fast done');
    });
    const { socket, answer, closed } = await rawClient(drain, server);
    socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await slowIn;
    return { ran, socket, closed, fastIn, releaseHead, releaseSlow, answer };
  }

  it('behind an answer not begun: both are answered, and only the last says Connection: close', async () => {
    const drain = new ConnectionDrain(GRACE_MS);
    const p = await pipelineServer(drain);
    drain.drain();
    server!.close();
    p.socket.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    await p.fastIn;
    p.releaseHead();
    p.releaseSlow();
    await p.closed;
    expect(p.ran).toEqual(['/slow', '/fast']);
    const [first, second] = p.answer().split('slow done');
    expect(first?.toLowerCase()).toContain('connection: keep-alive');
    expect(second).toContain('fast done');
    expect(second?.toLowerCase()).toContain('connection: close');
  });

  it('behind an answer gone out saying Connection: close: it is not run', async () => {
    const drain = new ConnectionDrain(GRACE_MS);
    const p = await pipelineServer(drain);
    drain.drain();
    server!.close();
    p.releaseHead();
    while (!p.answer().includes('slow ')) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(p.answer().toLowerCase()).toContain('connection: close');
    p.socket.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    await p.fastIn;
    p.releaseSlow();
    await p.closed;
    expect(p.ran).toEqual(['/slow']);
    expect(p.answer()).toContain('slow done');
    expect(p.answer()).not.toContain('fast done');
  });
});
