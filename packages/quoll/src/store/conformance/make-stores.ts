import type { StoreOptions, Stores } from '../stores.js';

/**
 * Opens a fresh, empty, migrated set of stores on the backend under test; every call gives
 * a database (or schema) of its own. Suites close what they open.
 */
export type MakeStores = (options?: StoreOptions) => Promise<Stores>;

/**
 * Opens a second set of stores on the same database as `stores` — another process or node,
 * with its own connection(s). Used by the concurrency suite.
 */
export type OpenPeer = (stores: Stores, options?: StoreOptions) => Promise<Stores>;
