import { execFile } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '@quoll/client';
import { taskWithEndedRuns } from '../support/many-runs.js';
import { CLI, startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// "quoll task logs <task>" on a task with 10 000 runs: it reads the newest run as a page of one
// and "--run <id>" by id (pickRun in packages/quoll/src/cli/commands/task-command.ts), never the
// task's whole run history (an answer unbounded with the task's age) for one log.

const exec = promisify(execFile);
let server: TestServer;
let task: Task;
let proxy: Server;
const seen: string[] = [];

beforeAll(async () => {
  server = await startTestServer();
  const client = server.client();
  client.setCurrentWorkspace(await client.getWorkspace('clilogs', { createIfNotExist: true }));
  ({ task } = await taskWithEndedRuns(server, client, 'cli logs', 10_001));
  const target = new URL(server.url);
  // Records every request path the CLI makes, forwarding it to the server.
  proxy = createServer((req, res) => {
    seen.push(req.url ?? '');
    const up = request(
      {
        host: target.hostname,
        port: target.port,
        path: req.url,
        method: req.method,
        headers: { ...req.headers, host: target.host },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
}, 120_000);
afterAll(async () => {
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  await stopTestServer(server);
});

describe('quoll task logs on a task with 10 000 runs', () => {
  it('prints the newest run without asking for every run', async () => {
    const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const { stdout } = await exec(
      process.execPath,
      [CLI, '--url', url, '--token', server.token, 'task', 'logs', task.id],
      {
        env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
      },
    );
    expect(stdout).toContain('done');
    const runsRequests = seen.filter((u) => u.startsWith(`/v1/tasks/${task.id}/runs`));
    expect(runsRequests.length).toBeGreaterThan(0);
    for (const u of runsRequests) expect(new URL(u, url).searchParams.get('limit'), u).not.toBeNull();
  });

  it('--run <an old run> reads that run by id, not the run list', async () => {
    const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const old = await task.lastRuns({
      limit: 1,
      cursor: (await task.lastRuns({ limit: 9_000 })).nextCursor!,
    });
    seen.length = 0;
    await exec(
      process.execPath,
      [CLI, '--url', url, '--token', server.token, 'task', 'logs', task.id, '--run', old[0]!.id],
      {
        env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
      },
    );
    expect(seen.filter((u) => u.startsWith(`/v1/tasks/${task.id}/runs`))).toEqual([]);
    expect(seen).toContain(`/v1/task-runs/${old[0]!.id}`);
  });

  it('--run <a run of no such task> fails with the task named', async () => {
    const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const missing = '00000000-0000-7000-8000-000000000000';
    const failed = await exec(
      process.execPath,
      [CLI, '--url', url, '--token', server.token, 'task', 'logs', task.id, '--run', missing],
      {
        env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
      },
    ).then(
      () => null,
      (err: { stderr: string; code: number }) => err,
    );
    expect(failed?.code).not.toBe(0);
    expect(failed?.stderr).toContain(`has no run ${missing}`);
  });
});
