import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '@quoll/client';
import { lastRunEnded, readyOrchestration } from '../support/orchestration-helpers.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Review (runs lane): the runs cursor is decoded (base64url JSON, version and two strings) but
// its strings go to the store as they are. A NUL in either makes PostgreSQL refuse the bound
// text parameter: 500 internal_error (and an error in the server log) on PostgreSQL, 200 on
// SQLite. A cursor this server never made must answer 400 invalid_request on both.
// Run on both: QUOLL_TEST_SERVER_DATABASE=postgres npx vitest run test/e2e/review-runs-api.test.ts

let server: TestServer;
let task: Task;

const cursorOf = (createdAt: string, id: string): string =>
  Buffer.from(JSON.stringify([1, createdAt, id])).toString('base64url');

beforeAll(async () => {
  server = await startTestServer();
  const client = server.client();
  client.setCurrentWorkspace(await client.getWorkspace('nulcursor', { createIfNotExist: true }));
  const orchestration = await readyOrchestration(client, 'quick', { 'main.mjs': "console.log('done');\n" });
  task = await orchestration.runOnce({ name: 'nul cursor' });
  await lastRunEnded(task);
}, 120_000);
afterAll(() => stopTestServer(server));

describe('review: a runs cursor holding a NUL', () => {
  it.each([
    ['in its creation time', cursorOf('2026-01-01T00:00:00.000Z\u0000', 'x')],
    ['in its run id', cursorOf('2099-01-01T00:00:00.000Z', 'x\u0000')],
  ])('%s answers 400 invalid_request, never 500', async (_what, cursor) => {
    const res = await fetch(`${server.url}/v1/tasks/${task.id}/runs?limit=10&cursor=${cursor}`, {
      headers: { authorization: `Bearer ${server.token}` },
    });
    const body = (await res.json()) as { error?: { code?: string } };
    expect({ status: res.status, code: body.error?.code }).toEqual({ status: 400, code: 'invalid_request' });
  });
});
