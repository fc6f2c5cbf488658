import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { StorageUnavailableError } from '../../errors/index.js';
import { PostgresDatabase } from './postgres-database.js';
import type { PostgresDatabaseOptions } from './postgres-database.js';
import { PostgresNodeStore } from './postgres-node-store.js';
import { PostgresPipelineStore } from './postgres-pipeline-store.js';
import { PostgresReplicaStore } from './postgres-replica-store.js';
import { PostgresTaskStore } from './postgres-task-store.js';
import { PostgresWorkspaceStore } from './postgres-workspace-store.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!runPostgresTests)(
  `PostgresDatabase when a connection breaks or another node stalls (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    let admin: pg.Client;
    let schemas = 0;
    const open: PostgresDatabase[] = [];
    const peers: pg.Client[] = [];

    beforeAll(async () => {
      database = await createTestDatabase();
      admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
    });
    afterEach(async () => {
      for (const peer of peers.splice(0)) await peer.end().catch(() => undefined);
      for (const db of open.splice(0)) await db.close();
    });
    afterAll(async () => {
      await admin?.end();
      await database?.drop();
    });

    /** A node's database on a fresh schema of the test database. */
    async function node(
      options: Partial<PostgresDatabaseOptions> = {},
    ): Promise<{ db: PostgresDatabase; schema: string; errors: Error[] }> {
      const schema = `c${++schemas}`;
      const errors: Error[] = [];
      const db = await PostgresDatabase.open({
        url: database.url,
        schema,
        poolSize: 2,
        onConnectionError: (err) => errors.push(err),
        ...options,
      });
      open.push(db);
      return { db, schema, errors };
    }

    /** Another node's session on `schema` (the test ends it). */
    async function peer(schema: string): Promise<pg.Client> {
      const client = new pg.Client({ connectionString: database.url, options: `-c search_path=${schema}` });
      await client.connect();
      peers.push(client);
      return client;
    }

    it('a backend terminated between two statements of a transaction fails it with StorageUnavailableError; the process lives and the next transaction works', async () => {
      const { db, errors } = await node();
      const failed = db.transaction(async (sql) => {
        const row = await sql.one<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await admin.query('SELECT pg_terminate_backend($1)', [row?.pid]);
        await sleep(200);
        await sql.run('SELECT 1');
      });
      await expect(failed).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(failed).rejects.toThrow(/connection was lost/);
      expect(db.health.status).toBe('unavailable');
      expect(errors.length).toBeGreaterThan(0);
      // The broken client left the pool: the next transactions get working ones.
      for (let i = 0; i < 3; i++) {
        expect(await db.transaction(async (sql) => sql.one<{ one: number }>('SELECT 1 AS one'))).toEqual({
          one: 1,
        });
      }
      expect(db.health.status).toBe('ok');
    });

    it('a backend terminated during a statement fails the transaction with StorageUnavailableError', async () => {
      const { db } = await node();
      const failed = db.transaction(async (sql) => {
        const row = await sql.one<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        setTimeout(() => void admin.query('SELECT pg_terminate_backend($1)', [row?.pid]), 100);
        await sql.run('SELECT pg_sleep(5)');
      });
      await expect(failed).rejects.toBeInstanceOf(StorageUnavailableError);
      expect(await db.one<{ one: number }>('SELECT 1 AS one')).toEqual({ one: 1 });
    });

    it('a migrating connection terminated while it waits for the migration lock is retried: open() succeeds', async () => {
      const schema = `c${++schemas}`;
      const holder = await peer('public');
      await holder.query('SELECT pg_advisory_lock(hashtext($1))', [`quoll:migrate:${schema}`]);
      const errors: Error[] = [];
      const opening = PostgresDatabase.open({
        url: database.url,
        schema,
        poolSize: 2,
        onConnectionError: (err) => errors.push(err),
      });
      // The node's migrating connection, waiting on the lock the holder has.
      let pid = 0;
      await vi.waitFor(
        async () => {
          const { rows } = await admin.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'quoll' AND wait_event_type = 'Lock'`,
          );
          expect(rows).toHaveLength(1);
          pid = rows[0]?.pid ?? 0;
        },
        { timeout: 10_000, interval: 50 },
      );
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
      await holder.query('SELECT pg_advisory_unlock(hashtext($1))', [`quoll:migrate:${schema}`]);
      const db = await opening;
      open.push(db);
      expect(await db.one('SELECT 1 AS one FROM schema_migrations LIMIT 1')).toEqual({ one: 1 });
    });

    it('pool connections end transactions left idle for a minute (idle_in_transaction_session_timeout)', async () => {
      const { db } = await node();
      const shown = await db.transaction(async (sql) =>
        sql.one<{ idle_in_transaction_session_timeout: string }>('SHOW idle_in_transaction_session_timeout'),
      );
      expect(shown?.idle_in_transaction_session_timeout).toBe('1min');
    });

    it('a transaction idle past idleInTransactionTimeoutMs is ended by the server: StorageUnavailableError, and the pool recovers', async () => {
      const { db } = await node({ idleInTransactionTimeoutMs: 300 });
      const failed = db.transaction(async (sql) => {
        await sql.run('SELECT 1');
        await sleep(1_000);
        await sql.run('SELECT 1');
      });
      await expect(failed).rejects.toBeInstanceOf(StorageUnavailableError);
      expect(await db.transaction(async (sql) => sql.one<{ one: number }>('SELECT 1 AS one'))).toEqual({
        one: 1,
      });
    });

    it('rebalance() changes nothing while another node holds the placement lock past the lock timeout, and places once it is free', async () => {
      const { db, schema } = await node();
      const replicas = new PostgresReplicaStore(db);
      // One deployed pipeline and one inference node: a replica to place.
      const pipelines = new PostgresPipelineStore(db);
      const ws = (await new PostgresWorkspaceStore(db).ensureDefaultWorkspace('default', 't0')).id;
      const pipelineId = (await pipelines.ensurePipeline(ws, 'p', 't0')).pipeline.id;
      await pipelines.recordDeploy({ pipelineId, version: 'v1', steps: [], config: {}, at: 't1' });
      await new PostgresNodeStore(db).registerNode({ id: 'n1', url: 'http://n1', roles: ['inference'] });
      const stalled = await peer(schema);
      await stalled.query('BEGIN');
      await stalled.query(`SELECT pg_advisory_xact_lock(hashtext('quoll_replicas:' || current_schema()))`);
      // The default lock timeout (5 s), well inside the test's.
      const started = Date.now();
      expect(await replicas.rebalance()).toEqual({ add: [], remove: [] });
      expect(Date.now() - started).toBeGreaterThanOrEqual(4_000);
      expect(await replicas.pipelinesOn('n1')).toEqual([]);
      await stalled.query('ROLLBACK');
      expect(await replicas.rebalance()).toEqual({ add: [{ pipelineId, nodeId: 'n1' }], remove: [] });
    }, 20_000);

    it("createTickRuns() gives up on task rows another node holds past coordinationLockTimeoutMs, and creates the runs once they're free", async () => {
      const { db, schema } = await node({ coordinationLockTimeoutMs: 300 });
      const tasks = new PostgresTaskStore(db);
      const task = await tasks.createTask({
        name: 'job',
        type: 'Scheduled Run',
        orchestrationId: 'orch-1',
        workspaceId: 1,
        schedule: '* * * * *',
        timezone: null,
        jsonArgs: {},
        timeout: null,
      });
      const stalled = await peer(schema);
      await stalled.query('BEGIN');
      await stalled.query('SELECT id FROM tasks WHERE id = $1 FOR UPDATE', [task.id]);
      const tick = 60_000;
      await expect(tasks.createTickRuns([{ taskId: task.id, tick }])).rejects.toThrow(
        /another node has held the rows of these tasks for over 300 ms/,
      );
      await stalled.query('ROLLBACK');
      const outcomes = await tasks.createTickRuns([{ taskId: task.id, tick }]);
      expect(outcomes.map((o) => o.outcome)).toEqual(['created']);
    });
  },
);
