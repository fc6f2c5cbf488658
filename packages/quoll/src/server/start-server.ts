import { mkdir } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { ensureCredentials, TokenService } from '../auth/index.js';
import { BlobStore } from '../blobs/index.js';
import type { ServerConfig } from '../config/index.js';
import { ConnectionSealer, ConnectionService, createKeyring } from '../connections/index.js';
import { InferenceEngine } from '../inference/index.js';
import { InferenceLogStore } from '../logs/index.js';
import { ModelService } from '../models/index.js';
import { Packager } from '../orchestrations/index.js';
import { TaskRunner } from '../runner/index.js';
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
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  const now = (): number => Date.now();
  // Load (or create) the master key before anything else opens: a bad key file or
  // QUOLL_MASTER_KEY throws MasterKeyError here, and the CLI prints it and exits non-zero.
  const keyring = createKeyring({ home: config.home, env: process.env });
  const db = openSqliteDatabase(`${config.home}/quoll.db`);
  const store = new SqliteCoreStore(db);
  const blobs = new BlobStore(config.home);
  await blobs.init();
  const tokens = new TokenService(store, now);
  const workspaces = new WorkspaceService(store, now);
  await workspaces.ensureDefault();
  const engine = new InferenceEngine({ workersPerDeployment: config.workersPerDeployment });
  const models = new ModelService(
    store,
    blobs,
    { inspect: (bytes) => inspectOnnxModel(bytes), validate: (path) => engine.validateModel(path) },
    config.maxModelBytes,
    now,
  );
  const deployments = new DeploymentManager(engine, config.workersPerDeployment, now);
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
  const orchestrationStore = new SqliteOrchestrationStore(db);
  const packager = new Packager({ store: orchestrationStore, home: config.home });
  const runSecrets = new RunSecrets();
  // The runner learns the URL once the server listens (port 0 picks it then).
  let serverUrl = '';
  const runner = new TaskRunner({
    logsDir: `${config.home}/task-logs`,
    runsDir: `${config.home}/runs`,
    serverUrl: () => serverUrl,
    issueRunToken: async (workspaceId, runId) => {
      // A workspace-scoped token that lives as long as the run; reads of connection details
      // under its subject feed that run's redactor.
      const issued = await tokens.issueForWorkspace(workspaceId, `${TASK_RUN_SUBJECT_PREFIX}${runId}`);
      runSecrets.register(runId);
      return {
        token: issued.token,
        revoke: async () => {
          runSecrets.forget(runId);
          await tokens.revoke(issued.id);
        },
      };
    },
    redact: (line, runId) => runSecrets.redact(line, runId),
  });
  const tasks = new TaskService({
    store: new SqliteTaskStore(db),
    runner,
    resolvePackage: (id) => packager.resolvePackage(id),
  });
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

  const app = await createApp(context);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // Stop taking requests and let in-flight ones finish, then stop the loops behind them.
    await app.close();
    // After the drain no request can append: stopping writes, fsyncs and seals every queued row.
    await inferenceLogs.stop();
    // Runs end (as failure, "stopped: …") and record their outcomes before the database closes.
    await tasks.stop();
    await packager.stop();
    await deployments.stop();
    await engine.close();
    db.close();
  };
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  serverUrl = url;
  const creds = await ensureCredentials(config.home, url, tokens);
  try {
    await packager.start();
    // Recovery (lost runs closed, schedules re-armed, continuous tasks restarted) needs the URL.
    await tasks.start();
  } catch (err) {
    await close();
    throw err;
  }
  await pipelines.restoreDeployments();
  app.log.info({ url, home: config.home }, 'quoll server listening');
  return { url, adminToken: creds.token, app, context, close };
}
