export { openStore } from './open-store.js';
export type { DatabaseHealth, StoreConfig, StoreOptions, Stores } from './stores.js';
export { SchemaTooNewError } from './schema-migrations.js';
