export { openStore } from './open-store.js';
export type { DatabaseHealth, SchemaState, StoreConfig, StoreOptions, Stores } from './stores.js';
export { SchemaTooNewError, schemaAheadMessage } from './schema-migrations.js';
