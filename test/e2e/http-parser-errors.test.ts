import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorBody } from '@quoll/client/wire';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Requests Node's HTTP parser or Fastify's router refuses before any route sees them still
// answer with the catalogue's body and status, and the server stays up.

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(() => stopTestServer(server));

/** Writes raw bytes on a fresh connection; resolves with what came back once the server closes it. */
function rawExchange(bytes: string): Promise<string> {
  const { port, hostname } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.setTimeout(20_000, () => socket.destroy(new Error('no answer within 20 s')));
    socket.end(bytes);
  });
}

function parse(answer: string): { status: number; body: ErrorBody } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: JSON.parse(body) as ErrorBody };
}

describe('requests refused before any route sees them', () => {
  it('headers over the size limit: 431 header_too_large; garbage or a Content-Length that lies: 400 invalid_request', async () => {
    const cases = [
      {
        bytes: `GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'q'.repeat(20_000)}\r\n\r\n`,
        code: 'header_too_large' as const,
      },
      { bytes: 'GARBAGE\r\n\r\n', code: 'invalid_request' as const },
      {
        bytes:
          'POST /v1/workspaces HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
        code: 'invalid_request' as const,
      },
      {
        bytes:
          'POST /v1/workspaces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
        code: 'invalid_request' as const,
      },
    ];
    for (const { bytes, code } of cases) {
      const answer = parse(await rawExchange(bytes));
      const what = `${bytes.slice(0, 40)}: ${JSON.stringify(answer)}`;
      expect(answer.status, what).toBe(ERROR_CODES[code].status);
      expect(answer.body.error.code, what).toBe(code);
      expect(answer.body.error.message.length, what).toBeLessThanOrEqual(1024);
    }
    const health = await fetch(`${server.url}/v1/health`);
    expect(health.status).toBe(200);
  });

  it('a compressed body (Content-Encoding gzip, br) is refused 415 unsupported_media_type, not read as sent', async () => {
    const headers = { ...server.client().authHeader(), 'content-type': 'application/json' };
    for (const encoding of ['gzip', 'br', 'deflate, gzip']) {
      const res = await fetch(`${server.url}/v1/workspaces`, {
        method: 'POST',
        headers: { ...headers, 'content-encoding': encoding },
        body: JSON.stringify({ name: 'encoded' }),
      });
      const body = (await res.json()) as ErrorBody;
      expect(res.status, encoding).toBe(415);
      expect(body.error.code, `${encoding}: ${JSON.stringify(body)}`).toBe('unsupported_media_type');
    }
    const identity = await fetch(`${server.url}/v1/workspaces`, {
      method: 'POST',
      headers: { ...headers, 'content-encoding': 'identity' },
      body: JSON.stringify({ name: 'plain' }),
    });
    expect(identity.status).toBe(201);
    const names = (await server.client().listWorkspaces()).map((w) => w.name);
    expect(names).toContain('plain');
    expect(names).not.toContain('encoded');
  });

  it('a path that is not valid percent-encoding: 400 invalid_request, not a framework code', async () => {
    for (const path of ['/v1/workspaces/by-name/%E0%A4%A', '/v1/workspaces/by-name/%C0%AF']) {
      const res = await fetch(`${server.url}${path}`, { headers: server.client().authHeader() });
      const body = (await res.json()) as ErrorBody;
      expect(res.status, path).toBe(400);
      expect(body.error.code, `${path}: ${JSON.stringify(body)}`).toBe('invalid_request');
    }
  });
});
