import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import {
  clusterSuite,
  concurrencySuite,
  keyCheckStoreSuite,
  runLogStoreSuite,
  inferenceLogsSuite,
  sharedBlobStorageSuite,
  connectionStoreSuite,
  logSegmentIndexSuite,
  modelStoreSuite,
  orchestrationStoreSuite,
  pipelineStoreSuite,
  taskStoreSuite,
  tokenStoreSuite,
  workspaceStoreSuite,
} from '../conformance/index.js';
import type { MakeStores, OpenPeer } from '../conformance/index.js';
import { openStore } from '../open-store.js';
import { SchemaTooNewError } from '../schema-migrations.js';
import type { Stores } from '../stores.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

// One database for this file; every makeStores() call gets an empty schema of its own in it.
// Migrating a schema takes a few hundred milliseconds of DDL, so a closed schema is emptied
// (DELETE FROM every table: cheaper than TRUNCATE on a few rows) and handed to the next test instead of making a new one.
let database: TestDatabase | null = null;
let admin: pg.Client | null = null;
beforeAll(async () => {
  if (!runPostgresTests) return;
  database = await createTestDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await database?.drop();
});

const schemas = new WeakMap<Stores, string>();
const free: string[] = [];
let made = 0;

function url(): string {
  if (database === null) throw new Error('no test database');
  return database.url;
}

/** An empty, migrated schema nobody uses. */
async function emptySchema(): Promise<string> {
  const reused = free.pop();
  if (reused === undefined) return `s${++made}`;
  // The inference log's partitions go with the rows listing them (inference_log_partitions):
  // a writer makes its pipelines' partitions again from the list, by the same names.
  const partitions = await admin?.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
      WHERE n.nspname = $1 AND p.relname = 'inference_log_batches'`,
    [reused],
  );
  const drops = (partitions?.rows ?? []).map((t) => `DROP TABLE ${reused}.${t.name};`).join('\n');
  if (drops !== '') await admin?.query(drops);
  const tables = await admin?.query<{ tablename: string }>(
    "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'",
    [reused],
  );
  // Children first would need the foreign-key order; deferring is simpler: one transaction,
  // with the cascades doing the children.
  const statements = (tables?.rows ?? []).map((t) => `DELETE FROM ${reused}.${t.tablename};`).join('\n');
  if (statements !== '') await admin?.query(`BEGIN; ${statements} COMMIT;`);
  return reused;
}

const makeStores: MakeStores = async (options) => {
  const schema = await emptySchema();
  const stores = await openStore({ kind: 'postgres', url: url(), schema, poolSize: 4 }, options);
  const wrapped: Stores = {
    ...stores,
    close: async () => {
      await stores.close();
      if (!free.includes(schema)) free.push(schema);
    },
  };
  schemas.set(wrapped, schema);
  return wrapped;
};

/** A second pool on the same schema: another node. */
const openPeer: OpenPeer = async (stores, options) => {
  const schema = schemas.get(stores);
  if (schema === undefined) throw new Error('not made by makeStores');
  return openStore({ kind: 'postgres', url: url(), schema, poolSize: 4 }, options);
};

describe.skipIf(!runPostgresTests)(
  `postgres (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    workspaceStoreSuite('postgres', makeStores);
    tokenStoreSuite('postgres', makeStores);
    modelStoreSuite('postgres', makeStores);
    pipelineStoreSuite('postgres', makeStores);
    connectionStoreSuite('postgres', makeStores);
    logSegmentIndexSuite('postgres', makeStores);
    orchestrationStoreSuite('postgres', makeStores);
    taskStoreSuite('postgres', makeStores);
    concurrencySuite('postgres', makeStores, openPeer);
    clusterSuite('postgres', makeStores, openPeer, { crossProcess: true });
    keyCheckStoreSuite('postgres', makeStores);
    sharedBlobStorageSuite('postgres', makeStores);
    runLogStoreSuite('postgres', async ({ maxBytesPerRun }) => {
      const stores = await makeStores();
      if (stores.createRunLogStore === null) throw new Error('no run-log store');
      return { storage: stores.createRunLogStore({ maxBytesPerRun }), close: () => stores.close() };
    });
    // Record batches in the database: there are no segments, so `smallPieces` changes nothing.
    inferenceLogsSuite('postgres', async ({ queueCapacityRows }) => {
      const stores = await makeStores();
      if (stores.createInferenceLogStore === null) throw new Error('no inference-log store');
      const logs = stores.createInferenceLogStore({
        nodeId: 'node-1',
        ...(queueCapacityRows === undefined ? {} : { queueCapacityRows }),
      });
      return {
        logs,
        close: async () => {
          await logs.stop();
          await stores.close();
        },
      };
    });

    describe('postgres: replica placement (pipeline_replicas)', () => {
      /** Two deployed pipelines (`one` with replicas: 1, `all` with none) in a fresh schema. */
      async function cluster(): Promise<{ stores: Stores; one: number; all: number }> {
        const stores = await makeStores();
        const ws = (await stores.workspaces.ensureDefaultWorkspace('default', 't0')).id;
        const one = (await stores.pipelines.ensurePipeline(ws, 'one', 't0')).pipeline.id;
        const all = (await stores.pipelines.ensurePipeline(ws, 'all', 't0')).pipeline.id;
        await stores.pipelines.recordDeploy({
          pipelineId: one,
          version: 'v1',
          steps: [],
          config: { replicas: 1 },
          at: 't1',
        });
        await stores.pipelines.recordDeploy({
          pipelineId: all,
          version: 'v2',
          steps: [],
          config: {},
          at: 't1',
        });
        await stores.nodes.registerNode({
          id: 'n1',
          url: 'http://10.0.0.1:8470',
          roles: ['api', 'inference'],
        });
        await stores.nodes.registerNode({
          id: 'n2',
          url: 'http://10.0.0.2:8470',
          roles: ['api', 'tasks', 'inference'],
        });
        // A node without the inference role never holds a replica.
        await stores.nodes.registerNode({ id: 'n3', url: 'http://10.0.0.3:8470', roles: ['api', 'tasks'] });
        return { stores, one, all };
      }

      it('places replicas on the inference nodes that are up, reports what each node serves, and moves those of a node that stopped', async () => {
        const { stores, one, all } = await cluster();
        const replicas = stores.replicas!;
        try {
          const placed = await replicas.rebalance();
          expect(placed.remove).toEqual([]);
          expect(placed.add.map((s) => `${s.pipelineId}@${s.nodeId}`).sort()).toEqual(
            [`${one}@n1`, `${all}@n1`, `${all}@n2`].sort(),
          );
          // Placed once: a second round changes nothing.
          expect(await replicas.rebalance()).toEqual({ add: [], remove: [] });
          expect(await replicas.pipelinesOn('n1')).toEqual([one, all].sort((x, y) => x - y));
          expect(await replicas.pipelinesOn('n3')).toEqual([]);
          const [fresh] = await replicas.replicasOf(one);
          expect(fresh).toMatchObject({
            nodeId: 'n1',
            nodeUrl: 'http://10.0.0.1:8470',
            nodeStatus: 'up',
            status: 'Starting',
            version: null,
            workers: 0,
          });
          await replicas.report('n1', [
            { pipelineId: one, status: 'Running', version: 'v1', details: [], workers: 2 },
            // Not n1's to report: left alone.
            { pipelineId: 9999, status: 'Running', version: 'v9', details: [], workers: 1 },
          ]);
          // The same report again changes nothing, not even the time.
          const [reported] = await replicas.replicasOf(one);
          await replicas.report('n1', [
            { pipelineId: one, status: 'Running', version: 'v1', details: [], workers: 2 },
          ]);
          expect((await replicas.replicasOf(one))[0]?.updatedAt).toBe(reported?.updatedAt);
          const byName = await replicas.replicasByName(
            (await stores.pipelines.getPipelineById(one))!.workspaceId,
            'one',
          );
          expect(byName.map((r) => [r.nodeId, r.status, r.version, r.workers])).toEqual([
            ['n1', 'Running', 'v1', 2],
          ]);
          // n1 stops: its replicas move to n2 (the one inference node left).
          await stores.nodes.markStopped('n1');
          const moved = await replicas.rebalance();
          expect(moved.remove.map((s) => s.nodeId)).toEqual(['n1', 'n1']);
          expect(moved.add).toEqual([{ pipelineId: one, nodeId: 'n2' }]);
          expect((await replicas.replicasOf(one)).map((r) => [r.nodeId, r.status])).toEqual([
            ['n2', 'Starting'],
          ]);
          // Undeployed: its replicas go.
          await stores.pipelines.deleteDeployment(all);
          await replicas.rebalance();
          expect(await replicas.replicasOf(all)).toEqual([]);
          expect(await replicas.pipelinesOn('n2')).toEqual([one]);
        } finally {
          await stores.close();
        }
      });

      it('nodes placing at once (another pool each) agree: one placement, no replica twice', async () => {
        const { stores, one, all } = await cluster();
        const peers = await Promise.all([openPeer(stores), openPeer(stores), openPeer(stores)]);
        try {
          const plans = await Promise.all([stores, ...peers].map((s) => s.replicas!.rebalance()));
          expect(plans.flatMap((p) => p.add)).toHaveLength(3);
          const rows = [
            ...(await stores.replicas!.replicasOf(one)),
            ...(await stores.replicas!.replicasOf(all)),
          ];
          expect(rows.map((r) => `${r.pipelineId}@${r.nodeId}`).sort()).toEqual(
            [`${one}@n1`, `${all}@n1`, `${all}@n2`].sort(),
          );
        } finally {
          await Promise.all(peers.map((p) => p.close()));
          await stores.close();
        }
      });
    });

    describe('postgres: migrations', () => {
      it('ten nodes starting at once on an empty schema migrate it once, and all start', async () => {
        const schema = `s${++made}`;
        const nodes = await Promise.all(
          Array.from({ length: 10 }, () => openStore({ kind: 'postgres', url: url(), schema, poolSize: 2 })),
        );
        try {
          const ws = await Promise.all(nodes.map((n) => n.workspaces.ensureDefaultWorkspace('default', 't')));
          expect(new Set(ws.map((w) => w.id)).size).toBe(1);
        } finally {
          await Promise.all(nodes.map((n) => n.close()));
        }
      });

      it('a node whose code is older than the schema refuses to start, naming the versions', async () => {
        const stores = await makeStores();
        const schema = schemas.get(stores) ?? '';
        const client = new pg.Client({ connectionString: url(), options: `-c search_path=${schema}` });
        await client.connect();
        await client.query(
          "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')",
        );
        await client.end();
        // Closed without being handed back: the schema stays "newer" for the checks below.
        await stores.close();
        free.splice(free.indexOf(schema), 1);
        const reopened = openStore({ kind: 'postgres', url: url(), schema });
        await expect(reopened).rejects.toThrow(SchemaTooNewError);
        await expect(openStore({ kind: 'postgres', url: url(), schema })).rejects.toThrow(
          /schema version 9999, but this Quoll knows only up to \d+.*Upgrade this node/,
        );
      });

      it('an unreachable database is retried at start, then fails it with the reason', async () => {
        const errors: Error[] = [];
        const started = Date.now();
        await expect(
          openStore(
            { kind: 'postgres', url: 'postgres://postgres:secret@127.0.0.1:1/none', startTimeoutMs: 1_000 },
            { onConnectionError: (err) => errors.push(err) },
          ),
        ).rejects.toThrow(
          /^cannot reach the database at postgres:\/\/postgres:\*{5}@127\.0\.0\.1:1\/none: .*ECONNREFUSED/,
        );
        expect(errors.length).toBeGreaterThan(1);
        expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      });
    });
  },
);
