import type { StoreConfig, StoreOptions, Stores } from './stores.js';

/**
 * Opens the stores of an instance on the configured database, applying migrations first.
 * The driver is imported only when chosen, so an SQLite-only start never loads `pg`.
 * @example
 * const stores = await openStore({ kind: 'sqlite', path: `${home}/quoll.db` });
 * await stores.workspaces.ensureDefaultWorkspace('default', new Date().toISOString());
 * await stores.close();
 */
export async function openStore(config: StoreConfig, options: StoreOptions = {}): Promise<Stores> {
  switch (config.kind) {
    case 'sqlite': {
      const { openSqliteStores } = await import('./sqlite/sqlite-stores.js');
      return openSqliteStores(config.path, options);
    }
    case 'postgres': {
      const { openPostgresStores } = await import('./postgres/postgres-stores.js');
      return openPostgresStores(config, options);
    }
  }
}
