import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Table } from 'apache-arrow';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@quoll/client';
import type { InferenceRecord } from '@quoll/client';
import { migrateHome } from '../../packages/quoll/src/store/migrate-home.js';
import { openStore } from '../../packages/quoll/src/store/index.js';
import { readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import {
  createTestDatabase,
  postgresAvailability,
  type TestDatabase,
} from '../support/postgres-test-database.js';
import { hasSharedFixtures, SHARED_FIXTURES, SKIP_REASON } from '../support/shared-fixtures.js';
import { CLI, startTestServer, type TestServer } from '../support/test-server.js';

const exec = promisify(execFile);
const pgAvailable = await postgresAvailability();
const HOUSE_URL = 'https://example.com/xtest-1k.arrow';

/** `quoll admin migrate …`: exit code, stdout and stderr. */
async function migrateCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, 'admin', 'migrate', ...args], {
      env: { ...process.env, QUOLL_DATABASE_URL: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The first value of each row's `out.variable`. */
function outputs(table: Table): number[] {
  const col = table.getChild('out.variable');
  return Array.from({ length: table.numRows }, (_, i) =>
    Number((col?.get(i) as { get(i: number): number }).get(0)),
  );
}

/** The most seqs any partition of the inference log's batches spans. */
async function longestPartition(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      'SELECT max(end_seq - first_seq)::text AS n FROM inference_log_partitions',
    );
    return Number(rows[0]?.n);
  } finally {
    await client.end();
  }
}

/** Row counts of every table a migration fills, read straight from the database. */
async function tableCounts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, number> = {};
    for (const t of [
      'workspaces',
      'api_tokens',
      'models',
      'pipelines',
      'connections',
      'orchestrations',
      'tasks',
      'task_runs',
      'blobs',
      'inference_log_batches',
      'task_run_log_lines',
    ]) {
      out[t] = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`)).rows[0]?.n);
    }
    return out;
  } finally {
    await client.end();
  }
}

describe.skipIf(!pgAvailable.run || !hasSharedFixtures)(
  `quoll admin migrate: an embedded home with the seed tutorial's state into a cluster database (${
    !pgAvailable.run
      ? pgAvailable.skipReason
      : !hasSharedFixtures
        ? SKIP_REASON
        : 'PostgreSQL and fixtures present'
  })`,
  () => {
    let home: string;
    let embedded: TestServer;
    const databases: TestDatabase[] = [];
    const servers: TestServer[] = [];
    /** What the embedded home answered, to compare with what the cluster answers. */
    let seedOutputs: number[];
    let runId: string;
    let runLines: string[];
    let taskId: string;

    const freshDatabase = async (): Promise<TestDatabase> => {
      const db = await createTestDatabase();
      databases.push(db);
      return db;
    };

    beforeAll(async () => {
      // The seed tutorial's state, made through an embedded server as its user would.
      embedded = await startTestServer();
      home = embedded.home;
      const client = embedded.client();
      const ws = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
      client.setCurrentWorkspace(ws);
      const model = await (
        await client.uploadModel('orchestrationmodel', `${SHARED_FIXTURES}rf_model.onnx`)
      ).configure({ tensorFields: ['tensor'] });
      const pipeline = await client.buildPipeline('orchestrationpipeline');
      await pipeline.addModelStep(model);
      await pipeline.deploy();
      seedOutputs = outputs((await pipeline.inferFromFile(`${SHARED_FIXTURES}xtest-1k.arrow`)) as Table);
      const connection = await client.createConnection('houseprice_arrow_table', 'HTTPFILE', {
        host: HOUSE_URL,
      });
      await ws.addConnection(connection.name);
      const orchestration = await readyOrchestration(client, 'seedorch', {
        'main.js': "console.log('Getting the workspace orchestrationworkspace');\nconsole.log('done');\n",
      });
      const task = await orchestration.runOnce({ name: 'house price run once' });
      taskId = task.id;
      const run = await waitFor('the run to finish', async () => {
        const [r] = [...(await task.lastRuns())];
        return r !== undefined && r.status !== 'running' ? r : undefined;
      });
      expect(run.status).toBe('success');
      runId = run.id;
      runLines = [...(await run.logs())].map((l) => l.line);
      expect(runLines).toContain('done');
      expect(await embedded.stop()).toBe(0);
    }, 180_000);

    afterAll(async () => {
      for (const s of [...servers, embedded]) {
        await s?.kill();
      }
      for (const s of servers) await s.cleanup();
      await embedded?.cleanup();
      for (const db of databases) await db.drop();
    });

    it('copies the home, verifies it, and a node on the database serves the seed and reads the migrated logs', async () => {
      const db = await freshDatabase();
      const first = await migrateCli(['--from-home', home, '--to', db.url]);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/^migrating of home /m);
      expect(first.stdout).toContain('inference logs: 1000 row(s) of 1 pipeline(s)');
      expect(first.stdout).toMatch(/^done: the database holds the home \(verified\)/m);
      const counts = await tableCounts(db.url);
      // The copied log sits in partitions sized by it (an eighth of it, at least 16 seqs), not in
      // one that spans every seq the pipeline will ever have: a node at its cap drops them whole.
      expect(await longestPartition(db.url)).toBeLessThanOrEqual(16);

      // Run again: it finds its own migration, copies nothing twice, and checks again.
      const again = await migrateCli(['--from-home', home, '--to', db.url]);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/^resuming the migration of home /m);
      expect(await tableCounts(db.url)).toEqual(counts);

      // A node on the database, with the home's master key (the connections stay sealed under it).
      const nodeHome = await mkdtemp(join(tmpdir(), 'quoll-migrated-node-'));
      await copyFile(join(home, 'master.key'), join(nodeHome, 'master.key'));
      await chmod(join(nodeHome, 'master.key'), 0o600);
      const node = await startTestServer({ home: nodeHome, args: ['--database', db.url] });
      servers.push(node);
      // The home's own admin token works on the cluster: tokens moved with the metadata.
      const { token: homeToken } = JSON.parse(await readFile(join(home, 'credentials.json'), 'utf8')) as {
        token: string;
      };
      const client = new Client({ url: node.url, token: homeToken });
      const ws = await client.getWorkspace('orchestrationworkspace');
      client.setCurrentWorkspace(ws);
      const pipeline = await client.getPipeline('orchestrationpipeline');

      // The logs written by the embedded server, read through the node.
      const migrated = (await pipeline.logs({ limit: 1000, arrow: true })) as unknown as Table;
      expect(migrated.numRows).toBe(1000);
      expect(outputs(migrated).reverse()).toEqual(seedOutputs);

      // The deployment moved too: the seed's inference, answered by the node.
      const served = await waitFor(
        'the migrated deployment to serve',
        async () => pipeline.inferFromFile(`${SHARED_FIXTURES}xtest-1k.arrow`).catch(() => undefined),
        60_000,
      );
      const got = outputs(served as Table);
      expect(got).toHaveLength(1000);
      const expectedRaw = JSON.parse(
        await readFile(`${SHARED_FIXTURES}expected-rf_model-xtest-1k.json`, 'utf8'),
      ) as unknown;
      const expected = (
        Array.isArray(expectedRaw)
          ? expectedRaw
          : (expectedRaw as { 'out.variable': unknown[] })['out.variable']
      ).map((v) => (Array.isArray(v) ? Number(v[0]) : Number(v)));
      got.forEach((v, i) => expect(Math.abs(v - (expected[i] ?? NaN))).toBeLessThanOrEqual(1.0));
      // Old and new rows in one log, oldest first by range.
      const all = (await pipeline.logs({ start: 0, end: Date.now() + 60_000 })) as InferenceRecord[];
      expect(all).toHaveLength(2000);

      // The run, its log, and the sealed connection, as the home had them.
      const run = [...(await (await client.getTask(taskId)).lastRuns())].find((r) => r.id === runId);
      expect(run?.status).toBe('success');
      expect([...(await run!.logs())].map((l) => l.line)).toEqual(runLines);
      expect(await (await client.getConnection('houseprice_arrow_table')).details()).toEqual({
        host: HOUSE_URL,
      });
      expect(await node.stop()).toBe(0);
    }, 180_000);

    it('an interrupted migration, run again, ends with the same verified copy as an uninterrupted one', async () => {
      const straight = await freshDatabase();
      await migrateHome({ home, url: straight.url });
      const want = await tableCounts(straight.url);

      const db = await freshDatabase();
      // Interrupted after each kind of step in turn: the metadata, a file, a pipeline's log.
      for (const stopAt of ['metadata', 'blob ', 'inference-logs ']) {
        await expect(
          migrateHome({
            home,
            url: db.url,
            afterStep: (step) => {
              if (step.startsWith(stopAt)) throw new Error(`interrupted after ${step}`);
            },
          }),
        ).rejects.toThrow(/^interrupted after /);
      }
      const report = await migrateHome({ home, url: db.url });
      expect(report.resumed).toBe(true);
      expect(report.inferenceLogRows).toEqual({ [Object.keys(report.inferenceLogRows)[0] ?? '']: 1000 });
      expect(await tableCounts(db.url)).toEqual(want);
    }, 120_000);

    it('refuses a database a node already uses, with migrate_target_not_empty, and changes nothing', async () => {
      const db = await freshDatabase();
      const stores = await openStore({ kind: 'postgres', url: db.url });
      try {
        await stores.workspaces.ensureDefaultWorkspace('default', new Date().toISOString());
      } finally {
        await stores.close();
      }
      const before = await tableCounts(db.url);
      const refused = await migrateCli(['--from-home', home, '--to', db.url]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        /^error \[migrate_target_not_empty\]: The database is not empty \(it has rows in workspaces\)/,
      );
      expect(await tableCounts(db.url)).toEqual(before);

      // Another home into the database this home went to: refused too.
      const other = await freshDatabase();
      await migrateHome({ home, url: other.url });
      const otherHome = await mkdtemp(join(tmpdir(), 'quoll-other-home-'));
      const second = await startTestServer({ home: otherHome });
      await second.stop();
      servers.push(second);
      const foreign = await migrateCli(['--from-home', otherHome, '--to', other.url]);
      expect(foreign.code).toBe(2);
      expect(foreign.stderr).toContain(
        'error [migrate_target_not_empty]: The database already holds a migration of another home',
      );
      await rm(otherHome, { recursive: true, force: true });
    }, 120_000);

    it('says what is wrong with its arguments', async () => {
      const noHome = await migrateCli([
        '--from-home',
        join(tmpdir(), 'no-such-quoll-home'),
        '--to',
        'postgres://x@127.0.0.1:1/x',
      ]);
      expect(noHome.code).toBe(2);
      expect(noHome.stderr).toMatch(/^error \[migrate_source_invalid\]: No Quoll home at /);
      const badUrl = await migrateCli(['--from-home', home, '--to', 'mysql://x']);
      expect(badUrl.code).toBe(2);
      expect(badUrl.stderr).toContain('--to must be a postgres:// URL');
    });
  },
);
