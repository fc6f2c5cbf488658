import type { TokenStore } from '../auth/index.js';
import type { Clock } from '../clock/index.js';
import type { NodeStore, Notifier } from '../cluster/index.js';
import type { SharedBlobStorage } from '../blobs/index.js';
import type { ConnectionStore, KeyCheckStore } from '../connections/index.js';
import type { IdGenerator } from '../ids/index.js';
import type { InferenceLogs, LogSegmentIndex } from '../logs/index.js';
import type { ModelStore } from '../models/index.js';
import type { OrchestrationStore } from '../orchestrations/index.js';
import type { PipelineStore, ReplicaStore } from '../pipelines/index.js';
import type { RunLogStore } from '../runner/index.js';
import type { TaskStore } from '../scheduler/index.js';
import type { WorkspaceStore } from '../workspaces/index.js';

/** Which database holds an instance's metadata. */
export type StoreConfig =
  /** The embedded default: one SQLite file (created with mode 0600 if missing). */
  | { kind: 'sqlite'; path: string }
  /**
   * A PostgreSQL database shared by every node of a cluster. `poolSize`: connections this
   * process keeps open (@default 10). `schema`: where the tables live, created if missing
   * (@default the connection's search path, normally `public`). `startTimeoutMs`: how long an
   * unreachable database is retried at start (@default 30000).
   */
  | {
      kind: 'postgres';
      url: string;
      poolSize?: number | undefined;
      schema?: string | undefined;
      startTimeoutMs?: number | undefined;
      /**
       * How often a running node re-reads the schema's version, besides the migrators'
       * `NOTIFY` (see {@link SchemaState}); 0 turns the periodic read off. @default 60000
       */
      schemaCheckMs?: number | undefined;
    };

/** What the stores last saw of their database. */
export interface DatabaseHealth {
  /** `unavailable` after a connection failure, until a round-trip succeeds again. */
  status: 'ok' | 'unavailable';
  /** Why it is unavailable (the driver's message), else null. */
  error: string | null;
}

/**
 * How the database's schema compares with this node's code. On a cluster another node, of a
 * newer release, may migrate the shared database while this one runs: the node then reports
 * `ahead` (`schema_ahead` on `GET /v1/health`) and keeps serving, which each release's
 * migrations allow (they stay readable and writable by the release before: see
 * `packages/quoll/migrations/README.md`); it would refuse to start again on that schema.
 */
export interface SchemaState {
  /** `ahead`: the database has migrations this code does not know (replace this node). */
  status: 'current' | 'ahead';
  /** The newest migration this code has. */
  code: number;
  /** The newest migration the database has applied, as last read. */
  database: number;
}

/** Collaborators every backend takes. */
export interface StoreOptions {
  /** Source of the times stores stamp on rows. @default systemClock */
  clock?: Clock;
  /** Ids for rows whose id the store makes (tasks, runs). @default time-ordered UUIDs */
  newId?: IdGenerator;
  /**
   * Told when an idle database connection fails (a server restart, a network drop); the
   * stores reconnect on the next call. @default ignore
   */
  onConnectionError?: (err: Error) => void;
  /**
   * Told once each time a running node finds its database's schema newer than its code
   * (another node migrated it); never for the embedded home. @default ignore
   */
  onSchemaAhead?: (state: SchemaState) => void;
}

/** Every storage port of one instance, on one database. */
export interface Stores {
  readonly dialect: StoreConfig['kind'];
  readonly workspaces: WorkspaceStore;
  readonly tokens: TokenStore;
  readonly models: ModelStore;
  readonly pipelines: PipelineStore;
  readonly connections: ConnectionStore;
  readonly logIndex: LogSegmentIndex;
  readonly orchestrations: OrchestrationStore;
  readonly tasks: TaskStore;
  /** The master-key check of the database (a node with another key refuses to start). */
  readonly keyCheck: KeyCheckStore;
  /** The nodes of the instance (one for the embedded home). */
  readonly nodes: NodeStore;
  /** Messages between nodes: PostgreSQL `LISTEN`/`NOTIFY`, or in-process for the embedded home. */
  readonly notifier: Notifier;
  /**
   * Where artefacts (model files) live for every node; null for the embedded home, whose
   * files under `<home>/blobs` are the artefacts.
   */
  readonly sharedBlobs: SharedBlobStorage | null;
  /**
   * Where the replicas of deployed pipelines are placed across the nodes; null for the
   * embedded home, whose one node serves every deployment.
   */
  readonly replicas: ReplicaStore | null;
  /**
   * Makes the task-run log store of a node of a cluster (logs in the database, followed live
   * from any node); null for the embedded home, whose run logs are files.
   */
  readonly createRunLogStore:
    | ((options: {
        maxBytesPerRun?: number;
        onError?: (err: unknown, context: string) => void;
      }) => RunLogStore)
    | null;
  /**
   * Makes the inference log of a node of a cluster (every node's rows in the database, so any
   * node answers for all of them); null for the embedded home, whose logs are segment files
   * indexed by {@link logIndex}.
   */
  readonly createInferenceLogStore:
    | ((options: {
        nodeId: string;
        maxBytesPerPipeline?: number;
        maxBytesTotal?: number;
        queueCapacityRows?: number;
      }) => InferenceLogs)
    | null;
  /** The schema's version against this code's, as last read (no round-trip). */
  schema(): SchemaState;
  /** Checks the database with one round-trip (SQLite: always `ok`). */
  health(): Promise<DatabaseHealth>;
  /** Closes the database (the SQLite handle, or the PostgreSQL pool). Safe to call twice. */
  close(): Promise<void>;
}
