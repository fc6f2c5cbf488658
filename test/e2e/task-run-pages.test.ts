import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, Task } from '@quoll/client';
import { taskWithEndedRuns } from '../support/many-runs.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

/**
 * A task with 10 000 runs, paged by cursor newest first through the API and the SDK: the
 * first page costs one small request, the last run is reached page by page, and a caller
 * that never asks for pages (no limit) still gets every run in one answer.
 */

const RUNS = 10_000;
let server: TestServer;
let client: Client;
let task: Task;
/** Every run id, newest first (the real run, then the 9 999 written into the store). */
let all: string[];

/** A runs cursor as the server writes one (version 1, creation time, run id), whatever its strings. */
const cursorOf = (createdAt: string, id: string): string =>
  Buffer.from(JSON.stringify([1, createdAt, id])).toString('base64url');

interface RunJson {
  id: string;
  status: string;
}

async function runsPage(
  query: string,
): Promise<{ status: number; runs: RunJson[]; next: string | null; body: unknown }> {
  const res = await fetch(`${server.url}/v1/tasks/${task.id}/runs${query}`, {
    headers: { authorization: `Bearer ${server.token}` },
  });
  const body = await res.json();
  return {
    status: res.status,
    runs: res.ok ? (body as RunJson[]) : [],
    next: res.headers.get('x-quoll-next-cursor'),
    body,
  };
}

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
  client.setCurrentWorkspace(await client.getWorkspace('pagedruns', { createIfNotExist: true }));
  ({ task, all } = await taskWithEndedRuns(server, client, 'many runs', RUNS));
}, 120_000);

afterAll(() => stopTestServer(server));

describe('GET /v1/tasks/:id/runs pages by cursor', () => {
  it('without a limit still answers every run at once, newest first, with no cursor (the API before paging)', async () => {
    const { runs, next } = await runsPage('');
    expect(runs.map((r) => r.id)).toEqual(all);
    expect(next).toBeNull();
  });

  it('reaches the last of 10 000 runs in 20 pages of 500: no run lost or repeated, no cursor after the last page', async () => {
    const seen: string[] = [];
    let query = '?limit=500';
    let requests = 0;
    for (;;) {
      const { status, runs, next } = await runsPage(query);
      requests++;
      expect(status).toBe(200);
      expect(runs.length).toBeLessThanOrEqual(500);
      seen.push(...runs.map((r) => r.id));
      if (next === null) break;
      query = `?limit=500&cursor=${encodeURIComponent(next)}`;
      expect(requests).toBeLessThan(25);
    }
    expect(requests).toBe(20);
    expect(seen).toEqual(all);
  });

  it('pages a status filter the same way', async () => {
    const failures = (await runsPage('?status=failure')).runs.map((r) => r.id);
    expect(failures).toHaveLength(1000);
    const first = await runsPage('?status=failure&limit=600');
    expect(first.next).not.toBeNull();
    const second = await runsPage(`?status=failure&limit=600&cursor=${encodeURIComponent(first.next!)}`);
    expect([...first.runs, ...second.runs].map((r) => r.id)).toEqual(failures);
    expect(second.next).toBeNull();
  });

  it('refuses a cursor it did not make, saying what to pass', async () => {
    const { status, body } = await runsPage('?limit=10&cursor=not-a-cursor');
    expect(status).toBe(400);
    expect(body).toMatchObject({
      error: { code: 'invalid_request', message: expect.stringMatching(/nextCursor/) as unknown },
    });
  });

  // A cursor of the right shape whose strings hold a NUL: PostgreSQL refuses a NUL in a bound text
  // parameter, so unchecked it was 500 internal_error there and 200 on SQLite. Run on both:
  // QUOLL_TEST_SERVER_DATABASE=postgres npx vitest run test/e2e/task-run-pages.test.ts
  it.each([
    ['in its creation time', cursorOf('2026-01-01T00:00:00.000Z\u0000', 'x')],
    ['in its run id', cursorOf('2099-01-01T00:00:00.000Z', 'x\u0000')],
  ])('a cursor holding a NUL %s answers 400 invalid_request, never 500', async (_what, cursor) => {
    const { status, body } = await runsPage(`?limit=10&cursor=${cursor}`);
    const code = (body as { error?: { code?: string } }).error?.code;
    expect({ status, code }).toEqual({ status: 400, code: 'invalid_request' });
  });
});

describe('the SDK pages a task runs', () => {
  it('lastRuns({ limit, cursor }) walks 10 000 runs in 10 requests of 1000; nextCursor is null on the last page', async () => {
    let requests = 0;
    const { Client: SdkClient } = await import('@quoll/client');
    const counting = new SdkClient({
      url: server.url,
      token: server.token,
      fetch: (input, init) => {
        requests++;
        return fetch(input, init);
      },
    });
    const same = await counting.getTask(task.id);
    requests = 0;
    const first = await same.lastRuns({ limit: 1000 });
    expect(requests).toBe(1);
    expect(first).toHaveLength(1000);
    expect(first[0]?.id).toBe(all[0]);
    const seen = first.map((r) => r.id);
    let cursor = first.nextCursor;
    while (cursor !== null) {
      const page = await same.lastRuns({ limit: 1000, cursor });
      seen.push(...page.map((r) => r.id));
      cursor = page.nextCursor;
      expect(requests).toBeLessThan(15);
    }
    expect(requests).toBe(10);
    expect(seen).toEqual(all);
    // Without a limit: one list of every run, and nothing to page.
    expect((await same.lastRuns()).nextCursor).toBeNull();
  });
});
