import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import { redactDatabaseUrl } from '../../config/index.js';
import { StorageUnavailableError } from '../../errors/index.js';
import { migrationsDir, pendingMigrations, readMigrations } from '../schema-migrations.js';
import type { BoundResult, PostgresBoundStatement } from './postgres-bound-statement.js';
import type { DatabaseHealth } from '../stores.js';

/** Where PostgreSQL's numbered plain-SQL migrations live (`migrations/postgres/0001_core.sql` …). */
export const POSTGRES_MIGRATIONS_DIR = migrationsDir('postgres');

/**
 * The channel a migrator notifies at the commit of its migrations (payload: the newest
 * version it applied), so running nodes of an older release learn that the schema moved past
 * their code (see `PostgresSchemaWatch`).
 */
export const SCHEMA_CHANNEL = 'quoll_schema';

/** Something that runs SQL: the pool, or one client inside a transaction. */
export interface Sql {
  /** The rows of a statement. */
  rows<R extends QueryResultRow>(text: string, values?: readonly unknown[]): Promise<R[]>;
  /** The first row, or null. */
  one<R extends QueryResultRow>(text: string, values?: readonly unknown[]): Promise<R | null>;
  /** How many rows a statement changed. */
  run(text: string, values?: readonly unknown[]): Promise<number>;
  /** Runs a statement that writes its own protocol messages (see {@link PostgresBoundStatement}). */
  bound(statement: PostgresBoundStatement): Promise<BoundResult>;
}

/** Options of {@link openPostgresDatabase}. */
export interface PostgresDatabaseOptions {
  /** `postgres://user@host:port/db`. */
  url: string;
  /** Connections kept open at most. @default 10 */
  poolSize?: number;
  /** Schema the tables live in (created if missing). @default the connection's default (`public`) */
  schema?: string;
  /** Migrations folder. @default POSTGRES_MIGRATIONS_DIR */
  migrationsDirectory?: string;
  /** Told about errors of idle connections (the server restarted, the network dropped). @default ignore */
  onConnectionError?: (err: Error) => void;
  /**
   * How long to keep retrying while the database cannot be reached at start (nodes may start
   * before their database); 0 fails at once.
   * @default 30000
   */
  startTimeoutMs?: number;
  /**
   * Whether to apply pending migrations at open (under the advisory lock). A second
   * connection of a process that already migrated (the inference log's writer thread) skips
   * it and opens without a round-trip.
   * @default true
   */
  migrate?: boolean;
  /**
   * How long a connection may sit idle inside a transaction before the server ends it
   * (`idle_in_transaction_session_timeout`): a node stalled or cut off mid-transaction
   * releases its row and advisory locks after this, not after TCP keepalive's two hours.
   * Every transaction of Quoll runs SQL back to back (a model upload reads its chunks from a
   * local file), so the default is far above any legitimate pause. 0 turns it off.
   * @default 60000
   */
  idleInTransactionTimeoutMs?: number;
  /**
   * How long a cluster-coordination transaction ({@link PostgresDatabase.coordinate}: replica
   * placement, the runs of a cron tick) waits for a lock another node holds before it gives up
   * (`lock_timeout`, SQLSTATE 55P03); the caller retries at its next round.
   * @default 5000
   */
  coordinationLockTimeoutMs?: number;
  /**
   * How often the LISTEN connection is checked with a `SELECT 1` of its own: a connection the
   * server vanished from without closing it (a half-open TCP connection) delivers nothing and
   * reports no error, so only an unanswered question finds it. 0 turns the check off.
   * @default 5000
   */
  listenerCheckMs?: number;
  /**
   * How long that check waits for its answer; past it the connection is taken as broken,
   * destroyed and re-opened (and the subscribers told to catch up).
   * @default 5000
   */
  listenerCheckTimeoutMs?: number;
}

/** Options of {@link PostgresDatabase.listen}. */
export interface ListenOptions {
  /**
   * Called after the LISTEN connection was re-opened (a drop, a failed liveness check), once it
   * listens again: notifications sent while it was down are lost, so the subscriber re-reads
   * what they would have told it. Not called for the first connection.
   */
  onCatchUp?: () => void;
}

/** One {@link PostgresDatabase.listen} call. */
interface Subscription {
  handler: (payload: string) => void;
  onCatchUp: (() => void) | undefined;
}

/** TCP keepalive's first probe after this much silence (the OS default is two hours). */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;
/** How long closing a connection waits for the server's goodbye before destroying the socket. */
const END_GRACE_MS = 1_000;

// 64-bit integers (BIGINT, COUNT) and NUMERIC (SUM of BIGINT) come back as numbers, not strings:
// every such column holds epoch milliseconds, byte counts or row counts, all far below 2^53.
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const toNumber = (v: string): number => Number(v);
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format: 'text' | 'binary' = 'text'): unknown =>
    oid === INT8_OID || oid === NUMERIC_OID
      ? toNumber
      : (pg.types.getTypeParser(oid, format) as unknown)) as pg.CustomTypesConfig['getTypeParser'],
};

/** SQLSTATE codes the stores react to. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';
/** `lock_not_available`: a lock wait ran past `lock_timeout` (see {@link PostgresDatabase.coordinate}). */
export const PG_LOCK_NOT_AVAILABLE = '55P03';
/** `query_canceled`: a statement cancelled (as `pg_cancel_backend` does, e.g. the log writer's stop). */
export const PG_QUERY_CANCELED = '57014';
const RETRYABLE_TX = new Set(['40001', '40P01']);

/** A pooled PostgreSQL database: SQL helpers, transactions, migrations under an advisory lock. */
export class PostgresDatabase implements Sql {
  readonly pool: pg.Pool;
  readonly schema: string | null;
  /** The connection URL it was opened with (for another connection to the same database). */
  readonly url: string;
  /** How long {@link coordinate} waits for a lock, ms. */
  readonly coordinationLockTimeoutMs: number;
  #health: DatabaseHealth = { status: 'ok', error: null };
  #schemaVersions: { code: number; database: number } | null = null;
  #closed = false;
  readonly #clientConfig: pg.ClientConfig;
  readonly #onConnectionError: (err: Error) => void;
  /** The one LISTEN connection of this process, and who listens on which channel. */
  #listener: pg.Client | null = null;
  #listenerReady: Promise<pg.Client> | null = null;
  readonly #subscribers = new Map<string, Set<Subscription>>();
  #reconnectTimer: NodeJS.Timeout | null = null;
  /** Whether `#listener` has connected (false while it connects). */
  #listenerConnected = false;
  /** Reconnects of the LISTEN connection in a row (the backoff grows with them). */
  #reconnects = 0;
  /** The liveness check of the LISTEN connection: its interval and deadline (0: no check). */
  readonly #checkMs: number;
  readonly #checkTimeoutMs: number;
  #checkTimer: NodeJS.Timeout | null = null;
  /** The check in flight, if any (close() waits for it; it ends at once on close). */
  #checkRun: Promise<void> | null = null;
  /** Aborted by close(): ends a check waiting for its answer. */
  readonly #closing = new AbortController();

  private constructor(
    url: string,
    pool: pg.Pool,
    schema: string | null,
    clientConfig: pg.ClientConfig,
    onConnectionError: (err: Error) => void,
    coordinationLockTimeoutMs: number,
    listenerCheck: { everyMs: number; timeoutMs: number },
  ) {
    this.#checkMs = listenerCheck.everyMs;
    this.#checkTimeoutMs = listenerCheck.timeoutMs;
    this.url = url;
    this.coordinationLockTimeoutMs = coordinationLockTimeoutMs;
    this.pool = pool;
    this.schema = schema;
    this.#clientConfig = clientConfig;
    this.#onConnectionError = onConnectionError;
  }

  /** Connects, creates the schema if asked, and applies pending migrations (one migrator at a time). */
  static async open(options: PostgresDatabaseOptions): Promise<PostgresDatabase> {
    const schema = options.schema ?? null;
    if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new Error(`Invalid PostgreSQL schema name "${schema}": use lower-case letters, digits and _.`);
    }
    const idleInTransaction = options.idleInTransactionTimeoutMs ?? 60_000;
    const lockTimeout = options.coordinationLockTimeoutMs ?? 5_000;
    const listenerCheck = {
      everyMs: options.listenerCheckMs ?? 5_000,
      timeoutMs: options.listenerCheckTimeoutMs ?? 5_000,
    };
    for (const [name, value] of [
      ['idleInTransactionTimeoutMs', idleInTransaction],
      ['coordinationLockTimeoutMs', lockTimeout],
      ['listenerCheckMs', listenerCheck.everyMs],
      ['listenerCheckTimeoutMs', listenerCheck.timeoutMs],
    ] as const) {
      if (!Number.isInteger(value) || value < 0) {
        throw new Error(`Invalid ${name} ${value}: use a whole number of milliseconds (0 turns it off).`);
      }
    }
    const clientConfig: pg.ClientConfig = {
      connectionString: options.url,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
      // pg leaves the server's default (off) for 0.
      idle_in_transaction_session_timeout: idleInTransaction,
      types,
      application_name: 'quoll',
      ...(schema === null ? {} : { options: `-c search_path=${schema}` }),
    };
    const pool = new pg.Pool({ ...clientConfig, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    const db = new PostgresDatabase(
      options.url,
      pool,
      schema,
      clientConfig,
      options.onConnectionError ?? (() => undefined),
      lockTimeout,
      listenerCheck,
    );
    // An idle connection that dies (server restart, network) is reported, never thrown: the
    // pool replaces it on the next query. Without this listener the process would crash.
    pool.on('error', (err) => {
      db.#health = { status: 'unavailable', error: err.message };
      db.#onConnectionError(err);
    });
    if (options.migrate === false) return db;
    const giveUpAt = Date.now() + (options.startTimeoutMs ?? 30_000);
    for (let attempt = 1; ; attempt++) {
      try {
        await db.migrate(options.migrationsDirectory ?? POSTGRES_MIGRATIONS_DIR, options.url);
        return db;
      } catch (err) {
        const wait = Math.min(2_000, 100 * 2 ** attempt);
        if (err instanceof StorageUnavailableError && Date.now() + wait < giveUpAt) {
          options.onConnectionError?.(err);
          await new Promise((resolve) => setTimeout(resolve, wait));
          continue;
        }
        await pool.end();
        throw unreachableAt(options.url, err);
      }
    }
  }

  /**
   * Creates the schema if asked and applies pending migrations in one transaction, holding a session advisory lock keyed by the schema: nodes starting together migrate one
   * at a time, and each one after the first finds nothing left to do. A database newer than
   * this code is refused.
   */
  private async migrate(dir: string, url: string): Promise<number[]> {
    const files = readMigrations(dir);
    const out = await this.#checkout();
    const { sql } = out;
    const lockKey = `quoll:migrate:${this.schema ?? ''}`;
    let failed = false;
    try {
      await sql.run('SELECT pg_advisory_lock(hashtext($1))', [lockKey]);
      try {
        if (this.schema !== null) await sql.run(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
        await sql.run(
          'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
        );
        const applied = new Set(
          (await sql.rows<{ version: number }>('SELECT version FROM schema_migrations')).map(
            (r) => r.version,
          ),
        );
        const pending = pendingMigrations(files, applied, redactDatabaseUrl(url));
        const code = files.reduce((max, f) => Math.max(max, f.version), 0);
        // All pending migrations in one transaction: a node sees the old schema or the new
        // one, never half of an upgrade.
        await sql.run('BEGIN');
        try {
          for (const m of pending) {
            await sql.run(m.sql);
            await sql.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
              m.version,
              m.name,
              new Date().toISOString(),
            ]);
          }
          // Delivered at COMMIT (never for a rolled-back migration): the running nodes of an
          // older release learn that the schema is now newer than their code.
          if (pending.length > 0) await sql.run('SELECT pg_notify($1, $2)', [SCHEMA_CHANNEL, String(code)]);
          await sql.run('COMMIT');
        } catch (err) {
          // A lost connection rolled back on the server already; the error that broke it is
          // the one to report (open() retries a lost connection).
          if (out.lost === null) await sql.run('ROLLBACK');
          throw err;
        }
        const done = pending.map((m) => m.version);
        this.#schemaVersions = { code, database: Math.max(code, ...applied) };
        return done;
      } finally {
        // A session lock dies with its connection: nothing to unlock on a lost one.
        if (out.lost === null) await sql.run('SELECT pg_advisory_unlock(hashtext($1))', [lockKey]);
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      out.release(failed);
    }
  }

  /**
   * The newest migration this code has and the newest the database had once {@link open}
   * migrated it (the same, or open would have refused); null when opened without migrating.
   */
  get schemaVersions(): { code: number; database: number } | null {
    return this.#schemaVersions;
  }

  /** The connection state as the last round-trips saw it. */
  get health(): DatabaseHealth {
    return this.#health;
  }

  /** Asks the database (one `SELECT 1`, bounded by `timeoutMs`) and updates {@link health}. */
  async ping(timeoutMs = 2_000): Promise<DatabaseHealth> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pool.query('SELECT 1'),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      this.#health = { status: 'ok', error: null };
    } catch (err) {
      this.#health = { status: 'unavailable', error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
    return this.#health;
  }

  async rows<R extends QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    return (await this.#query<R>(text, values)).rows;
  }

  async one<R extends QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R | null> {
    return (await this.#query<R>(text, values)).rows[0] ?? null;
  }

  /**
   * The rows of a read that must answer within `timeoutMs`. A pooled connection that went
   * half-open (its peer gone without a FIN; TCP keepalive would take the OS's ~11 minutes of
   * probes to notice) gives no answer: it is then destroyed, not handed out again, and the read
   * fails with {@link StorageUnavailableError}, so a retry runs on a fresh connection.
   */
  async rowsWithin<R extends QueryResultRow>(
    timeoutMs: number,
    text: string,
    values: readonly unknown[] = [],
  ): Promise<R[]> {
    try {
      // The pool releases the client with the timeout's error, which destroys it.
      const config: pg.QueryConfig & { query_timeout: number } = {
        text,
        values: values as unknown[],
        query_timeout: timeoutMs,
      };
      const result = await this.pool.query<R>(config);
      this.#health = { status: 'ok', error: null };
      return result.rows;
    } catch (err) {
      if (err instanceof Error && err.message === 'Query read timeout') {
        const message = `the database gave no answer within ${timeoutMs} ms; the connection was dropped`;
        this.#health = { status: 'unavailable', error: message };
        throw new StorageUnavailableError(message, { cause: err });
      }
      throw this.#translate(err);
    }
  }

  async run(text: string, values: readonly unknown[] = []): Promise<number> {
    return (await this.#query(text, values)).rowCount ?? 0;
  }

  async bound(statement: PostgresBoundStatement): Promise<BoundResult> {
    const out = await this.#checkout();
    let broken = false;
    try {
      const result = await out.sql.bound(statement);
      this.#health = { status: 'ok', error: null };
      return result;
    } catch (err) {
      broken = err instanceof StorageUnavailableError;
      throw err;
    } finally {
      out.release(broken);
    }
  }

  /**
   * Runs `fn` in a transaction on one client (READ COMMITTED), committing when it resolves.
   * A serialization failure or deadlock (another node's transaction won) retries the whole
   * function, up to `attempts` times.
   */
  async transaction<T>(fn: (sql: Sql) => Promise<T>, attempts = 5): Promise<T> {
    return this.#transaction('BEGIN', fn, attempts);
  }

  /**
   * A {@link transaction} for coordinating nodes (replica placement, the runs of a cron tick):
   * a lock wait past {@link coordinationLockTimeoutMs} fails with SQLSTATE
   * {@link PG_LOCK_NOT_AVAILABLE} instead of waiting on a node that stalled holding the lock,
   * so the caller can retry at its next round.
   */
  coordinate<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    // One round-trip: both statements in one simple query.
    return this.#transaction(`BEGIN; SET LOCAL lock_timeout = ${this.coordinationLockTimeoutMs}`, fn, 5);
  }

  async #transaction<T>(begin: string, fn: (sql: Sql) => Promise<T>, attempts: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const out = await this.#checkout();
      let broken = false;
      try {
        await out.sql.run(begin);
        const result = await fn(out.sql);
        await out.sql.run('COMMIT');
        this.#health = { status: 'ok', error: null };
        return result;
      } catch (err) {
        try {
          await out.sql.run('ROLLBACK');
        } catch {
          broken = true;
        }
        // The connection broke: whatever `fn` made of that, the database could not be reached
        // (and the transaction was rolled back, unless it broke during COMMIT's round-trip).
        if (out.lost !== null) throw lostConnection(out.lost);
        const code = sqlState(err);
        if (code !== null && RETRYABLE_TX.has(code) && attempt < attempts) continue;
        throw this.#translate(err);
      } finally {
        out.release(broken);
      }
    }
  }

  /**
   * Calls `handler` with the payload of every `NOTIFY` on `channel`, until the returned
   * function is called. One connection per process carries every channel; when it drops, or
   * stops answering its liveness check (every `listenerCheckMs`), it is re-opened with backoff.
   * Notifications sent meanwhile are lost: `options.onCatchUp` is called once it listens again,
   * for the subscriber to re-read what it may have missed.
   */
  async listen(
    channel: string,
    handler: (payload: string) => void,
    options: ListenOptions = {},
  ): Promise<() => void> {
    let subscriptions = this.#subscribers.get(channel);
    const first = subscriptions === undefined;
    if (subscriptions === undefined) {
      subscriptions = new Set();
      this.#subscribers.set(channel, subscriptions);
    }
    const subscription: Subscription = { handler, onCatchUp: options.onCatchUp };
    subscriptions.add(subscription);
    if (first) {
      try {
        const client = await this.#listenerClient();
        await client.query(`LISTEN ${quoteIdent(channel)}`);
      } catch (err) {
        // The reconnect loop listens again; until then the subscriber polls.
        this.#onConnectionError(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return () => {
      const set = this.#subscribers.get(channel);
      set?.delete(subscription);
      if (set !== undefined && set.size === 0) {
        this.#subscribers.delete(channel);
        void this.#listener?.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => undefined);
      }
    };
  }

  /** Whether the liveness check of the LISTEN connection is armed or running (false once closed). */
  get listenerCheckActive(): boolean {
    return this.#checkTimer !== null || this.#checkRun !== null;
  }

  /**
   * The LISTEN connection: one at a time, connecting or connected (`#listener` is set from the
   * moment it is created, so events of an older, dropped one change nothing).
   */
  #listenerClient(): Promise<pg.Client> {
    if (this.#closed) return Promise.reject(new Error('the database connection is closed'));
    this.#listenerReady ??= (async () => {
      const client = new pg.Client(this.#clientConfig);
      this.#listener = client;
      this.#listenerConnected = false;
      client.on('notification', (msg) => {
        for (const s of this.#subscribers.get(msg.channel) ?? []) s.handler(msg.payload ?? '');
      });
      client.on('error', (err) => {
        if (this.#listener !== client) return;
        this.#health = { status: 'unavailable', error: err.message };
        this.#onConnectionError(err);
        this.#dropListener(client);
      });
      client.on('end', () => this.#dropListener(client));
      try {
        await client.connect();
      } catch (err) {
        this.#dropListener(client);
        throw this.#translate(err);
      }
      if (this.#closed || this.#listener !== client) {
        // Closed (or dropped) while it connected: it must not outlive close(), whose process
        // would otherwise never exit.
        await client.end().catch(() => undefined);
        throw new StorageUnavailableError('the LISTEN connection was closed while it connected');
      }
      this.#listenerConnected = true;
      this.#reconnects = 0;
      this.#armCheck();
      return client;
    })();
    return this.#listenerReady;
  }

  /** Schedules the next liveness check of the LISTEN connection (one chain at a time). */
  #armCheck(): void {
    if (this.#closed || this.#checkMs === 0 || this.#checkTimer !== null || this.#checkRun !== null) return;
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = null;
      this.#checkRun = this.#checkListener().finally(() => {
        this.#checkRun = null;
        // Re-armed while a connection listens; a reconnect arms it again once it has one.
        if (this.#listener !== null && this.#listenerConnected) this.#armCheck();
      });
    }, this.#checkMs);
  }

  /**
   * Asks the LISTEN connection a `SELECT 1`: with no answer within the deadline (or an error)
   * the connection is broken whatever its socket says (a half-open one never reports), so it
   * is destroyed and re-opened, and the subscribers catch up once it listens again.
   */
  async #checkListener(): Promise<void> {
    const client = this.#listener;
    if (client === null || !this.#listenerConnected || this.#closed) return;
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    const signal = this.#closing.signal;
    const outcome = await Promise.race([
      client.query('SELECT 1').then(
        () => 'ok' as const,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      ),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.#checkTimeoutMs);
      }),
      new Promise<'closed'>((resolve) => {
        onClose = () => resolve('closed');
        signal.addEventListener('abort', onClose, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onClose !== undefined) signal.removeEventListener('abort', onClose);
    if (outcome === 'ok' || outcome === 'closed' || this.#closed || this.#listener !== client) return;
    const err =
      outcome === 'timeout'
        ? new Error(
            `the LISTEN connection did not answer within ${this.#checkTimeoutMs} ms (a half-open connection?); re-opening it`,
          )
        : outcome;
    this.#health = { status: 'unavailable', error: err.message };
    this.#onConnectionError(err);
    // end() would wait for the server's goodbye, which a half-open connection never sends.
    client.connection.stream.destroy();
    this.#dropListener(client);
  }

  /** Tells every subscriber that wants it to re-read (the LISTEN connection was re-opened). */
  #catchUp(): void {
    for (const subscriptions of this.#subscribers.values())
      for (const { onCatchUp } of subscriptions) {
        try {
          onCatchUp?.();
        } catch (err) {
          this.#onConnectionError(err instanceof Error ? err : new Error(String(err)));
        }
      }
  }

  /** Forgets a broken LISTEN connection and re-opens it (with every channel) after a pause. */
  #dropListener(client: pg.Client): void {
    // Its 'end' after its 'error', or a connection already replaced: nothing left to do.
    if (this.#listener !== client) return;
    this.#listener = null;
    this.#listenerReady = null;
    void endClient(client);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#subscribers.size === 0 || this.#reconnectTimer !== null) return;
    this.#reconnects++;
    this.#reconnectTimer = setTimeout(
      () => {
        this.#reconnectTimer = null;
        if (this.#closed || this.#subscribers.size === 0) return;
        this.#listenerClient()
          .then(async (fresh) => {
            for (const channel of this.#subscribers.keys())
              await fresh.query(`LISTEN ${quoteIdent(channel)}`);
            // Listening again: what was announced meanwhile is lost; the subscribers re-read.
            if (this.#listener === fresh && !this.#closed) this.#catchUp();
          })
          .catch(() => {
            // A failed connect was dropped already; a connection that failed to LISTEN is.
            const current = this.#listener;
            if (current !== null) this.#dropListener(current);
            else this.#scheduleReconnect();
          });
      },
      Math.min(5_000, 100 * 2 ** this.#reconnects),
    );
  }

  /** Closes every connection (the pool and the LISTEN connection, even one still connecting). Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    if (this.#checkTimer !== null) clearTimeout(this.#checkTimer);
    this.#checkTimer = null;
    this.#closing.abort();
    await this.#checkRun;
    this.#subscribers.clear();
    const listener = this.#listener;
    const connecting = this.#listenerConnected ? null : this.#listenerReady;
    this.#listener = null;
    this.#listenerReady = null;
    // One connected is ended here; one still connecting ends itself as soon as its connect
    // settles (see #listenerClient), and close() waits for that, so no socket is left behind.
    if (connecting !== null) await connecting.catch(() => undefined);
    else if (listener !== null) await endClient(listener);
    await this.pool.end();
  }

  /**
   * A client of the pool, watched for as long as it is checked out. The pool listens for the
   * errors of idle clients only: a connection that breaks while checked out (the server
   * restarted, the backend was terminated, the network dropped) emits 'error' on the client,
   * which with no listener would end the process. Here it is recorded instead: the next
   * statement fails with {@link StorageUnavailableError}, and `release` discards the client.
   */
  async #checkout(): Promise<Checkout> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.#translate(err);
    }
    let lost: Error | null = null;
    // A terminated backend reports its error message, then its socket's end: one report.
    const onError = (err: Error): void => {
      if (lost !== null) return;
      lost = err;
      this.#health = { status: 'unavailable', error: err.message };
      this.#onConnectionError(err);
    };
    client.on('error', onError);
    const guard = async <T>(run: () => Promise<T>): Promise<T> => {
      if (lost !== null) throw lostConnection(lost);
      try {
        return await run();
      } catch (err) {
        // The statement's own error comes after the client's 'error' (pg rejects it on the next tick).
        if (lost !== null) throw lostConnection(lost);
        throw this.#translate(err);
      }
    };
    let released = false;
    return {
      sql: {
        rows: <R extends QueryResultRow>(text: string, values: readonly unknown[] = []) =>
          guard(async () => (await client.query<R>(text, values as unknown[])).rows),
        one: <R extends QueryResultRow>(text: string, values: readonly unknown[] = []) =>
          guard(async () => (await client.query<R>(text, values as unknown[])).rows[0] ?? null),
        run: (text, values = []) =>
          guard(async () => (await client.query(text, values as unknown[])).rowCount ?? 0),
        bound: (statement) =>
          guard(() => {
            client.query(statement);
            return statement.result;
          }),
      },
      get lost() {
        return lost;
      },
      release: (broken) => {
        if (released) return;
        released = true;
        client.off('error', onError);
        // An error makes the pool destroy the client rather than hand it out again.
        client.release(lost ?? broken);
      },
    };
  }

  async #query<R extends QueryResultRow>(
    text: string,
    values: readonly unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      const result = await this.pool.query<R>(text, values as unknown[]);
      this.#health = { status: 'ok', error: null };
      return result;
    } catch (err) {
      throw this.#translate(err);
    }
  }

  /** Connection-level failures become {@link StorageUnavailableError}; SQL errors pass through. */
  #translate(err: unknown): unknown {
    if (err instanceof StorageUnavailableError || !isConnectionError(err)) return err;
    const message = err instanceof Error ? err.message : String(err);
    this.#health = { status: 'unavailable', error: message };
    return new StorageUnavailableError(message, { cause: err });
  }
}

/** A checked-out client (see `PostgresDatabase.#checkout`). */
interface Checkout {
  /** Statements on this client; after the connection broke, each fails with {@link StorageUnavailableError}. */
  readonly sql: Sql;
  /** The error that broke the connection while checked out, or null. */
  readonly lost: Error | null;
  /** Gives the client back (once); a broken or lost one is destroyed. */
  release(broken: boolean): void;
}

/**
 * Ends a client, destroying its socket when the server's goodbye does not come within
 * {@link END_GRACE_MS} (a half-open connection never answers, and `end()` would wait forever).
 */
async function endClient(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = client.end().then(
    () => true,
    () => true,
  );
  const inTime = await Promise.race([
    ended,
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), END_GRACE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (inTime) return;
  client.connection.stream.destroy();
  await ended;
}

function lostConnection(err: Error): StorageUnavailableError {
  return new StorageUnavailableError(`the database connection was lost: ${err.message}`, { cause: err });
}

/** A channel or other identifier, double-quoted for SQL. */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The SQLSTATE of a driver error, or null. */
export function sqlState(err: unknown): string | null {
  if (typeof err !== 'object' || err === null || !('code' in err)) return null;
  const code = err.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** Whether a driver error means the connection (not the statement) failed. */
function isConnectionError(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : null;
  if (typeof code === 'string') {
    // Socket errors, and SQLSTATE class 08 (connection exception), 57P0x (server shutting down).
    if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH)$/.test(code))
      return true;
    if (code.startsWith('08') || /^57P0[1-3]$/.test(code)) return true;
  }
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    message,
  );
}

/**
 * `err` as thrown to whoever opened a database: a {@link StorageUnavailableError} says which
 * database could not be reached (its URL redacted); anything else is returned as it is.
 */
export function unreachableAt(url: string, err: unknown): unknown {
  if (!(err instanceof StorageUnavailableError)) return err;
  return new StorageUnavailableError(
    `cannot reach the database at ${redactDatabaseUrl(url)}: ${err.message}`,
    {
      cause: err,
    },
  );
}
