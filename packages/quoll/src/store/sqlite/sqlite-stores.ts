import { closeSync, chmodSync, openSync } from 'node:fs';
import { LocalNotifier } from '../../cluster/index.js';
import type { SchemaState, StoreOptions, Stores } from '../stores.js';
import { SqliteConnectionStore } from './sqlite-connection-store.js';
import { SqliteKeyCheckStore } from './sqlite-key-check-store.js';
import { openSqliteDatabase } from './sqlite-database.js';
import { SqliteLogSegmentIndex } from './sqlite-log-segment-index.js';
import { SqliteNodeStore } from './sqlite-node-store.js';
import { SqliteModelStore } from './sqlite-model-store.js';
import { SqliteOrchestrationStore } from './sqlite-orchestration-store.js';
import { SqlitePipelineStore } from './sqlite-pipeline-store.js';
import { SqliteTaskStore } from './sqlite-task-store.js';
import { SqliteTokenStore } from './sqlite-token-store.js';
import { SqliteWorkspaceStore } from './sqlite-workspace-store.js';

/**
 * Opens (creating if needed) the SQLite database at `path`, migrated, and every store on it.
 * The file holds token hashes and sealed secrets, so it is owner-only (SQLite gives its
 * -wal/-shm files the database file's mode).
 */
export function openSqliteStores(path: string, options: StoreOptions = {}): Stores {
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
  const db = openSqliteDatabase(path);
  // One process owns an embedded home (its lock): nobody migrates it under this one.
  const version =
    (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  const schema: SchemaState = { status: 'current', code: version, database: version };
  let closed = false;
  return {
    dialect: 'sqlite',
    workspaces: new SqliteWorkspaceStore(db),
    tokens: new SqliteTokenStore(db),
    models: new SqliteModelStore(db),
    pipelines: new SqlitePipelineStore(db),
    connections: new SqliteConnectionStore(db),
    logIndex: new SqliteLogSegmentIndex(db),
    orchestrations: new SqliteOrchestrationStore(db, options),
    tasks: new SqliteTaskStore(db, options),
    keyCheck: new SqliteKeyCheckStore(db),
    nodes: new SqliteNodeStore(db, options),
    notifier: new LocalNotifier(),
    sharedBlobs: null,
    replicas: null,
    createRunLogStore: null,
    createInferenceLogStore: null,
    schema: () => schema,
    health: async () => ({ status: 'ok', error: null }),
    close: async () => {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
