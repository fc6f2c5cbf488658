import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerSendDeadline } from './answer-send-deadline.js';

const IDLE_MS = 300;
/** An answer far larger than what the kernel's buffers of a loopback connection take. */
const ANSWER_BYTES = 64 * 1024 * 1024;
let server: Server | null = null;
let deadline: AnswerSendDeadline | null = null;
const clients: Socket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  deadline?.stop();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A plain HTTP server whose connections are watched; `handle` answers each request. */
async function serve(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  cuts: number[] = [],
): Promise<number> {
  deadline = new AnswerSendDeadline(IDLE_MS, (_socket, unsent) => cuts.push(unsent));
  server = createServer(handle);
  deadline.attach(server);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Answers ANSWER_BYTES in one write, and says when its response closes (sent, or cut). */
function bigAnswer(closed: (how: 'closed') => void) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    res.on('close', () => closed('closed'));
    res.end(Buffer.alloc(ANSWER_BYTES, 1));
  };
}

/** A raw connection that sends one GET and reads nothing until told to. */
function stalledClient(port: number): Socket {
  const client = connect(port, '127.0.0.1', () => client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  client.pause();
  clients.push(client);
  return client;
}

/** Resolves with `settled`'s value, or 'still open' after `ms` (a bound, not a timing assertion). */
function within<T>(settled: Promise<T>, ms: number): Promise<T | 'still open'> {
  return Promise.race([settled, new Promise<'still open'>((r) => setTimeout(() => r('still open'), ms))]);
}

describe('AnswerSendDeadline', () => {
  it('closes a connection whose client reads none of its answer, and stops watching it', async () => {
    // Before: the 64 MiB answer (and an inference request's share of the body budget) stayed
    // held for as long as the client kept the connection open, which was forever.
    const cuts: number[] = [];
    let closed!: (how: 'closed') => void;
    const how = new Promise<'closed'>((resolve) => (closed = resolve));
    const port = await serve(bigAnswer(closed), cuts);
    const client = stalledClient(port);
    let received = 0;
    const clientClosed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.on('error', () => undefined);
    expect(await within(how, 20 * IDLE_MS + 5000)).toBe('closed');
    expect(cuts).toHaveLength(1);
    expect(cuts[0]).toBeGreaterThan(0);
    // The client gets what the kernel held, then the end of the connection: never the whole answer.
    client.on('data', (chunk: Buffer) => (received += chunk.length));
    client.resume();
    await clientClosed;
    expect(received).toBeLessThan(ANSWER_BYTES);
    expect(deadline!.watching).toBe(0);
  });

  it('never cuts a client that keeps reading, however long the answer takes', async () => {
    const cuts: number[] = [];
    let closed!: (how: 'closed') => void;
    const how = new Promise<'closed'>((resolve) => (closed = resolve));
    const port = await serve(bigAnswer(closed), cuts);
    const client = stalledClient(port);
    // A reader that takes what has arrived every 5 ms: the 64 MiB take many idle periods to send.
    let received = 0;
    const reading = setInterval(() => {
      for (let chunk = client.read() as Buffer | null; chunk !== null; chunk = client.read() as Buffer | null)
        received += chunk.length;
    }, 5);
    try {
      expect(await within(how, 60_000)).toBe('closed');
      // The rest of the answer, still in the kernel when the response finished.
      while (received < ANSWER_BYTES && !client.destroyed) await new Promise((r) => setTimeout(r, 10));
    } finally {
      clearInterval(reading);
    }
    expect(cuts).toEqual([]);
    expect(received).toBeGreaterThan(ANSWER_BYTES);
  });

  it('never cuts a connection with nothing unsent: a request still being answered, an idle keep-alive', async () => {
    const cuts: number[] = [];
    const port = await serve((_req, res) => {
      // A slow model: nothing is written for several idle periods, then a small answer.
      setTimeout(() => res.end('done'), 4 * IDLE_MS);
    }, cuts);
    const client = stalledClient(port);
    client.resume();
    let text = '';
    client.setEncoding('utf8');
    client.on('data', (chunk: string) => (text += chunk));
    await new Promise((resolve) => setTimeout(resolve, 8 * IDLE_MS));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*done$/);
    expect(client.destroyed).toBe(false);
    expect(cuts).toEqual([]);
  });
});
