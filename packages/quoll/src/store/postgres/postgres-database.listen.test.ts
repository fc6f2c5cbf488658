import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { TcpProxy } from '../../../../../test/support/tcp-proxy.js';
import { PostgresDatabase } from './postgres-database.js';
import type { PostgresDatabaseOptions } from './postgres-database.js';

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

    /** A database reached through `proxy`, without migrations (every proxied connection is the LISTEN one). */
    async function throughProxy(
      proxy: TcpProxy,
      options: Partial<PostgresDatabaseOptions> = {},
    ): Promise<PostgresDatabase> {
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      return PostgresDatabase.open({ url: url.toString(), poolSize: 1, migrate: false, ...options });
    }

    it('a half-open LISTEN connection (the server gone without a FIN) is found by its check, re-opened, and its subscribers told to catch up', async () => {
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const errors: Error[] = [];
      const db = await throughProxy(proxy, {
        listenerCheckMs: 100,
        listenerCheckTimeoutMs: 300,
        onConnectionError: (err) => errors.push(err),
      });
      const notifier = new pg.Client({ connectionString: database.url });
      await notifier.connect();
      try {
        const notes: string[] = [];
        let caughtUp = 0;
        await db.listen('quoll_test_channel', (payload) => notes.push(payload), {
          onCatchUp: () => (caughtUp += 1),
        });
        await notifier.query(`NOTIFY quoll_test_channel, 'before'`);
        await vi.waitFor(() => expect(notes).toEqual(['before']), { timeout: 5_000, interval: 20 });
        expect(caughtUp).toBe(0);
        const before = proxy.accepted;
        proxy.stall();
        // Sent while the connection is deaf: lost, which is what the catch-up is for.
        await notifier.query(`NOTIFY quoll_test_channel, 'lost'`);
        await vi.waitFor(() => expect(proxy.accepted).toBeGreaterThan(before), {
          timeout: 15_000,
          interval: 20,
        });
        await vi.waitFor(() => expect(caughtUp).toBe(1), { timeout: 15_000, interval: 20 });
        expect(errors.map((e) => e.message).join('\n')).toMatch(/LISTEN connection did not answer/);
        let n = 0;
        await vi.waitFor(
          async () => {
            await notifier.query(`NOTIFY quoll_test_channel, 'after${++n}'`);
            expect(notes.some((p) => p.startsWith('after'))).toBe(true);
          },
          { timeout: 15_000, interval: 50 },
        );
        expect(notes).not.toContain('lost');
        // The frozen connection was let go: only the new one's two sockets, and the two frozen
        // ones the proxy still holds open (its side never closes them).
        await vi.waitFor(() => expect(proxy.sockets.size - proxy.stalled.size).toBe(2), {
          timeout: 5_000,
          interval: 20,
        });
      } finally {
        await notifier.end();
        await db.close();
      }
      await proxy.cut();
    });

    it('subscribers are told to catch up after every re-opened LISTEN connection, never at the first one', async () => {
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const db = await throughProxy(proxy);
      try {
        const caught: string[] = [];
        await db.listen('quoll_test_a', () => undefined, { onCatchUp: () => caught.push('a') });
        await db.listen('quoll_test_b', () => undefined, { onCatchUp: () => caught.push('b') });
        await db.listen('quoll_test_b', () => undefined);
        expect(caught).toEqual([]);
        for (const round of [1, 2]) {
          const port = proxy.port;
          await proxy.cut();
          await proxy.open(port);
          await vi.waitFor(() => expect(caught.length).toBe(2 * round), { timeout: 15_000, interval: 20 });
        }
        expect(caught.sort()).toEqual(['a', 'a', 'b', 'b']);
      } finally {
        await db.close();
      }
      await proxy.cut();
    });

    it('the liveness check stops with close(): no timer, no query, no connection after it', async () => {
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const errors: Error[] = [];
      const db = await throughProxy(proxy, {
        listenerCheckMs: 20,
        // Longer than the test may take: a close() that waited for it would fail the test.
        listenerCheckTimeoutMs: 600_000,
        onConnectionError: (err) => errors.push(err),
      });
      await db.listen('quoll_test_channel', () => undefined);
      expect(db.listenerCheckActive).toBe(true);
      // Closed while a check may wait on a connection that does not answer.
      proxy.stall();
      await new Promise((resolve) => setTimeout(resolve, 60));
      await db.close();
      expect(db.listenerCheckActive).toBe(false);
      const accepted = proxy.accepted;
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(proxy.accepted).toBe(accepted);
      expect(errors).toEqual([]);
      await proxy.cut();
    });
  },
);
