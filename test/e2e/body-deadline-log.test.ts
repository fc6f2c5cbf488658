import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCodeOf } from '../support/error-code-of.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// A body cut by the receive deadline is answered 408 request_timeout once: the server logs the
// cut (one warn line), and no "Reply was already sent" warning from Fastify answering again.

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({
    env: { QUOLL_BODY_IDLE_TIMEOUT_MS: '500', QUOLL_INFERENCE_LOGS: 'off' },
  });
});

afterAll(() => stopTestServer(server));

/** Declares 1 MiB, sends 16 bytes, then nothing: the status and code answered. */
function stalled(path: string, type: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.token}`,
        'content-type': type,
        'content-length': String(1024 * 1024),
      },
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer from ${path} within 15 s`)));
    req.on('response', (res) => {
      errorCodeOf(res).then((code) => {
        resolve({ status: res.statusCode ?? 0, ...(code === undefined ? {} : { code }) });
        req.destroy();
      }, reject);
    });
    req.on('error', reject);
    req.write(Buffer.alloc(16, 0x5b));
  });
}

describe('a body cut by the receive deadline', () => {
  it('is answered 408 once on every kind of route, with no "already sent" warning in the log', async () => {
    for (const [path, type] of [
      ['/v1/workspaces/1/pipelines/stalled/infer', 'application/json'],
      ['/v2/models/stalled/infer', 'application/json'],
      ['/v1/workspaces/1/models?name=stalled', 'application/octet-stream'],
      ['/v1/workspaces/1/orchestrations?name=stalled', 'application/zip'],
    ] as const) {
      expect(await stalled(path, type), path).toEqual({ status: 408, code: 'request_timeout' });
    }
    // Whatever the server logs after the cut has had time to come.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const log = server.output();
    expect(log.match(/request body too slow/g)?.length, log).toBe(4);
    expect(log).not.toMatch(/already sent|ALREADY_SENT/i);
    expect(log).not.toMatch(/"level":50/);
    // The cut's own line is the only warning.
    expect(log.match(/"level":40/g)?.length, log).toBe(4);
  });
});
