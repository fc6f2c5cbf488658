import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TaskRunLogLineDto } from '@quoll/client/wire';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { TcpProxy } from '../../../../../test/support/tcp-proxy.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresRunLogStore } from './postgres-run-log-store.js';

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

    it('a follower reads the lines written while its LISTEN connection was down as soon as it listens again', async () => {
      // The store's tables, made through a direct connection.
      const direct = await PostgresDatabase.open({ url: database.url, schema: 'runlogs' });
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      // Followers' own polls so rare that only a notification or the catch-up can wake them.
      const db = await PostgresDatabase.open({ url: url.toString(), schema: 'runlogs', migrate: false });
      const store = new PostgresRunLogStore(db, { followPollMs: 600_000 });
      const writer = new pg.Client({ connectionString: database.url, options: '-c search_path=runlogs' });
      await writer.connect();
      const abort = new AbortController();
      const got: TaskRunLogLineDto[] = [];
      const following = (async () => {
        for await (const line of store.follow('run-1', abort.signal)) got.push(line);
      })();
      try {
        await vi.waitFor(() => expect(proxy.sockets.size).toBeGreaterThan(0), {
          timeout: 5_000,
          interval: 20,
        });
        await writer.query(
          `INSERT INTO task_run_log_lines (run_id, seq, time, stream, line) VALUES ('run-1', 1, $1, 'stdout', 'one')`,
          [new Date().toISOString()],
        );
        await writer.query(`NOTIFY quoll_run_log, 'run-1'`);
        await vi.waitFor(() => expect(got.map((l) => l.line)).toEqual(['one']), {
          timeout: 10_000,
          interval: 20,
        });
        // The follower reads once more after a line (finding none): let that read end first.
        await new Promise((resolve) => setTimeout(resolve, 300));
        // The outage: the line written meanwhile is announced to nobody.
        const port = proxy.port;
        await proxy.cut();
        await writer.query(
          `INSERT INTO task_run_log_lines (run_id, seq, time, stream, line) VALUES ('run-1', 2, $1, 'stdout', 'two')`,
          [new Date().toISOString()],
        );
        await writer.query(`NOTIFY quoll_run_log, 'run-1'`);
        await proxy.open(port);
        await vi.waitFor(() => expect(got.map((l) => l.line)).toEqual(['one', 'two']), {
          timeout: 15_000,
          interval: 20,
        });
      } finally {
        abort.abort();
        await following.catch(() => undefined);
        await writer.end();
        await db.close();
        await direct.close();
        await proxy.cut();
      }
    });

    it('a follower whose reads fail during an outage keeps retrying and reads on once the database is back', async () => {
      const direct = await PostgresDatabase.open({ url: database.url, schema: 'runlogs' });
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      const db = await PostgresDatabase.open({ url: url.toString(), schema: 'runlogs', migrate: false });
      // Frequent polls: reads happen (and fail) while the database cannot be reached.
      const store = new PostgresRunLogStore(db, { followPollMs: 20, onError: () => undefined });
      const writer = new pg.Client({ connectionString: database.url, options: '-c search_path=runlogs' });
      await writer.connect();
      const insert = (seq: number, line: string, final = false) =>
        writer.query(
          `INSERT INTO task_run_log_lines (run_id, seq, time, stream, line, final) VALUES ('run-2', $1, $2, 'stdout', $3, $4)`,
          [seq, new Date().toISOString(), line, final],
        );
      const abort = new AbortController();
      const got: string[] = [];
      const following = (async () => {
        for await (const line of store.follow('run-2', abort.signal)) got.push(line.line);
      })();
      let ended: 'returned' | Error | null = null;
      following.then(
        () => (ended = 'returned'),
        (err: Error) => (ended = err),
      );
      try {
        await insert(1, 'one');
        await vi.waitFor(() => expect(got).toEqual(['one']), { timeout: 10_000, interval: 20 });
        const port = proxy.port;
        await proxy.cut();
        await insert(2, 'two');
        // Several polls fail meanwhile (each a refused connection).
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(ended).toBe(null);
        await proxy.open(port);
        await insert(3, 'three', true);
        await vi.waitFor(() => expect(got).toEqual(['one', 'two', 'three']), {
          timeout: 15_000,
          interval: 20,
        });
        await following;
        expect(ended).toBe('returned');
      } finally {
        abort.abort();
        await following.catch(() => undefined);
        await writer.end();
        await db.close();
        await direct.close();
        await proxy.cut();
      }
    });

    it('a follower whose pooled connection went half-open (no answer, no close) reads on over a new one', async () => {
      const direct = await PostgresDatabase.open({ url: database.url, schema: 'runlogs' });
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      const db = await PostgresDatabase.open({ url: url.toString(), schema: 'runlogs', migrate: false });
      const store = new PostgresRunLogStore(db, {
        followPollMs: 20,
        followReadTimeoutMs: 300,
        onError: () => undefined,
      });
      const writer = new pg.Client({ connectionString: database.url, options: '-c search_path=runlogs' });
      await writer.connect();
      const insert = (seq: number, line: string) =>
        writer.query(
          `INSERT INTO task_run_log_lines (run_id, seq, time, stream, line) VALUES ('run-4', $1, $2, 'stdout', $3)`,
          [seq, new Date().toISOString(), line],
        );
      const abort = new AbortController();
      const got: string[] = [];
      const following = (async () => {
        for await (const line of store.follow('run-4', abort.signal)) got.push(line.line);
      })();
      try {
        await insert(1, 'one');
        await vi.waitFor(() => expect(got).toEqual(['one']), { timeout: 10_000, interval: 20 });
        // Every open connection (the pool's and the LISTEN one) stops answering; new ones pass.
        proxy.stall();
        await insert(2, 'two');
        await vi.waitFor(() => expect(got).toEqual(['one', 'two']), { timeout: 15_000, interval: 20 });
      } finally {
        abort.abort();
        await following.catch(() => undefined);
        await writer.end();
        await db.close();
        await direct.close();
        await proxy.cut();
      }
    });

    it('a follower retrying through an outage stops at once when its reader goes away', async () => {
      const direct = await PostgresDatabase.open({ url: database.url, schema: 'runlogs' });
      const proxy = new TcpProxy(new URL(database.url));
      await proxy.open();
      const url = new URL(database.url);
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      const db = await PostgresDatabase.open({ url: url.toString(), schema: 'runlogs', migrate: false });
      const store = new PostgresRunLogStore(db, { followPollMs: 20, onError: () => undefined });
      const abort = new AbortController();
      const following = (async () => {
        for await (const _ of store.follow('run-3', abort.signal)) void _;
      })();
      try {
        await vi.waitFor(() => expect(proxy.sockets.size).toBeGreaterThan(0), {
          timeout: 5_000,
          interval: 20,
        });
        await proxy.cut();
        await new Promise((resolve) => setTimeout(resolve, 300));
        abort.abort();
        // Ends cleanly (no error), without waiting for the database.
        await expect(following).resolves.toBeUndefined();
      } finally {
        abort.abort();
        await following.catch(() => undefined);
        await db.close();
        await direct.close();
        await proxy.cut();
      }
    });
  },
);
