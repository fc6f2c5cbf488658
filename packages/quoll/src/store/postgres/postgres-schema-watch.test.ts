import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { TcpProxy } from '../../../../../test/support/tcp-proxy.js';
import { openStore } from '../open-store.js';
import { readMigrations } from '../schema-migrations.js';
import type { SchemaState, Stores } from '../stores.js';
import { POSTGRES_MIGRATIONS_DIR, PostgresDatabase } from './postgres-database.js';
import { PostgresSchemaWatch } from './postgres-schema-watch.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

/** The newest migration this code has (what a node of this release knows). */
const CODE = Math.max(...readMigrations(POSTGRES_MIGRATIONS_DIR).map((m) => m.version));
/** The newer release's one migration (additive, as the rule asks). */
const NEWER = 9999;

describe.skipIf(!runPostgresTests)(
  `a running node whose schema another node migrates past its code (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    /** A migrations folder with every migration of this code and one more: a newer release's. */
    let newerRelease: string;
    let made = 0;
    const open: Stores[] = [];
    beforeAll(async () => {
      database = await createTestDatabase();
      newerRelease = await mkdtemp(join(tmpdir(), 'quoll-newer-release-'));
      await cp(POSTGRES_MIGRATIONS_DIR, newerRelease, { recursive: true });
      await writeFile(
        join(newerRelease, `${NEWER}_newer_release.sql`),
        'CREATE TABLE newer_release_things (id INTEGER PRIMARY KEY);\n',
      );
    });
    afterAll(async () => {
      await Promise.all(open.map((s) => s.close()));
      await rm(newerRelease, { recursive: true, force: true });
      await database?.drop();
    });

    /** A node of this release on a schema of its own. */
    async function oldNode(
      schema: string,
      schemaCheckMs: number,
      onSchemaAhead?: (state: SchemaState) => void,
    ): Promise<Stores> {
      const stores = await openStore(
        { kind: 'postgres', url: database.url, schema, poolSize: 2, schemaCheckMs },
        onSchemaAhead === undefined ? {} : { onSchemaAhead },
      );
      open.push(stores);
      return stores;
    }

    it('a node starts with its code and the database at the same version', async () => {
      const node = await oldNode(`w${++made}`, 0);
      expect(node.schema()).toEqual({ status: 'current', code: CODE, database: CODE });
    });

    it('a newer node migrating the schema tells the running ones (NOTIFY): they report schema_ahead with both versions, once, and keep serving', async () => {
      const schema = `w${++made}`;
      const told: SchemaState[] = [];
      // The periodic check is off: only the migrator's NOTIFY can tell this node.
      const node = await oldNode(schema, 0, (state) => told.push(state));
      const newer = await PostgresDatabase.open({
        url: database.url,
        schema,
        poolSize: 1,
        migrationsDirectory: newerRelease,
      });
      try {
        await vi.waitFor(
          () => expect(node.schema()).toEqual({ status: 'ahead', code: CODE, database: NEWER }),
          { timeout: 10_000, interval: 20 },
        );
        expect(told).toEqual([{ status: 'ahead', code: CODE, database: NEWER }]);
        // The newer release's migration is additive: this node still reads and writes.
        const ws = await node.workspaces.ensureDefaultWorkspace('default', new Date().toISOString());
        expect((await node.workspaces.listWorkspaces()).map((w) => w.id)).toContain(ws.id);
      } finally {
        await newer.close();
      }
    });

    it('the periodic check finds a migration whose NOTIFY the node missed', async () => {
      const schema = `w${++made}`;
      const node = await oldNode(schema, 50);
      expect(node.schema().status).toBe('current');
      // Applied without a NOTIFY (as if this node's LISTEN connection had been down then).
      const admin = new pg.Client({ connectionString: database.url, options: `-c search_path=${schema}` });
      await admin.connect();
      try {
        await admin.query(
          "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'newer', 'x')",
          [NEWER],
        );
      } finally {
        await admin.end();
      }
      await vi.waitFor(
        () => expect(node.schema()).toEqual({ status: 'ahead', code: CODE, database: NEWER }),
        { timeout: 10_000, interval: 20 },
      );
    });

    it('a migration announced while the node was cut off from the database is found once its LISTEN connection is back', async () => {
      const schema = `w${++made}`;
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const viaProxy = new URL(database.url);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(proxy.port);
      // The periodic check is off: only the re-read after the LISTEN connection re-opens can tell it.
      const node = await openStore(
        { kind: 'postgres', url: viaProxy.toString(), schema, poolSize: 1, schemaCheckMs: 0 },
        { onConnectionError: () => undefined },
      );
      try {
        const port = proxy.port;
        await proxy.cut();
        // The newer node migrates meanwhile: its NOTIFY reaches nobody on this node.
        const newer = await PostgresDatabase.open({
          url: database.url,
          schema,
          poolSize: 1,
          migrationsDirectory: newerRelease,
        });
        await newer.close();
        expect(node.schema().status).toBe('current');
        await proxy.open(port);
        await vi.waitFor(
          () => expect(node.schema()).toEqual({ status: 'ahead', code: CODE, database: NEWER }),
          { timeout: 20_000, interval: 50 },
        );
      } finally {
        await node.close();
        await proxy.cut();
      }
    });

    // That close() releases the real timer and the LISTEN subscription: postgres-schema-watch-close.test.ts.
    it('close() waits for a check in flight, and a closed watch no longer follows the schema', async () => {
      const schema = `w${++made}`;
      const db = await PostgresDatabase.open({ url: database.url, schema, poolSize: 1 });
      const watch = new PostgresSchemaWatch(db, { checkMs: 5 });
      try {
        await watch.start();
        // Closed while checks come every 5 ms (one may be in flight): close() waits for it.
        await watch.close();
        // A migration and its NOTIFY, which this process still hears (another subscriber)…
        const heard: string[] = [];
        await db.listen('quoll_schema', (payload) => heard.push(payload));
        await db.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'newer', 'x')", [
          NEWER,
        ]);
        await db.run(`SELECT pg_notify('quoll_schema', '${NEWER}')`);
        await vi.waitFor(() => expect(heard).toEqual([String(NEWER)]), { timeout: 10_000, interval: 20 });
        // …but the closed watch does not: its state stays what it was when it closed.
        expect(watch.state).toEqual({ status: 'current', code: CODE, database: CODE });
        await watch.close(); // twice is fine
      } finally {
        await db.close();
      }
    });
  },
);
