import { chmod, mkdir, writeFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { ensureCredentials, TokenService } from '../auth/index.js';
import { BlobStore } from '../blobs/index.js';
import type { ServerConfig } from '../config/index.js';
import { ConnectionSealer, ConnectionService, createKeyring } from '../connections/index.js';
import { InferenceEngine } from '../inference/index.js';
import { InferenceLogStore } from '../logs/index.js';
import { ModelService } from '../models/index.js';
import { EnvCache, Packager } from '../orchestrations/index.js';
import { resolveTaskUser, restrictHomeForTaskUser, TaskRunner } from '../runner/index.js';
import { TaskService } from '../scheduler/index.js';
import { inspectOnnxModel } from '../onnx/index.js';
import { DeploymentManager, PipelineService } from '../pipelines/index.js';
import {
  openSqliteDatabase,
  SqliteConnectionStore,
  SqliteCoreStore,
  SqliteLogSegmentIndex,
  SqliteOrchestrationStore,
  SqliteTaskStore,
} from '../store/index.js';
import { WorkspaceService } from '../workspaces/index.js';
import { ApiError } from './api-error.js';
import { createApp } from './create-app.js';
import { RunSecrets, TASK_RUN_SUBJECT_PREFIX } from './run-secrets.js';
import type { ServerContext } from './server-context.js';

/** A started server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8470`. */
  readonly url: string;
  readonly adminToken: string;
  readonly app: FastifyInstance;
  readonly context: ServerContext;
  /** Drains in-flight requests, then stops every loop and closes the database. */
  close(): Promise<void>;
}

/**
 * The composition root: opens the home, builds every service and starts listening.
 * @example
 *   const server = await startServer(resolveServerConfig({ home: './.quoll', port: 0 }, process.env, process.cwd()));
 *   console.log(server.url);
 *   await server.close();
 */
export async function startServer(config: ServerConfig): Promise<RunningServer> {
  // Everything start() opens registers its closer here: if a later step fails, what is open
  // is closed, newest first, and the error propagates.
  const closers: Closer[] = [];
  try {
    return await start(config, closers);
  } catch (err) {
    // The start error is the one to report; a failure while cleaning up must not mask it.
    await closeAll(closers).catch(() => undefined);
    throw err;
  }
}

/** One step of shutting down what {@link startServer} opened. */
type Closer = () => Promise<void> | void;

/** Runs (and removes) the closers newest first; each runs even if another throws, the first error is rethrown. */
async function closeAll(closers: Closer[]): Promise<void> {
  const errors: unknown[] = [];
  for (let closer = closers.pop(); closer !== undefined; closer = closers.pop()) {
    try {
      await closer();
    } catch (err) {
      errors.push(err);
    }
  }
  const [first] = errors;
  if (first instanceof Error) throw first;
  if (errors.length > 0) throw new Error(`closing the server failed: ${String(first)}`);
}

/** The body of {@link startServer}: opens the home and builds every service, registering how to close each. */
async function start(config: ServerConfig, closers: Closer[]): Promise<RunningServer> {
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  const now = (): number => Date.now();
  // Load (or create) the master key before anything else opens: a bad key file or
  // QUOLL_MASTER_KEY throws MasterKeyError here, and the CLI prints it and exits non-zero.
  const keyring = createKeyring({ home: config.home, env: process.env });
  // Resolved first: a bad QUOLL_TASK_USER stops the start before anything is opened.
  const taskUser = config.taskUser === null ? null : resolveTaskUser(config.taskUser);
  // The database holds token hashes and sealed secrets: owner-only (SQLite gives its
  // -wal/-shm files the database file's mode).
  await writeFile(`${config.home}/quoll.db`, '', { flag: 'a', mode: 0o600 });
  await chmod(`${config.home}/quoll.db`, 0o600);
  const db = openSqliteDatabase(`${config.home}/quoll.db`);
  closers.push(() => {
    db.close();
  });
  const store = new SqliteCoreStore(db);
  const blobs = new BlobStore(config.home);
  await blobs.init();
  const tokens = new TokenService(store, now);
  const workspaces = new WorkspaceService(store, now);
  await workspaces.ensureDefault();
  const engine = new InferenceEngine({ workersPerDeployment: config.workersPerDeployment });
  closers.push(() => engine.close());
  const models = new ModelService(
    store,
    blobs,
    { inspect: (bytes) => inspectOnnxModel(bytes), validate: (path) => engine.validateModel(path) },
    config.maxModelBytes,
    now,
  );
  const deployments = new DeploymentManager(engine, config.workersPerDeployment, now);
  closers.push(() => deployments.stop());
  const pipelines = new PipelineService(store, models, deployments, now);
  const connectionStore = new SqliteConnectionStore(db);
  const connections = new ConnectionService({
    store: connectionStore,
    sealer: new ConnectionSealer(keyring),
  });
  // Opening repairs what a crash left (torn segment tails) before the first request.
  const inferenceLogs = await InferenceLogStore.open({
    dir: `${config.home}/inference-logs`,
    index: new SqliteLogSegmentIndex(db),
    maxBytesPerPipeline: config.logMaxBytesPerPipeline,
    maxBytesTotal: config.logMaxBytesTotal,
    segmentMaxBytes: config.logSegmentMaxBytes,
  });
  // After the HTTP drain (closers run newest first) no request can append: stopping writes,
  // fsyncs and seals every queued row.
  closers.push(() => inferenceLogs.stop());
  const orchestrationStore = new SqliteOrchestrationStore(db);
  const packager = new Packager({
    store: orchestrationStore,
    home: config.home,
    envCache: new EnvCache({
      envsDir: `${config.home}/envs`,
      allowInstallScripts: !config.npmIgnoreScripts,
    }),
  });
  closers.push(() => packager.stop());
  const runSecrets = new RunSecrets();
  // The runner learns the URL once the server listens (port 0 picks it then).
  let serverUrl = '';
  const runner = new TaskRunner({
    logsDir: `${config.home}/task-logs`,
    // Outside the home: run code must not reach credentials, key or database by `../..`.
    runsDir: config.runsDir,
    concurrency: config.taskConcurrency,
    warmProcesses: config.taskWarmProcesses,
    taskUser,
    serverUrl: () => serverUrl,
    issueRunToken: async (workspaceId, runId, ttlMs) => {
      // A workspace-scoped token that expires shortly after the run's timeout (so a crash
      // cannot leave it valid forever) and is revoked when the run ends; reads of
      // connection details under its subject feed that run's redactor.
      const issued = await tokens.issueForWorkspace(workspaceId, `${TASK_RUN_SUBJECT_PREFIX}${runId}`, ttlMs);
      runSecrets.register(runId);
      return {
        token: issued.token,
        revoke: async () => {
          runSecrets.forget(runId);
          await tokens.revoke(issued.id);
        },
        renew: (ttl) => store.setTokenExpiry(issued.id, new Date(now() + ttl).toISOString()),
      };
    },
    redact: (line, runId) => runSecrets.redact(line, runId),
  });
  const tasks = new TaskService({
    store: new SqliteTaskStore(db),
    runner,
    resolvePackage: (id) => packager.resolvePackage(id),
    // Tokens of runs a crashed server left behind: revoked at start.
    revokeStaleRunTokens: async (live) => {
      await store.revokeTokensBySubjectPrefix(
        TASK_RUN_SUBJECT_PREFIX,
        new Date(now()).toISOString(),
        live.map((id) => `${TASK_RUN_SUBJECT_PREFIX}${id}`),
      );
    },
  });
  // Runs end (as failure, "stopped: …") and record their outcomes before the database closes.
  closers.push(() => tasks.stop());
  const context: ServerContext = {
    config,
    now,
    tokens,
    workspaces,
    models,
    pipelines,
    deployments,
    connections,
    connectionStore,
    inferenceLogs,
    blobs,
    packager,
    orchestrationStore,
    tasks,
    runSecrets,
  };

  // Deployments are registered before the port opens, so a request for a restored pipeline
  // hears "not ready" (Starting) rather than "not deployed"; their models load in the background.
  await pipelines.restoreDeployments();
  await packager.start();
  // Every home folder exists now: narrow the home before a run as another user starts.
  if (taskUser !== null) await restrictHomeForTaskUser(config.home);

  // Task recovery restarts runs, and runs need the server URL (port 0 picks it at listen), so
  // the tasks start after listen; requests that arrive meanwhile wait at this gate.
  let opened!: () => void;
  let refused!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    opened = resolve;
    refused = reject;
  });
  const app = await createApp(context, [], { ready });
  closers.push(async () => {
    refused(new ApiError('shutting_down', 'The server is stopping and takes no new work.'));
    // Stop taking requests and let in-flight ones finish, then stop the loops behind them.
    await app.close();
  });
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => (closed ??= closeAll(closers));

  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  serverUrl = url;
  const creds = await ensureCredentials(config.home, url, tokens);
  // Recovery (lost runs closed, schedules re-armed, continuous tasks restarted) needs the URL.
  await tasks.start();
  opened();
  app.log.info({ url, home: config.home }, 'quoll server listening');
  return { url, adminToken: creds.token, app, context, close };
}
