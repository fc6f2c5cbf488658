import type { KeyCheckStore } from '../connections/index.js';
import type { StoreConfig } from './stores.js';

/** A cluster database's key check store, opened to read only (see {@link openKeyCheckStore}). */
export interface OpenedKeyCheckStore {
  readonly keyCheck: KeyCheckStore;
  close(): Promise<void>;
}

/**
 * Opens the key check store of a cluster database WITHOUT applying migrations, for a command
 * that only reads (`quoll admin rotate-key --status`): it must change nothing, not even create
 * the tables in a mistyped database or upgrade the schema the nodes' release runs on. A
 * database without the tables reads as one no node has started on.
 * @example
 * const opened = await openKeyCheckStore({ kind: 'postgres', url });
 * try { console.log(await opened.keyCheck.readKeyStatus()); } finally { await opened.close(); }
 */
export async function openKeyCheckStore(
  config: Extract<StoreConfig, { kind: 'postgres' }>,
): Promise<OpenedKeyCheckStore> {
  const { PostgresDatabase, unreachableAt } = await import('./postgres/postgres-database.js');
  const { PostgresKeyCheckStore } = await import('./postgres/postgres-key-check-store.js');
  const db = await PostgresDatabase.open({
    url: config.url,
    poolSize: 1,
    migrate: false,
    ...(config.schema === undefined ? {} : { schema: config.schema }),
  });
  try {
    // Connect now, so an unreachable database is said as at a node's start (the URL redacted).
    await db.one('SELECT 1');
  } catch (err) {
    await db.close();
    throw unreachableAt(config.url, err);
  }
  return { keyCheck: new PostgresKeyCheckStore(db), close: () => db.close() };
}
