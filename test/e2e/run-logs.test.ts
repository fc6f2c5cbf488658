// Run logs with limits: a run that prints far past the per-run cap keeps a capped log that
// says how much it dropped; a 1 GiB log is read (whole or its tail) and followed through the
// API in constant server memory, and the follow stream always ends with its "end" event.
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, TaskRun } from '@quoll/client';
import { lastRunEnded, readyOrchestration } from '../support/orchestration-helpers.js';
import { sseEvents } from '../support/sse-events.js';
import { serversOnPostgres, startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startTestServer({ env: { QUOLL_RUN_LOG_MAX_BYTES: '1 MiB' } });
  client = server.client();
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

async function finishedRun(files: Record<string, string>, name: string): Promise<TaskRun> {
  const orchestration = await readyOrchestration(client, name, files);
  const task = await orchestration.runOnce({ name });
  return lastRunEnded(task, 120_000, `${name} to end`);
}

/** The server's resident memory, KiB. */
function serverRssKiB(): number {
  const status = readFileSync(`/proc/${server.process.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
}

/** The SSE events of a follow, until the stream closes. */
async function followEvents(runId: string): Promise<string[]> {
  const res = await fetch(`${server.url}/v1/task-runs/${runId}/logs/follow`, {
    headers: { authorization: `Bearer ${server.token}` },
  });
  expect(res.status).toBe(200);
  const events: string[] = [];
  for await (const event of sseEvents(res.body)) events.push(event.type);
  return events;
}

describe('run logs with limits', () => {
  it('a run printing 40 MiB keeps a 1 MiB log that says how much was dropped, and follows end', async () => {
    const run = await finishedRun(
      {
        'main.mjs': `const line = 'x'.repeat(1000) + '\\n';
          for (let i = 0; i < 40 * 1024; i++) if (!process.stdout.write(line)) await new Promise((r) => process.stdout.once('drain', r));
          console.log('done printing');`,
      },
      'chatty',
    );
    expect(run.status).toBe('success');
    const tail = (await run.logs({ limit: 2 })).map((l) => l.line);
    expect(tail[0]).toMatch(
      /^quoll: \d+ lines \(\d+(\.\d)? MiB\) of output were dropped after the log cap of 1 MiB$/,
    );
    expect(tail[1]).toBe('quoll: run finished: success (exit 0)');
    const all = await run.logs();
    expect(
      all.some(
        (l) =>
          l.line === "quoll: this run's log reached its cap of 1 MiB; further output is dropped and counted",
      ),
    ).toBe(true);
    expect(all.length).toBeLessThan(1100);
    const events = await followEvents(run.id);
    expect(events.at(-1)).toBe('end');
  }, 180_000);

  // The 1 GiB log is stood in as a file of the home's file log store; a node on PostgreSQL keeps
  // run logs in the database, where the run-log conformance suite covers its reads and follows.
  it.skipIf(serversOnPostgres)(
    'reads and follows a 1 GiB run log through the API in constant memory, ending with "end"',
    async () => {
      const run = await finishedRun({ 'main.mjs': "console.log('small');" }, 'small');
      // Stand a 1 GiB log in for it: lines, a hole (a sparse file reads as NUL bytes), lines, its final line.
      const path = join(server.home, 'task-logs', `${run.id}.log`);
      const T = '2026-01-01T00:00:00.000000000Z';
      const line = (text: string): string => `${JSON.stringify({ time: T, stream: 'stdout', line: text })}\n`;
      const fh = await open(path, 'w');
      await fh.write(Array.from({ length: 500 }, (_, i) => line(`head ${i}`)).join(''));
      await fh.write(
        `\n${Array.from({ length: 500 }, (_, i) => line(`tail ${i}`)).join('')}${JSON.stringify({ time: T, stream: 'stdout', line: 'quoll: run finished: success (exit 0)', quoll: true, final: true })}\n`,
        1024 ** 3,
      );
      await fh.close();
      const before = serverRssKiB();
      const tail = (await run.logs({ limit: 2 })).map((l) => l.line);
      expect(tail).toEqual(['tail 499', 'quoll: run finished: success (exit 0)']);
      const all = await run.logs();
      expect(all).toHaveLength(1001);
      const events = await followEvents(run.id);
      expect(events.filter((e) => e === 'line')).toHaveLength(1001);
      expect(events.at(-1)).toBe('end');
      // Reading the whole file once would take more than 1 GiB.
      expect(serverRssKiB() - before).toBeLessThan(200 * 1024);
    },
    180_000,
  );
});
