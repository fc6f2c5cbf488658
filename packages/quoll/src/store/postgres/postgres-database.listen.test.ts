import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { TcpProxy } from '../../../../../test/support/tcp-proxy.js';
import { PostgresDatabase } from './postgres-database.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

describe.skipIf(!runPostgresTests)(
  `PostgresDatabase LISTEN connection (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });

    it('a close() while the LISTEN connection is being re-made leaves no connection open', async () => {
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      const db = await PostgresDatabase.open({ url: url.toString(), poolSize: 1 });
      try {
        const notes: string[] = [];
        await db.listen('quoll_test_channel', (payload) => notes.push(payload));
        // The outage: every connection drops, and the LISTEN connection starts re-connecting.
        const port = proxy.port;
        await proxy.cut();
        proxy.delayMs = 1_500;
        await proxy.open(port);
        const before = proxy.accepted;
        await vi.waitFor(() => expect(proxy.accepted).toBeGreaterThan(before), {
          timeout: 15_000,
          interval: 20,
        });
        // Stopped while that connection is still being made.
      } finally {
        await db.close();
      }
      // Once the held connection goes through, it is ended rather than kept as the listener.
      await vi.waitFor(() => expect(proxy.sockets.size).toBe(0), { timeout: 10_000, interval: 50 });
      await proxy.cut();
    });

    it('after an outage, one LISTEN connection carries notifications again, and close() ends it', async () => {
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      // No migration, so the pool opens no connection: every proxied one is the LISTEN one.
      const db = await PostgresDatabase.open({ url: url.toString(), poolSize: 1, migrate: false });
      const notifier = new pg.Client({ connectionString: database.url });
      await notifier.connect();
      try {
        const notes: string[] = [];
        await db.listen('quoll_test_channel', (payload) => notes.push(payload));
        const port = proxy.port;
        await proxy.cut();
        // Reconnects fail while the database is unreachable (their 'end' events come after
        // their errors: neither may start a second connection).
        const before = proxy.accepted;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await proxy.open(port);
        let n = 0;
        await vi.waitFor(
          async () => {
            await notifier.query(`NOTIFY quoll_test_channel, 'n${++n}'`);
            expect(notes.length).toBeGreaterThan(0);
          },
          { timeout: 15_000, interval: 50 },
        );
        expect(proxy.accepted).toBeGreaterThan(before);
        // One connection: its two proxied sockets (to the node, to the database).
        expect(proxy.sockets.size).toBe(2);
      } finally {
        await notifier.end();
        await db.close();
      }
      await vi.waitFor(() => expect(proxy.sockets.size).toBe(0), { timeout: 10_000, interval: 50 });
      await proxy.cut();
    });
  },
);
