import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { TcpProxy } from '../../../../../test/support/tcp-proxy.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresRunLogStore, type PostgresRunLogStoreOptions } from './postgres-run-log-store.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

describe.skipIf(!runPostgresTests)(
  `PostgresRunLogStore followers (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await database?.drop();
    });

    /**
     * A store reaching the database through a proxy the test can cut or stall, a follower of
     * `runId` on it collecting lines, and a writer (a direct connection) inserting lines.
     */
    async function followBehindProxy(runId: string, options: PostgresRunLogStoreOptions) {
      // The store's tables, made through a direct connection.
      const direct = await PostgresDatabase.open({ url: database.url, schema: 'runlogs' });
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      const db = await PostgresDatabase.open({ url: url.toString(), schema: 'runlogs', migrate: false });
      const store = new PostgresRunLogStore(db, options);
      const writer = new pg.Client({ connectionString: database.url, options: '-c search_path=runlogs' });
      await writer.connect();
      const abort = new AbortController();
      const got: string[] = [];
      const following = (async () => {
        for await (const line of store.follow(runId, abort.signal)) got.push(line.line);
      })();
      let ended: 'returned' | Error | null = null;
      following.then(
        () => (ended = 'returned'),
        (err: Error) => (ended = err),
      );
      return {
        proxy,
        got,
        following,
        ended: () => ended,
        abort: () => abort.abort(),
        insert: (seq: number, line: string, final = false) =>
          writer.query(
            `INSERT INTO task_run_log_lines (run_id, seq, time, stream, line, final) VALUES ($1, $2, $3, 'stdout', $4, $5)`,
            [runId, seq, new Date().toISOString(), line, final],
          ),
        notify: () => writer.query(`NOTIFY quoll_run_log, '${runId}'`),
        async close(): Promise<void> {
          abort.abort();
          await following.catch(() => undefined);
          await writer.end();
          await db.close();
          await direct.close();
          await proxy.cut();
        },
      };
    }

    it('a follower reads the lines written while its LISTEN connection was down as soon as it listens again', async () => {
      // Followers' own polls so rare that only a notification or the catch-up can wake them.
      const f = await followBehindProxy('run-1', { followPollMs: 600_000 });
      try {
        await vi.waitFor(() => expect(f.proxy.sockets.size).toBeGreaterThan(0), {
          timeout: 5_000,
          interval: 20,
        });
        await f.insert(1, 'one');
        await f.notify();
        await vi.waitFor(() => expect(f.got).toEqual(['one']), { timeout: 10_000, interval: 20 });
        // The follower reads once more after a line (finding none): let that read end first.
        await new Promise((resolve) => setTimeout(resolve, 300));
        // The outage: the line written meanwhile is announced to nobody.
        const port = f.proxy.port;
        await f.proxy.cut();
        await f.insert(2, 'two');
        await f.notify();
        await f.proxy.open(port);
        await vi.waitFor(() => expect(f.got).toEqual(['one', 'two']), { timeout: 15_000, interval: 20 });
      } finally {
        await f.close();
      }
    });

    it('a follower whose reads fail during an outage keeps retrying and reads on once the database is back', async () => {
      // Frequent polls: reads happen (and fail) while the database cannot be reached.
      const f = await followBehindProxy('run-2', { followPollMs: 20, onError: () => undefined });
      try {
        await f.insert(1, 'one');
        await vi.waitFor(() => expect(f.got).toEqual(['one']), { timeout: 10_000, interval: 20 });
        const port = f.proxy.port;
        await f.proxy.cut();
        await f.insert(2, 'two');
        // Several polls fail meanwhile (each a refused connection).
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(f.ended()).toBe(null);
        await f.proxy.open(port);
        await f.insert(3, 'three', true);
        await vi.waitFor(() => expect(f.got).toEqual(['one', 'two', 'three']), {
          timeout: 15_000,
          interval: 20,
        });
        await f.following;
        expect(f.ended()).toBe('returned');
      } finally {
        await f.close();
      }
    });

    it('a follower whose pooled connection went half-open (no answer, no close) reads on over a new one', async () => {
      const f = await followBehindProxy('run-4', {
        followPollMs: 20,
        followReadTimeoutMs: 300,
        onError: () => undefined,
      });
      try {
        await f.insert(1, 'one');
        await vi.waitFor(() => expect(f.got).toEqual(['one']), { timeout: 10_000, interval: 20 });
        // Every open connection (the pool's and the LISTEN one) stops answering; new ones pass.
        f.proxy.stall();
        await f.insert(2, 'two');
        await vi.waitFor(() => expect(f.got).toEqual(['one', 'two']), { timeout: 15_000, interval: 20 });
      } finally {
        await f.close();
      }
    });

    it('a follower retrying through an outage stops at once when its reader goes away', async () => {
      const f = await followBehindProxy('run-3', { followPollMs: 20, onError: () => undefined });
      try {
        await vi.waitFor(() => expect(f.proxy.sockets.size).toBeGreaterThan(0), {
          timeout: 5_000,
          interval: 20,
        });
        await f.proxy.cut();
        await new Promise((resolve) => setTimeout(resolve, 300));
        f.abort();
        // Ends cleanly (no error), without waiting for the database.
        await expect(f.following).resolves.toBeUndefined();
      } finally {
        await f.close();
      }
    });
  },
);
