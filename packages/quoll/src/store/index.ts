export { openStore } from './open-store.js';
export { openKeyCheckStore } from './open-key-check-store.js';
export type { OpenedKeyCheckStore } from './open-key-check-store.js';
export type { DatabaseHealth, SchemaState, StoreConfig, StoreOptions, Stores } from './stores.js';
export { SchemaTooNewError, schemaAheadMessage } from './schema-migrations.js';
