import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Orchestration, TaskRun } from '@quoll/client';
import { homeWithKeyOf, killClusterNodes } from '../support/cluster-nodes.js';
import { readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import {
  createTestDatabase,
  postgresAvailability,
  type TestDatabase,
} from '../support/postgres-test-database.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const pg = await postgresAvailability();

const MARKER = `qfl${process.pid}`;
const STEPS = 5;

/**
 * Prints a line, then asks the test's gate for leave to go on, which the test gives only once
 * that line has reached the follower on the other node: the run cannot print the next line, nor
 * end, before the follower saw this one. Step 2 goes to stderr.
 */
const STEPPER = `
process.title = '${MARKER}-' + process.env.QUOLL_TASK_RUN_ID.slice(-12);
const { gate } = JSON.parse(process.env.QUOLL_TASK_ARGS);
for (let i = 1; i <= ${STEPS}; i++) {
  if (i === 2) console.error('step ' + i);
  else console.log('step ' + i);
  const res = await fetch(gate + '/' + i);
  if (!res.ok) throw new Error('gate ' + i + ' answered ' + res.status);
}
console.log('all steps done');
`;

/** An HTTP server on loopback whose `/N` answers once `open(N)` was called (a long poll). */
function gate(): { server: Server; url: () => string; open: (step: number) => void } {
  const opened = new Set<number>();
  const waiting = new Map<number, Array<() => void>>();
  const server = createServer((req, res) => {
    const step = Number(req.url?.slice(1));
    const answer = (): void => void res.end('go');
    if (opened.has(step)) answer();
    else waiting.set(step, [...(waiting.get(step) ?? []), answer]);
  });
  return {
    server,
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: (step) => {
      opened.add(step);
      for (const answer of waiting.get(step) ?? []) answer();
      waiting.delete(step);
    },
  };
}

describe.skipIf(!pg.run)(
  `followLogs() across nodes on one PostgreSQL database (${pg.run ? 'PostgreSQL reachable' : pg.skipReason})`,
  () => {
    let db: TestDatabase;
    let a: TestServer;
    let c: TestServer;
    let stepper: Orchestration;
    const servers: TestServer[] = [];
    const gates = gate();

    beforeAll(async () => {
      db = await createTestDatabase();
      await new Promise<void>((resolve) => gates.server.listen(0, '127.0.0.1', resolve));
      const start = async (home: string | undefined, nodeId: string): Promise<TestServer> => {
        const server = await startTestServer({
          ...(home === undefined ? {} : { home }),
          args: ['--database', db.url],
          env: { QUOLL_NODE_ID: nodeId },
        });
        servers.push(server);
        return server;
      };
      a = await start(undefined, `${MARKER}-a`);
      c = await start(await homeWithKeyOf(a), `${MARKER}-c`);
      stepper = await readyOrchestration(a.client(), 'stepper', { 'main.js': STEPPER });
    }, 120_000);

    afterAll(async () => {
      await killClusterNodes(servers, MARKER);
      await new Promise((resolve) => gates.server.close(resolve));
      gates.server.closeAllConnections();
      await db?.drop();
    });

    it("a follower on A sees every line of a run executing on C, in order, live, and the run's end", async () => {
      // A run-once task runs on the node that created it: C.
      const task = await (
        await c.client().getOrchestration(stepper.id)
      ).runOnce({
        name: 'followed from A',
        jsonArgs: { gate: gates.url() },
      });
      const viaA = await a.client().getTask(task.id);
      const run: TaskRun = await waitFor('the run to be listed through A', async () => {
        const [r] = await viaA.lastRuns();
        return r;
      });
      const nodeOfC = ((await (await fetch(`${c.url}/v1/health`)).json()) as { node: string }).node;
      expect(run.node).toBe(nodeOfC);

      const seen: { stream: string; line: string }[] = [];
      for await (const line of run.followLogs()) {
        seen.push({ stream: line.stream, line: line.line });
        const step = /^step (\d+)$/.exec(line.line);
        if (step === null) continue;
        const n = Number(step[1]);
        // The run waits at this step's gate: it is still running, so the line came live.
        if (n === STEPS) expect((await run.refresh()).status).toBe('running');
        gates.open(n);
      }
      // The iteration ended on the server's "end" event, after the final status line.
      expect(seen.slice(0, -1)).toEqual([
        ...Array.from({ length: STEPS }, (_, i) => ({
          stream: i === 1 ? 'stderr' : 'stdout',
          line: `step ${i + 1}`,
        })),
        { stream: 'stdout', line: 'all steps done' },
      ]);
      expect(seen.at(-1)?.line).toMatch(/^quoll: run finished: success\b/);
      // The final line is stored before the run's outcome (on every backend): read until it is.
      const ended = await waitFor('the run to be recorded as ended', async () => {
        const r = await run.refresh();
        return r.status === 'running' ? undefined : r;
      });
      expect(ended.status).toBe('success');
      expect(ended.node).toBe(nodeOfC);
    }, 60_000);
  },
);
