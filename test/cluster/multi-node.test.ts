import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, InferenceRecord, Orchestration, Task, TaskRun } from '@quoll/client';
import type { NodeDto } from '@quoll/client/wire';
import { homeWithKeyOf, killClusterNodes } from '../support/cluster-nodes.js';
import { readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import {
  createTestDatabase,
  postgresAvailability,
  type TestDatabase,
} from '../support/postgres-test-database.js';
import { makeHouseRows } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const pg = await postgresAvailability();

/** Short leases, so a lost node is noticed in seconds (renewed every 600 ms). */
const LEASE_MS = 3_000;
const MARKER = `qcl${process.pid}`;

/** Runs until killed; its title lets the test find (and clean up) its process. */
const SLEEPER = `
process.title = '${MARKER}-' + process.env.QUOLL_TASK_RUN_ID.slice(-12);
console.log('sleeping');
await new Promise((resolve) => setTimeout(resolve, 600_000));
`;
const QUICK = `console.log('tick ran');\n`;

async function nodesOf(server: TestServer): Promise<NodeDto[]> {
  const res = await fetch(`${server.url}/v1/admin/nodes`, {
    headers: { authorization: `Bearer ${server.token}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as NodeDto[];
}

async function nodeIdOf(server: TestServer): Promise<string> {
  return ((await (await fetch(`${server.url}/v1/health`)).json()) as { node: string }).node;
}

/** What one inference through `server` answered, and which node ran it (`x-quoll-served-by`). */
async function inferVia(
  server: TestServer,
  path: string,
  rows: unknown,
): Promise<{ status: number; servedBy: string | null; body: unknown }> {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(rows),
  });
  return { status: res.status, servedBy: res.headers.get('x-quoll-served-by'), body: await res.json() };
}

/** The rows without their time: the same outputs from every node. */
const outputsOf = (body: unknown): unknown =>
  Array.isArray(body) ? body.map(({ time: _t, ...rest }: Record<string, unknown>) => rest) : body;

/** The task's runs, read through `client` (any node). */
async function runsOf(client: Client, task: Task): Promise<TaskRun[]> {
  return [...(await (await client.getTask(task.id)).lastRuns())];
}

describe.skipIf(!pg.run)(
  `three nodes on one PostgreSQL database (${pg.run ? 'PostgreSQL reachable' : pg.skipReason})`,
  () => {
    let db: TestDatabase;
    let a: TestServer;
    let b: TestServer;
    let c: TestServer;
    const ids = new Map<TestServer, string>();
    let sleeper: Orchestration;
    let quick: Orchestration;
    let everyMinute: Task;
    /** When B was SIGKILLed (the node-loss test). */
    let bKilledAt: number | undefined;
    const servers: TestServer[] = [];

    /**
     * What each run of the every-minute task did, not only its record (the store's (task, tick)
     * key alone keeps the records' ticks distinct, whatever the nodes do): a run that succeeded
     * printed 'tick ran' exactly once into its one log (a run launched by two nodes would print
     * it twice), on a node that was up at its tick; a run that did not succeed is one B held
     * when it died (closed "node lost" on B, for a tick before the kill) or one the task's kill
     * closed, and it ran at most once. A run closed "node lost" on a live node fails this.
     */
    const expectEachTickRanOnce = async (runs: readonly TaskRun[]): Promise<void> => {
      for (const run of runs) {
        const lines = (await run.logs()).map((l) => l.line);
        const ran = lines.filter((line) => line === 'tick ran').length;
        const tick = run.tick === null ? Number.NaN : Date.parse(run.tick);
        const what = `run ${run.id} of tick ${run.tick} on ${run.node}: ${run.status} (${run.reason})\n${lines.join('\n')}`;
        expect(run.tick, what).not.toBeNull();
        expect(ran, what).toBeLessThanOrEqual(1);
        const bWasUp = bKilledAt === undefined || tick < bKilledAt;
        if (run.status === 'success') {
          expect(ran, what).toBe(1);
          expect(
            (bWasUp ? [a, b, c] : [a, c]).map((s) => ids.get(s)),
            what,
          ).toContain(run.node);
        } else if (run.status === 'failure') {
          expect(run.node, what).toBe(ids.get(b));
          expect(run.reason, what).toBe(`node lost: node ${ids.get(b)} stopped renewing the run's lease`);
          expect(bKilledAt !== undefined && tick <= bKilledAt, what).toBe(true);
        } else {
          expect(run.status, what).toBe('killed');
        }
      }
    };

    /** The pipeline with one replica (placed on B, whose id sorts first). */
    let single: { path: string; expected: unknown; rows: unknown };
    const start = async (
      home: string | undefined,
      nodeId: string,
      args: string[] = [],
    ): Promise<TestServer> => {
      const server = await startTestServer({
        ...(home === undefined ? {} : { home }),
        args: ['--database', db.url, ...args],
        env: { QUOLL_CLUSTER_LEASE_MS: String(LEASE_MS), QUOLL_NODE_ID: nodeId },
      });
      servers.push(server);
      ids.set(server, await nodeIdOf(server));
      return server;
    };

    beforeAll(async () => {
      db = await createTestDatabase();
      // Ties in replica placement go to the lowest node id: B's sorts first, so a pipeline
      // with one replica deployed on idle nodes goes to B, the node the loss test kills. C
      // serves no inference (--no-inference): it forwards.
      a = await start(undefined, `${MARKER}-2a`);
      [b, c] = await Promise.all([
        start(await homeWithKeyOf(a), `${MARKER}-1b`),
        start(await homeWithKeyOf(a), `${MARKER}-3c`, ['--no-inference']),
      ]);
      const client = a.client();
      [sleeper, quick] = await Promise.all([
        readyOrchestration(client, 'sleeper', { 'main.js': SLEEPER }),
        readyOrchestration(client, 'quick', { 'main.js': QUICK }),
      ]);
      // Created first: its first tick comes while the other tests run.
      everyMinute = await quick.runScheduled({ name: 'every minute', schedule: '* * * * *' });
    }, 120_000);

    afterAll(async () => {
      await killClusterNodes(servers, MARKER);
      await db?.drop();
    });

    it('every node registers with its roles, and every node lists them all', async () => {
      const nodes = await waitFor('three nodes up', async () => {
        const listed = await nodesOf(c);
        return listed.filter((n) => n.status === 'up').length === 3 ? listed : undefined;
      });
      expect(nodes.map((n) => n.id).sort()).toEqual([...ids.values()].sort());
      const roles = new Map(nodes.map((n) => [n.id, n.roles]));
      expect(roles.get(ids.get(a)!)).toEqual(['api', 'tasks', 'inference']);
      expect(roles.get(ids.get(b)!)).toEqual(['api', 'tasks', 'inference']);
      expect(roles.get(ids.get(c)!)).toEqual(['api', 'tasks']);
      expect((await nodesOf(a)).map((n) => n.id)).toEqual(nodes.map((n) => n.id));
    });

    it("a node started with a live node's id refuses to start, naming the id; that node is untouched", async () => {
      const refused = startTestServer({
        home: await homeWithKeyOf(a),
        args: ['--database', db.url],
        env: { QUOLL_CLUSTER_LEASE_MS: String(LEASE_MS), QUOLL_NODE_ID: ids.get(a)! },
      });
      await expect(refused).rejects.toThrow(
        new RegExp(
          `error \\[node_id_in_use\\]: Node id "${ids.get(a)!}" is in use by another running process`,
        ),
      );
      const nodes = await nodesOf(a);
      expect(nodes.filter((n) => n.id === ids.get(a)).map((n) => [n.url, n.status])).toEqual([[a.url, 'up']]);
    }, 60_000);

    it('a pipeline deployed through A is loaded by every inference node and answered by all (C forwards); undeployed through B, nobody serves it', async () => {
      const model = await a.client().uploadModel('house', makeTreeEnsembleRegressor({ seed: 3 }));
      const pipeline = await a.client().buildPipeline('spread');
      await pipeline.addModelStep(model);
      await pipeline.deploy();
      const rows = [{ tensor: Array.from(makeHouseRows(1, 3)) }];
      // The rows without their time: the same outputs from every node.
      const outputs = (result: InferenceRecord[]): unknown[] => result.map(({ time: _t, ...rest }) => rest);
      const expected = outputs(await pipeline.infer(rows));
      for (const node of [b, c]) {
        const there = await node.client().getPipeline('spread');
        const got = await waitFor(
          'the deployment to reach another node',
          async () => there.infer(rows).catch(() => undefined),
          15_000,
        );
        expect(outputs(got)).toEqual(expected);
      }
      // A replica on each inference node (the default), none on C, which forwards.
      const status = await waitFor('both replicas Running', async () => {
        const s = await (await c.client().getPipeline('spread')).status();
        return s.replicas.filter((r) => r.status === 'Running').length === 2 ? s : undefined;
      });
      expect(status.status).toBe('Running');
      expect(status.replicas.map((r) => r.node).sort()).toEqual([ids.get(a), ids.get(b)].sort());
      for (const r of status.replicas) expect(r).toMatchObject({ nodeStatus: 'up', version: status.version });
      const viaC = await inferVia(c, new URL(pipeline.url()).pathname, rows);
      expect(viaC.status).toBe(200);
      expect([ids.get(a), ids.get(b)]).toContain(viaC.servedBy);
      expect(outputsOf(viaC.body)).toEqual(expected);
      // Rows only B, and only C, answer (C forwards to A or B): A's log must hold both (the logs
      // live in the database).
      const own = new Map<TestServer, unknown[]>();
      for (const [node, seed] of [
        [b, 11],
        [c, 12],
      ] as const) {
        const there = await node.client().getPipeline('spread');
        own.set(node, outputs(await there.infer([{ tensor: Array.from(makeHouseRows(1, seed)) }])));
      }
      const viaA = await a.client().getPipeline('spread');
      const logged = await waitFor(
        "B's and C's rows in the log read through A",
        async () => {
          const rowsOfA = outputs(await viaA.logs({ limit: 1000 }));
          const has = (want: unknown[]): boolean =>
            want.every((r) => rowsOfA.some((l) => JSON.stringify(l) === JSON.stringify(r)));
          return has(own.get(b) ?? []) && has(own.get(c) ?? []) ? rowsOfA : undefined;
        },
        15_000,
      );
      // One inference each through A, B and C, C's forwarded one, and B's and C's own: every one, once.
      expect(logged).toHaveLength(6);
      // exportLogs through C, by time range: the same six rows, in files.
      const exported = await (
        await c.client().getPipeline('spread')
      ).exportLogs({
        directory: await mkdtemp(join(tmpdir(), 'quoll-cluster-export-')),
        start: 0,
        end: Date.now() + 60_000,
      });
      expect(exported.rows).toBe(6);
      await (await b.client().getPipeline('spread')).undeploy();
      for (const node of [a, c]) {
        const there = await node.client().getPipeline('spread');
        const code = await waitFor(
          'the undeploy to reach another node',
          async () =>
            there.infer(rows).then(
              () => undefined,
              (err: unknown) => (err as { code?: string }).code,
            ),
          15_000,
        );
        expect(code).toBe('pipeline_not_deployed');
      }
    });

    it('replicas: 1 is placed on one node, and every node answers for it (forwarding, /v1 and /v2)', async () => {
      const model = await c.client().uploadModel('house1', makeTreeEnsembleRegressor({ seed: 5 }));
      // Deployed through C, which serves no inference: it places the replica and waits for it.
      const pipeline = await c.client().buildPipeline('single');
      await pipeline.addModelStep(model);
      await pipeline.deploy({ config: { replicas: 1 } });
      const status = await pipeline.status();
      expect(status).toMatchObject({ status: 'Running', version: (await pipeline.versions())[0]?.version });
      expect(status.replicas.map((r) => [r.node, r.status, r.version])).toEqual([
        [ids.get(b), 'Running', status.version],
      ]);
      const rows = [{ tensor: Array.from(makeHouseRows(1, 5)) }];
      const direct = await inferVia(b, new URL(pipeline.url()).pathname, rows);
      expect(direct).toMatchObject({ status: 200, servedBy: ids.get(b) });
      single = { path: new URL(pipeline.url()).pathname, expected: outputsOf(direct.body), rows };
      for (const node of [a, c]) {
        const got = await inferVia(node, new URL(pipeline.url()).pathname, rows);
        expect(got.status).toBe(200);
        expect(got.servedBy).toBe(ids.get(b));
        expect(outputsOf(got.body)).toEqual(single.expected);
      }
      // The Open Inference Protocol's routes are forwarded alike.
      const ready = await fetch(`${c.url}/v2/models/single/ready`, {
        headers: { authorization: `Bearer ${c.token}` },
      });
      expect(ready.status).toBe(200);
      expect(ready.headers.get('x-quoll-served-by')).toBe(ids.get(b));
      // A forwarded request is never forwarded again: B would answer it itself.
      const again = await fetch(`${a.url}${new URL(pipeline.url()).pathname}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${a.token}`,
          'content-type': 'application/json',
          'x-quoll-forwarded-by': ids.get(c)!,
        },
        body: JSON.stringify(rows),
      });
      expect(again.status).toBe(503);
      const refused = (await again.json()) as { error: { code: string; message: string } };
      expect(refused.error.code).toBe('replica_unavailable');
      expect(refused.error.message).toContain(`node ${ids.get(b)}`);
    });

    it('an orchestration packaged on one node runs on the others from its shared archive, not rebuilt', async () => {
      const withDep = await readyOrchestration(a.client(), 'with-dep', {
        'package.json': JSON.stringify({ dependencies: { 'zip-dep': 'file:./zip-dep' } }),
        'zip-dep/package.json': JSON.stringify({ name: 'zip-dep', version: '1.0.0', main: 'index.js' }),
        'zip-dep/index.js': "module.exports = 'from the dependency';",
        'main.mjs': "import dep from 'zip-dep';\nconsole.log(dep);\n",
      });
      const packaging = (await withDep.packagingLogs()).map((l) => l.line);
      expect(packaging.join('\n')).toMatch(
        /packaged output shared with the cluster \(archive [0-9a-f]{12}\)/,
      );
      for (const node of [a, b, c]) {
        const task = await (await node.client().getOrchestration(withDep.id)).runOnce({ name: 'shared' });
        const run = await waitFor('the run to end', async () => {
          const [r] = await runsOf(node.client(), task);
          return r !== undefined && r.status !== 'running' ? r : undefined;
        });
        const lines = (await run.logs()).map((l) => l.line);
        expect(run.status, lines.join('\n')).toBe('success');
        expect(lines[0]).toBe('from the dependency');
      }
      // A node that built the package fetched the zip; one that unpacked the archive never did.
      // The uploader and at most one packager hold the zip, so one of the three at least has
      // the package without it, and every node has the compiled entry and the dependency.
      const holdsZip = [a, b, c].map((node) =>
        existsSync(join(node.home, 'orchestrations', withDep.id, 'source.zip')),
      );
      expect(holdsZip.filter((held) => !held).length).toBeGreaterThanOrEqual(1);
      for (const node of [a, b, c]) {
        expect(
          existsSync(join(node.home, 'orchestrations', withDep.id, 'files', '.quoll', 'entry.mjs')),
        ).toBe(true);
      }
    });

    it('kill() through A stops a run executing on C', async () => {
      // A run-once task runs on the node that created it (one that runs tasks).
      const viaC = await (await c.client().getOrchestration(sleeper.id)).runOnce({ name: 'started on C' });
      const [run] = await waitFor('the run on C to start', async () => {
        const runs = await runsOf(c.client(), viaC);
        const first = runs[0];
        return first !== undefined && (await first.logs()).some((l) => l.line === 'sleeping')
          ? runs
          : undefined;
      });
      expect(run?.node).toBe(ids.get(c));
      expect(await (await a.client().getTask(viaC.id)).kill()).toBe('pending_kill');
      const ended = await waitFor('the run on C to be killed', async () => {
        const r = await run?.refresh();
        return r === undefined || r.status === 'running' ? undefined : r;
      });
      expect(ended.status).toBe('killed');
      expect((await ended.logs()).at(-1)?.line).toBe('quoll: run finished: killed (the task was killed)');
      await waitFor('the task to be killed', async () =>
        (await viaC.status()) === 'killed' ? true : undefined,
      );
    });

    it('a scheduled tick runs exactly once across the three nodes', async () => {
      const runs = await waitFor(
        'the first tick of the every-minute task',
        async () => {
          const list = await runsOf(b.client(), everyMinute);
          return list.length > 0 && list.every((r) => r.status !== 'running') ? list : undefined;
        },
        75_000,
      );
      for (const r of runs) expect(r.status).toBe('success');
      await expectEachTickRanOnce(runs);
      // Every node saw the tick; none recorded it as skipped or missed.
      expect([...(await (await a.client().getTask(everyMinute.id)).ticks())]).toEqual([]);
    }, 90_000);

    it('when a node dies, its run is closed "node lost" once the lease ends and its continuous task moves', async () => {
      const viaB = await b.client().getOrchestration(sleeper.id);
      const once = await viaB.runOnce({ name: 'dies with B' });
      const forever = await viaB.runContinuously({ name: 'moves off B' });
      // Read through A: B is about to die.
      const [onceRun, foreverRun] = await waitFor('both runs going on B', async () => {
        const [o] = await runsOf(a.client(), once);
        const [f] = await runsOf(a.client(), forever);
        if (o === undefined || f === undefined) return undefined;
        const started = async (r: TaskRun): Promise<boolean> =>
          (await r.logs()).some((l) => l.line === 'sleeping');
        return (await started(o)) && (await started(f)) ? ([o, f] as const) : undefined;
      });
      expect(onceRun.node).toBe(ids.get(b));
      expect(foreverRun.node).toBe(ids.get(b));
      const killedAt = Date.now();
      await b.kill();
      // Once the kill has returned (B has exited): a boundary B's timer fired while the SIGKILL
      // was on its way is not "after" the kill, and its run may be B's, closed "node lost".
      bKilledAt = Date.now();
      // B still looks up (its lease is not over): a request for its pipeline through C finds
      // B unreachable and says which nodes serve it.
      const during = await inferVia(c, single.path, single.rows);
      expect(during.status).toBe(503);
      expect(JSON.stringify(during.body)).toContain('replica_unavailable');
      expect(JSON.stringify(during.body)).toContain(ids.get(b));

      const lost = await waitFor(
        'the run of the dead node to be closed',
        async () => {
          const r = await onceRun.refresh();
          return r.status === 'running' ? undefined : r;
        },
        30_000,
      );
      expect(lost.status).toBe('failure');
      expect(lost.reason).toBe(`node lost: node ${ids.get(b)} stopped renewing the run's lease`);
      expect(Date.now() - killedAt).toBeLessThan(LEASE_MS * 2 + 10_000);
      expect((await lost.logs()).at(-1)?.line).toBe(`quoll: run finished: failure (${lost.reason})`);

      const moved = await waitFor(
        'the continuous task to run on a live node',
        async () => {
          const runs = await runsOf(a.client(), forever);
          const live = runs.find((r) => r.status === 'running' && r.node !== ids.get(b));
          return live === undefined ? undefined : { runs, live };
        },
        30_000,
      );
      expect([ids.get(a), ids.get(c)]).toContain(moved.live.node);
      expect(moved.runs.find((r) => r.id === foreverRun.id)?.status).toBe('failure');
      const nodes = await waitFor('B to be marked lost', async () => {
        const listed = await nodesOf(a);
        return listed.find((n) => n.id === ids.get(b))?.status === 'lost' ? listed : undefined;
      });
      expect(
        nodes
          .filter((n) => n.status === 'up')
          .map((n) => n.id)
          .sort(),
      ).toEqual([ids.get(a), ids.get(c)].sort());
      // B's replica moved to A (the one inference node left): C and A answer through it.
      const moved1 = await waitFor(
        'the replica of "single" to move to A',
        async () => {
          const got = await inferVia(c, single.path, single.rows);
          return got.status === 200 ? got : undefined;
        },
        30_000,
      );
      console.log(
        `replica of "single" served again ${Date.now() - killedAt} ms after B was killed (lease ${LEASE_MS} ms)`,
      );
      expect(moved1.servedBy).toBe(ids.get(a));
      expect(outputsOf(moved1.body)).toEqual(single.expected);
      const after = await (await a.client().getPipeline('single')).status();
      expect(after.replicas.map((r) => [r.node, r.status])).toEqual([[ids.get(a), 'Running']]);
      await (await a.client().getTask(forever.id)).kill();
      await waitFor('the moved task to be killed', async () =>
        (await (await a.client().getTask(forever.id)).status()) === 'killed' ? true : undefined,
      );
    }, 90_000);

    it('after B died, the next every-minute tick runs on a surviving node', async () => {
      if (bKilledAt === undefined) throw new Error('the node-loss test did not kill B');
      // The first boundary after the SIGKILL: B cannot have created or claimed its run.
      const boundary = Math.floor(bKilledAt / 60_000) * 60_000 + 60_000;
      const run = await waitFor(
        `the run of the tick at ${new Date(boundary).toISOString()}`,
        async () => {
          const r = (await runsOf(a.client(), everyMinute)).find(
            (x) => x.tick !== null && Date.parse(x.tick) === boundary,
          );
          return r !== undefined && r.status !== 'running' ? r : undefined;
        },
        Math.max(0, boundary - Date.now()) + 30_000,
      );
      expect(run.status, (await run.logs()).map((l) => l.line).join('\n')).toBe('success');
      expect([ids.get(a), ids.get(c)]).toContain(run.node);
      expect((await run.logs()).map((l) => l.line)).toContain('tick ran');
    }, 120_000);

    it('a node stopped with SIGTERM stops every loop, exits 0 and is listed as stopped', async () => {
      const task = await a.client().getTask(everyMinute.id);
      await task.kill();
      await waitFor('the every-minute task to be killed', async () =>
        (await task.status()) === 'killed' ? true : undefined,
      );
      // Over the whole test (B's death included), no tick of the every-minute task ran twice,
      // and every tick's run ran on a live node (or was B's when it died).
      const runs = await runsOf(a.client(), everyMinute);
      expect(runs.length).toBeGreaterThanOrEqual(2);
      expect(runs.filter((r) => r.status === 'running')).toEqual([]);
      await expectEachTickRanOnce(runs);
      expect(await c.stop()).toBe(0);
      const nodes = await nodesOf(a);
      expect(nodes.find((n) => n.id === ids.get(c))?.status).toBe('stopped');
      expect(await a.stop()).toBe(0);
    });
  },
);
