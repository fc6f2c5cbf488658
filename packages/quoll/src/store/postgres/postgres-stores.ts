import type { StoreOptions, Stores } from '../stores.js';
import { PostgresBlobStorage } from './postgres-blob-storage.js';
import { PostgresConnectionStore } from './postgres-connection-store.js';
import { PostgresKeyCheckStore } from './postgres-key-check-store.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresInferenceLogStore } from './postgres-inference-log-store.js';
import { PostgresLogSegmentIndex } from './postgres-log-segment-index.js';
import { PostgresNodeStore } from './postgres-node-store.js';
import { PostgresNotifier } from './postgres-notifier.js';
import { PostgresModelStore } from './postgres-model-store.js';
import { PostgresOrchestrationStore } from './postgres-orchestration-store.js';
import { PostgresPipelineStore } from './postgres-pipeline-store.js';
import { PostgresReplicaStore } from './postgres-replica-store.js';
import { PostgresRunLogStore } from './postgres-run-log-store.js';
import { PostgresSchemaWatch } from './postgres-schema-watch.js';
import { PostgresTaskStore } from './postgres-task-store.js';
import { PostgresTokenStore } from './postgres-token-store.js';
import { PostgresWorkspaceStore } from './postgres-workspace-store.js';

/** Where a PostgreSQL store lives. */
export interface PostgresStoreConfig {
  url: string;
  /** @default 10 */
  poolSize?: number | undefined;
  /** @default the connection's (`public`) */
  schema?: string | undefined;
  /** How long to retry an unreachable database at start. @default 30000 */
  startTimeoutMs?: number | undefined;
  /** How often a running node re-reads the schema's version besides the NOTIFY; 0: never. @default 60000 */
  schemaCheckMs?: number | undefined;
}

/** Connects to PostgreSQL, migrates (under an advisory lock) and opens every store on the pool. */
export async function openPostgresStores(
  config: PostgresStoreConfig,
  options: StoreOptions = {},
): Promise<Stores> {
  const db = await PostgresDatabase.open({
    url: config.url,
    ...(config.poolSize === undefined ? {} : { poolSize: config.poolSize }),
    ...(config.schema === undefined ? {} : { schema: config.schema }),
    ...(config.startTimeoutMs === undefined ? {} : { startTimeoutMs: config.startTimeoutMs }),
    ...(options.onConnectionError === undefined ? {} : { onConnectionError: options.onConnectionError }),
  });
  // Another node of a newer release may migrate the schema while this one runs: it is told.
  // Built inside the try: its constructor refuses a bad schemaCheckMs, and the pool (migrated,
  // one connection open) must not outlive a refused start.
  let schemaWatch: PostgresSchemaWatch;
  try {
    schemaWatch = new PostgresSchemaWatch(db, {
      ...(config.schemaCheckMs === undefined ? {} : { checkMs: config.schemaCheckMs }),
      ...(options.onSchemaAhead === undefined ? {} : { onAhead: options.onSchemaAhead }),
      ...(options.onConnectionError === undefined ? {} : { onError: options.onConnectionError }),
    });
    await schemaWatch.start();
  } catch (err) {
    await db.close();
    throw err;
  }
  return {
    dialect: 'postgres',
    workspaces: new PostgresWorkspaceStore(db),
    tokens: new PostgresTokenStore(db),
    models: new PostgresModelStore(db),
    pipelines: new PostgresPipelineStore(db),
    connections: new PostgresConnectionStore(db),
    logIndex: new PostgresLogSegmentIndex(db),
    orchestrations: new PostgresOrchestrationStore(db),
    tasks: new PostgresTaskStore(db, options),
    keyCheck: new PostgresKeyCheckStore(db),
    nodes: new PostgresNodeStore(db),
    notifier: new PostgresNotifier(db),
    sharedBlobs: new PostgresBlobStorage(db),
    replicas: new PostgresReplicaStore(db),
    createRunLogStore: (runLogOptions) => new PostgresRunLogStore(db, runLogOptions),
    createInferenceLogStore: (logOptions) => new PostgresInferenceLogStore(db, logOptions),
    schema: () => schemaWatch.state,
    health: () => db.ping(),
    close: async () => {
      await schemaWatch.close();
      await db.close();
    },
  };
}
