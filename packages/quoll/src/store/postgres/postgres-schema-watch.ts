import type { SchemaState } from '../stores.js';
import { SCHEMA_CHANNEL } from './postgres-database.js';
import type { PostgresDatabase } from './postgres-database.js';

/** Options of {@link PostgresSchemaWatch}. */
export interface SchemaWatchOptions {
  /**
   * How often the schema's version is re-read besides the migrators' `NOTIFY` (a NOTIFY sent
   * while this node's LISTEN connection was down is lost; its re-opening re-reads too). 0
   * turns the periodic read off.
   * @default 60000
   */
  checkMs?: number;
  /** Told once each time the schema is found at a version newer than this code. */
  onAhead?: (state: SchemaState) => void;
  /** Told when a read fails (the database is unreachable); the next read tries again. */
  onError?: (err: Error) => void;
}

/**
 * Watches, on a running node of a cluster, whether another node (of a newer release) migrated
 * the shared schema past this node's code. The migrator notifies {@link SCHEMA_CHANNEL} when
 * its migrations commit; each notice (and a timer, as a backup) makes this node read
 * `max(version)` of `schema_migrations`, one small query. It only reports: what a node does
 * on a newer schema is the release rule's business (docs/distributed.md, Upgrades).
 */
export class PostgresSchemaWatch {
  readonly #db: PostgresDatabase;
  readonly #checkMs: number;
  readonly #onAhead: (state: SchemaState) => void;
  readonly #onError: (err: Error) => void;
  #state: SchemaState;
  #unlisten: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** The read in flight (close() waits for it), and whether another is wanted after it. */
  #run: Promise<void> | null = null;
  #again = false;
  #started = false;
  #closed = false;

  constructor(db: PostgresDatabase, options: SchemaWatchOptions = {}) {
    const versions = db.schemaVersions;
    if (versions === null) throw new Error('the schema watch needs a database opened with its migrations');
    const checkMs = options.checkMs ?? 60_000;
    if (!Number.isInteger(checkMs) || checkMs < 0) {
      throw new Error(
        `Invalid schema check interval ${checkMs}: use a whole number of milliseconds (0 turns it off).`,
      );
    }
    this.#db = db;
    this.#checkMs = checkMs;
    this.#onAhead = options.onAhead ?? (() => undefined);
    this.#onError = options.onError ?? (() => undefined);
    this.#state = stateOf(versions.code, versions.database);
  }

  /** The schema's version against this code's, as last read. */
  get state(): SchemaState {
    return this.#state;
  }

  /** Subscribes to the migrators' notices, reads the version once, and arms the timer. */
  async start(): Promise<void> {
    if (this.#started || this.#closed) return;
    this.#started = true;
    const unlisten = await this.#db.listen(SCHEMA_CHANNEL, () => void this.check(), {
      onCatchUp: () => void this.check(),
    });
    if (this.#closed) {
      unlisten();
      return;
    }
    this.#unlisten = unlisten;
    // A migration committed between this node's own and its LISTEN was announced to nobody here.
    await this.check();
    this.#arm();
  }

  /** Reads the schema's version now (one read at a time; a call meanwhile reads once more after it). */
  check(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#run !== null) {
      this.#again = true;
      return this.#run;
    }
    this.#run = (async () => {
      try {
        do {
          this.#again = false;
          await this.#read();
        } while (this.#again && !this.#closed);
      } finally {
        this.#run = null;
      }
    })();
    return this.#run;
  }

  /** Stops the timer and the subscription, and waits for a read in flight. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#unlisten?.();
    this.#unlisten = null;
    await this.#run;
  }

  async #read(): Promise<void> {
    try {
      const row = await this.#db.one<{ version: number | null }>(
        'SELECT max(version) AS version FROM schema_migrations',
      );
      if (this.#closed) return;
      const before = this.#state;
      this.#state = stateOf(before.code, row?.version ?? 0);
      if (this.#state.status === 'ahead' && this.#state.database !== before.database)
        this.#onAhead(this.#state);
    } catch (err) {
      if (!this.#closed) this.#onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #arm(): void {
    if (this.#closed || this.#checkMs === 0 || this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.check().finally(() => this.#arm());
    }, this.#checkMs);
  }
}

function stateOf(code: number, database: number): SchemaState {
  return { status: database > code ? 'ahead' : 'current', code, database };
}
