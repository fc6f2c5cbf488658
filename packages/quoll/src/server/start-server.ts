import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ensureCredentials, SessionService, TASK_RUN_SUBJECT_PREFIX, TokenService } from '../auth/index.js';
import { BlobStore } from '../blobs/index.js';
import type { ServerConfig } from '../config/index.js';
import {
  ConnectionSealer,
  ConnectionService,
  createKeyring,
  ReturnKeyCheck,
  verifyMasterKey,
} from '../connections/index.js';
import type { MasterKeyError } from '../connections/index.js';
import { DecodePool, InferenceEngine } from '../inference/index.js';
import type { InlineAdmission } from '../inference/index.js';
import { InferenceService, ReplicaDirectory } from '../serving/index.js';
import { BodyBudget, inferenceBodyCost } from './body-budget.js';
import { InferenceLogStore, type InferenceLogs } from '../logs/index.js';
import { ModelService } from '../models/index.js';
import { EnvCache, Packager, PythonEnvCache, resolveClientPackageDir } from '../orchestrations/index.js';
import {
  FileRunLogStore,
  type RunLogStore,
  NodeRuntime,
  ProcessLedger,
  PythonInterpreter,
  PythonRuntime,
  resolveTaskUser,
  restrictHomeForTaskUser,
  setUpSandbox,
  startApiForwarder,
  TaskRunner,
} from '../runner/index.js';
import { TaskService } from '../scheduler/index.js';
import { inspectOnnxModel } from '../onnx/index.js';
import { DeploymentManager, DeploymentReconciler, PipelineService } from '../pipelines/index.js';
import { ClusterMembership, resolveNodeId, type NodeRole } from '../cluster/index.js';
import { openStore, schemaAheadMessage } from '../store/index.js';
import { locatePythonSdk } from '../python-sdk/index.js';
import { WorkspaceService } from '../workspaces/index.js';
import { ApiError } from '../errors/index.js';
import { MetricsWindow, ServerMetrics } from '../metrics/index.js';
import { createApp } from './create-app.js';
import { HomeLock } from './home-lock.js';
import { RunSecrets } from './run-secrets.js';
import type { RunIsolation, ServerContext } from './server-context.js';
import { ShutdownSteps } from './shutdown-steps.js';

/** A started server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8470`. */
  readonly url: string;
  readonly adminToken: string;
  readonly app: FastifyInstance;
  readonly context: ServerContext;
  /** How task runs are isolated (also on `/v1/health`). */
  readonly runIsolation: RunIsolation;
  /** Drains in-flight requests, then stops every loop and closes the database. */
  close(): Promise<void>;
  /** During {@link close}: the step it is waiting for now (as its `still stopping` lines name it); else null. */
  stoppingStep(): string | null;
  /**
   * Settles when the server stops on its own, with why: a node of a cluster marked lost (it
   * stalled past the lease) is checked against the live nodes' keys again when it is back, and
   * stops when it is refused (`master_key_mismatch`, `master_key_retired`), as it would be at a
   * start. {@link close} is under way then; never settles otherwise.
   */
  readonly failed: Promise<MasterKeyError>;
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
  const closers = new ShutdownSteps();
  try {
    return await start(config, closers);
  } catch (err) {
    // The start error is the one to report; a failure while cleaning up must not mask it.
    await closers.closeAll().catch(() => undefined);
    throw err;
  }
}

/** The body of {@link startServer}: opens the home and builds every service, registering how to close each. */
async function start(config: ServerConfig, closers: ShutdownSteps): Promise<RunningServer> {
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  // One server per home, taken before anything in it is read or written: a second server
  // stops here (HomeLockedError names the running one), so it never rewrites credentials.json.
  const homeLock = await HomeLock.acquire(config.home);
  // Registered first, so it is let go last, after everything else has closed.
  closers.push({ what: 'home lock', close: () => homeLock.release() });
  // What a previous server on this home left running (it was killed: its runs' and installs'
  // process groups and sandboxes are still in the ledger) is stopped before any work is
  // re-queued, so an old npm install never runs beside a new one of the same environment.
  const processLedger = new ProcessLedger(join(config.home, 'processes'));
  const leftovers = await processLedger.stopLeftovers();
  const now = (): number => Date.now();
  // Load (or create) the master key before anything else opens: a bad key file or
  // QUOLL_MASTER_KEY throws MasterKeyError here, and the CLI prints it and exits non-zero.
  const keyring = createKeyring({ home: config.home, env: process.env });
  // Resolved first: a bad QUOLL_TASK_USER stops the start before anything is opened.
  const configuredTaskUser = config.taskUser === null ? null : resolveTaskUser(config.taskUser);
  // The port is known once the server listens; sandboxes read it when a run starts.
  let listenPort = config.port;
  const sandbox = await setUpSandbox({
    mode: config.sandbox,
    network: config.taskNetwork,
    taskUser: configuredTaskUser,
    limits: config.taskLimits,
    scratchDir: join(config.runsDir, '.quoll'),
    apiPort: () => listenPort,
    tmpBytes: config.taskTmpBytes,
    recorder: processLedger,
  });
  // A root server's sandboxes drop to a task user even when none is configured (nobody).
  const taskUser = sandbox.taskUser;
  const runIsolation: RunIsolation = {
    ...sandbox.status,
    unsandboxedRuns: sandbox.status.sandboxed || config.allowUnsandboxedRuns ? 'allowed' : 'admin-only',
  };
  const nodeId = await resolveNodeId(config.home, config.nodeId);
  // Until the app (and its logger) exists, connection errors of idle pool clients go to stderr.
  let reportConnectionError = (err: Error): void => {
    process.stderr.write(
      `quoll: database connection error (reconnecting on the next call): ${err.message}\n`,
    );
  };
  // Background loops report here: stderr until the app (and its logger) exists.
  let reportLoopError = (err: unknown, context: string): void => {
    process.stderr.write(`quoll: ${context} failed: ${err instanceof Error ? err.message : String(err)}\n`);
  };
  // Background troubles that ended (a refused cron boundary taken later): stderr until the app exists.
  let reportRecovered = (message: string): void => {
    process.stderr.write(`quoll: ${message}\n`);
  };
  // A node of a newer release migrated the shared schema past this node's code: said once per
  // version, on stderr until the app (and its logger) exists.
  let reportSchemaAhead = (message: string): void => {
    process.stderr.write(`quoll: ${message}\n`);
  };
  const stores = await openStore(config.database, {
    onConnectionError: (err) => reportConnectionError(err),
    onSchemaAhead: (state) => reportSchemaAhead(schemaAheadMessage(state)),
  });
  closers.push({ what: 'database connections', close: () => stores.close() });
  // The node id is this process's before anything acts under it (packaging jobs requeued, own
  // runs closed as lost): another live process holding it (a copied --home, the same
  // QUOLL_NODE_ID twice) stops this start with node_id_in_use. Registered with its roles, and
  // QUOLL_NODE_URL (or none) until it listens; heartbeats from now; nodes that stop sending theirs are
  // marked lost by whoever notices first.
  const roles: NodeRole[] = ['api'];
  if (config.runsTasks) roles.push('tasks');
  if (config.servesInference) roles.push('inference');
  const toStderr = (obj: object, msg: string): void => {
    const err = (obj as { err?: unknown }).err;
    process.stderr.write(`quoll: ${msg}${err instanceof Error ? `: ${err.message}` : ''}\n`);
  };
  let membershipLog: { warn: typeof toStderr; error: typeof toStderr } = { warn: toStderr, error: toStderr };
  // A node marked lost (it stalled past the lease) and registered again was checked against the
  // nodes live at its start only: nodes started meanwhile (a key rotation's rollout, say) were not
  // checked against it. So it is checked again, as at a start; refused, it stops on its own
  // (`failed` of RunningServer): it must not seal what live nodes cannot read, nor serve rows it
  // cannot read. A check that could not run (the database away) is tried again each heartbeat.
  const keyRecheck = new ReturnKeyCheck({
    check: () => verifyMasterKey(keyring, stores.keyCheck, new Date(now()).toISOString(), { nodeId }),
    retryMs: Math.max(100, Math.floor(config.leaseMs / 5)),
    // Another process that took this node's id over (it stalled again) keeps its own key report.
    holdsId: () => membership.holdsId,
    onRetry: (err) =>
      membershipLog.warn(
        { err },
        "could not check this node's keys again after it was marked lost; retrying",
      ),
    onRefused: (err) => refuseOnReturn(err),
    // A heartbeat at once: the report just written is then no newer than the row's last sight,
    // so a node that stalls again right away is not counted as one still starting (live).
    onAdmitted: () => void membership.beatNow(),
  });
  // Set by a refusal before the start has ended (the start then throws it).
  const refusedOnReturn: { error: MasterKeyError | null } = { error: null };
  let failWith: (err: MasterKeyError) => void = () => undefined;
  const failed = new Promise<MasterKeyError>((resolve) => {
    failWith = resolve;
  });
  // Refused before the start has ended: the start throws it at its next step (see
  // throwIfRefused), before it listens, takes runs or opens the gate to requests.
  let stopRefused = (err: MasterKeyError): void => {
    refusedOnReturn.error ??= err;
  };
  const throwIfRefused = (): void => {
    if (refusedOnReturn.error !== null) throw refusedOnReturn.error;
  };
  const refuseOnReturn = (err: MasterKeyError): void => {
    membershipLog.error(
      { err, code: err.code },
      `this node was marked lost and is refused on its return (${err.code}); stopping`,
    );
    stopRefused(err);
  };
  const membership = new ClusterMembership({
    store: stores.nodes,
    notifier: stores.notifier,
    node: { id: nodeId, url: config.nodeUrl ?? '', roles },
    heartbeatMs: Math.max(100, Math.floor(config.leaseMs / 5)),
    lostAfterMs: config.leaseMs,
    // An embedded home is held by one process already (its lock): nothing to wait for there.
    checkDuplicateId: stores.dialect === 'postgres',
    onNodesLost: (ids) => membershipLog.warn({ nodes: ids }, 'nodes stopped sending heartbeats: marked lost'),
    onSelfLost: () => {
      membershipLog.warn(
        { nodeId },
        'this node was marked lost (it missed its heartbeats); registered again',
      );
      // An embedded home is one node: nothing to check it against.
      if (stores.dialect === 'postgres') keyRecheck.run();
    },
    onError: (err) => membershipLog.warn({ err }, 'cluster heartbeat failed; retrying'),
  });
  await membership.start();
  closers.push({ what: 'cluster membership', close: () => membership.stop() });
  // Stopped before the membership (closers run newest first): a check that records this node's
  // report after it was marked stopped would make it count as a starting node, live for good, to
  // rotate-key and to every later node's key check.
  closers.push({ what: 'key check of a returning node', close: () => keyRecheck.stop() });
  // Every node of a cluster must hold the key the shared connections are sealed with: one with
  // another key, or a key a rotation retired, stops here (MasterKeyError with its catalogue
  // code, printed by the CLI) instead of failing on each read; the membership closer then marks
  // it stopped. It has sealed nothing and serves nothing yet. The key it seals with, and those it
  // holds, are recorded under its node id, so only once the id is this process's: a process
  // refused node_id_in_use above never overwrites the live holder's record.
  // `quoll admin rotate-key` waits until every live node seals with the new key.
  if (stores.dialect === 'postgres')
    await verifyMasterKey(keyring, stores.keyCheck, new Date(now()).toISOString(), { nodeId });
  // On a node of a cluster, model files live in the database and <home>/blobs caches them.
  const blobs = new BlobStore(config.home, stores.sharedBlobs);
  await blobs.init();
  const tokens = new TokenService(stores.tokens, now);
  const sessions = new SessionService(stores.tokens, tokens, now);
  const workspaces = new WorkspaceService(stores.workspaces, now);
  await workspaces.ensureDefault();
  // The metrics read the services built below at each scrape (never before the server listens).
  let deploymentsForMetrics: DeploymentManager | null = null;
  let logsForMetrics: InferenceLogs | null = null;
  const metrics = new ServerMetrics({
    queueDepths: () => deploymentsForMetrics?.queueDepths() ?? [],
    logQueuedRows: () => logsForMetrics?.queuedRows ?? 0,
    logBytes: () => logsForMetrics?.storedBytes() ?? Promise.resolve(0),
    logState: () => logsForMetrics?.state ?? 'stopped',
    logQuarantinedBatches: () => logsForMetrics?.quarantinedBatches ?? 0,
  });
  const metricsWindow = new MetricsWindow(metrics);
  // Whether each deployment runs inline, and why: to the log once the app exists (nothing before).
  let reportInline: (deployment: string, admission: InlineAdmission) => void = () => undefined;
  const engine = new InferenceEngine({
    workersPerDeployment: config.workersPerDeployment,
    poolWorkers: config.poolWorkers,
    modelMemoryBytes: config.modelMemoryBytes,
    syncHandoff: config.syncHandoff,
    inlineRuns: config.inlineRuns,
    inlineWhenContended: config.inlineWhenContended,
    onInlineDecided: (deployment, admission) => reportInline(deployment, admission),
    ...(config.metrics ? { onBatch: (rows: number) => metrics.batch(rows) } : {}),
  });
  closers.push({ what: 'model workers', close: () => engine.close() });
  const decoder = new DecodePool({ deadlineMs: config.decodeDeadlineMs });
  closers.push({ what: 'decode pool', close: () => decoder.close() });
  const bodyBudget = new BodyBudget(config.maxInflightBodyBytes, inferenceBodyCost);
  const models = new ModelService(
    stores.models,
    blobs,
    { inspect: (bytes) => inspectOnnxModel(bytes), validate: (path) => engine.validateModel(path) },
    config.maxModelBytes,
    now,
  );
  const deployments = new DeploymentManager(engine, config.workersPerDeployment, now);
  closers.push({ what: 'deployments', close: () => deployments.stop() });
  deploymentsForMetrics = deployments;
  const pipelines = new PipelineService(
    stores.pipelines,
    models,
    deployments,
    now,
    undefined,
    // An embedded server is one node: one replica. A cluster places `replicas` of them (all
    // inference nodes by default) on its nodes.
    stores.replicas === null ? 1 : null,
    stores.notifier,
    { nodeId, store: stores.replicas, servesInference: config.servesInference },
  );
  // On a cluster, requests for a pipeline this node holds no replica of are forwarded.
  const replicaDirectory =
    stores.replicas === null
      ? null
      : new ReplicaDirectory({ store: stores.replicas, notifier: stores.notifier, nodeId });
  if (replicaDirectory !== null) {
    await replicaDirectory.start();
    closers.push({ what: 'replica directory', close: () => replicaDirectory.stop() });
  }
  const connectionStore = stores.connections;
  const connections = new ConnectionService({
    store: connectionStore,
    sealer: new ConnectionSealer(keyring),
  });
  // On a node of a cluster inference logs live in the database, so any node answers for all
  // of them; an embedded home's are segment files, repaired at open (torn segment tails)
  // before the first request.
  const inferenceLogs: InferenceLogs =
    stores.createInferenceLogStore !== null
      ? stores.createInferenceLogStore({
          nodeId,
          maxBytesPerPipeline: config.logMaxBytesPerPipeline,
          maxBytesTotal: config.logMaxBytesTotal,
        })
      : await InferenceLogStore.open({
          dir: `${config.home}/inference-logs`,
          index: stores.logIndex,
          maxBytesPerPipeline: config.logMaxBytesPerPipeline,
          maxBytesTotal: config.logMaxBytesTotal,
          segmentMaxBytes: config.logSegmentMaxBytes,
        });
  // After the HTTP drain (closers run newest first) no request can append: stopping writes,
  // fsyncs and seals every queued row.
  closers.push({ what: 'inference log writer', close: () => inferenceLogs.stop() });
  logsForMetrics = inferenceLogs;
  const orchestrationStore = stores.orchestrations;
  const installLimits = { ...config.taskLimits, diskBytes: config.installDiskBytes };
  const packager = new Packager({
    store: orchestrationStore,
    owner: nodeId,
    // On a cluster the zips live in the database too: any node can build a package it runs.
    shared: stores.sharedBlobs,
    home: config.home,
    envCache: new EnvCache({
      envsDir: `${config.home}/envs`,
      scripts: config.npmScripts,
      // Installs run in the runs' sandbox (as its user), with the runs' limits but a disk
      // limit of their own (dependencies are larger than what a run writes).
      launcher: sandbox.launcher,
      user: sandbox.status.sandboxed ? taskUser : null,
      limits: installLimits,
    }),
    // Python environments: made and filled the same way (the runs' sandbox, its user and limits).
    pythonEnvs: new PythonEnvCache({
      envsDir: `${config.home}/envs`,
      python: new PythonInterpreter(config.python),
      launcher: sandbox.launcher,
      user: sandbox.status.sandboxed ? taskUser : null,
      limits: installLimits,
    }),
  });
  closers.push({ what: 'packager', close: () => packager.stop() });
  const pythonSdk = locatePythonSdk();
  const runSecrets = new RunSecrets();
  // The runner learns the URL once the server listens (port 0 picks it then).
  let serverUrl = '';
  // On a node of a cluster run logs live in the database, so any node reads and follows them.
  let runLogs: RunLogStore;
  if (stores.createRunLogStore !== null) {
    runLogs = stores.createRunLogStore({ maxBytesPerRun: config.runLogMaxBytes });
  } else {
    const files = new FileRunLogStore({
      dir: `${config.home}/task-logs`,
      maxBytesPerRun: config.runLogMaxBytes,
      maxBytesTotal: config.runLogMaxBytesTotal,
    });
    // Learns the sizes of the logs on disk and applies the total cap before runs add to them.
    await files.open();
    runLogs = files;
  }
  const runner = new TaskRunner({
    logsDir: `${config.home}/task-logs`,
    logs: runLogs,
    // Outside the home: run code must not reach credentials, key or database by `../..`.
    runsDir: config.runsDir,
    concurrency: config.taskConcurrency,
    workspaceConcurrency: config.taskWorkspaceConcurrency,
    warmProcesses: config.taskWarmProcesses,
    taskUser,
    launcher: sandbox.launcher,
    runtimes: [
      new NodeRuntime({ sdkDir: resolveClientPackageDir() }),
      new PythonRuntime({ sdkLibDir: pythonSdk?.libDir ?? null }),
    ],
    limits: config.taskLimits,
    serverUrl: () => serverUrl,
    issueRunToken: async (workspaceId, runId, ttlMs, runsAs) => {
      // A token with the rights of the task's creator (admin, or bounded to the task's
      // workspace) that expires shortly after the run's timeout (so a crash cannot leave it
      // valid forever) and is revoked when the run ends; the token itself and reads of
      // connection details under its subject feed that run's redactor.
      const subject = `${TASK_RUN_SUBJECT_PREFIX}${runId}`;
      const issued =
        runsAs === 'admin'
          ? await tokens.issueAdmin(subject, ttlMs)
          : await tokens.issueForWorkspace(workspaceId, subject, ttlMs);
      // The run's output never shows its own token (whoever reads the run's log could use it).
      runSecrets.register(runId, [issued.token]);
      return {
        token: issued.token,
        revoke: async () => {
          runSecrets.forget(runId);
          await tokens.revoke(issued.id);
        },
        renew: (ttl) => stores.tokens.setTokenExpiry(issued.id, new Date(now() + ttl).toISOString()),
      };
    },
    redact: (line, runId) => runSecrets.redact(line, runId),
  });
  const tasks = new TaskService({
    store: stores.tasks,
    runner,
    resolvePackage: (id) => packager.resolvePackage(id),
    checkPackage: async (id) => {
      await packager.checkReady(id);
    },
    unsandboxedRuns: runIsolation.unsandboxedRuns,
    // The server's limits: each run's defaults, and the ceilings of a task's own.
    limits: config.taskLimits,
    // A task's own memory limit below what Node needs to start is refused at creation.
    memoryFloorBytes: config.taskMemoryFloorBytes,
    ...(config.metrics ? { observer: metrics } : {}),
    // On a cluster: runs are this node's (leased), kills and new tasks reach every node.
    nodeId,
    leaseMs: config.leaseMs,
    runsTasks: config.runsTasks,
    notifier: stores.notifier,
    handOverOnStop: stores.dialect === 'postgres',
    // A tick's runs go to whichever nodes have free slots (one node keeps them in its queue).
    shareTickRuns: stores.dialect === 'postgres',
    // A peer may be up to a lease late with a tick before this node calls it missed.
    peerTickGraceMs: stores.dialect === 'postgres' ? config.leaseMs : 0,
    onError: (err, context) => reportLoopError(err, context),
    onRecovered: (message) => reportRecovered(message),
    // Tokens of runs a crashed server (or node) left behind: revoked at start and after lost
    // runs are closed, in one statement that checks the runs (tokens and runs share the database).
    revokeStaleRunTokens: async () => {
      await stores.tokens.revokeEndedRunTokens(TASK_RUN_SUBJECT_PREFIX, new Date(now()).toISOString());
    },
  });
  // Runs end (as failure, "stopped: …") and record their outcomes before the database closes.
  closers.push({ what: 'task runs and schedules', close: () => tasks.stop() });
  const inference = new InferenceService({
    deployments,
    pipelines,
    workspaces,
    logs: inferenceLogs,
    ...(config.metrics ? { metrics } : {}),
    logging: config.inferenceLogs,
    now,
    ...(replicaDirectory === null ? {} : { replicas: replicaDirectory }),
  });
  const context: ServerContext = {
    config,
    nodeId,
    nodes: stores.nodes,
    replicaDirectory,
    databaseHealth: () => stores.health(),
    schemaState: () => stores.schema(),
    now,
    tokens,
    sessions,
    workspaces,
    models,
    pipelines,
    deployments,
    inference,
    connections,
    connectionStore,
    inferenceLogs,
    blobs,
    packager,
    orchestrationStore,
    tasks,
    runSecrets,
    pythonSdk,
    runIsolation,
    metrics,
    metricsWindow,
    decoder,
    bodyBudget,
  };
  if (config.metrics) {
    metricsWindow.start();
    closers.push({ what: 'metrics window', close: () => metricsWindow.stop() });
    closers.push({ what: 'event-loop lag timer', close: () => metrics.close() });
  }

  await packager.start();
  // Every home folder exists now: narrow the home before a run as a configured user starts
  // (a sandbox shows runs none of the home anyway).
  if (configuredTaskUser !== null) await restrictHomeForTaskUser(config.home);

  // Task recovery restarts runs, and runs need the server URL (port 0 picks it at listen), so
  // the tasks start after listen; requests that arrive meanwhile wait at this gate.
  let opened!: () => void;
  let refused!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    opened = resolve;
    refused = reject;
  });
  const app = await createApp(context, [], { ready });
  reportLoopError = (err, context) => app.log.warn({ err }, `${context} failed; retrying`);
  reportRecovered = (message) => app.log.info(message);
  reportInline = (deployment, admission) => {
    const fields = { deployment, inline: admission.state, reason: admission.reason };
    // A trip means runs held the HTTP thread past the cut-off: a warning, not a verdict.
    if (admission.state === 'tripped')
      app.log.warn(fields, `inline runs tripped for deployment ${deployment}: ${admission.reason}`);
    else
      app.log.info(
        fields,
        `inline runs ${admission.state === 'on' ? 'on' : 'off'} for deployment ${deployment}: ${admission.reason}`,
      );
  };
  closers.report = (what, waitedMs) =>
    app.log.warn({ step: what, waitedMs }, `still stopping: waiting for ${what}`);
  reportConnectionError = (err) => {
    app.log.warn({ err }, 'database connection error; reconnecting on the next call');
  };
  reportSchemaAhead = (message) => app.log.warn({ code: 'schema_ahead' }, message);
  closers.push({
    what: 'HTTP requests in flight',
    close: async () => {
      refused(new ApiError('shutting_down', 'The server is stopping and takes no new work.'));
      // Stop taking requests and let in-flight ones finish, then stop the loops behind them.
      await app.close();
    },
  });
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => (closed ??= closers.closeAll());

  throwIfRefused();
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  listenPort = port;
  // A run with a network of its own reaches the API on its loopback, at the same port.
  serverUrl = config.taskNetwork === 'server-only' ? `http://127.0.0.1:${port}` : url;
  if (sandbox.apiSocket !== null) {
    const forwarder = await startApiForwarder(sandbox.apiSocket, () => ({
      host: loopbackFor(config.host),
      port,
    }));
    closers.push({ what: 'run API forwarder', close: () => forwarder.close() });
  }
  await homeLock.announce(url);
  const creds = await ensureCredentials(config.home, url, tokens);
  // This node's URL is known now (it held its id, with its roles, since the start).
  // The URL other nodes forward requests to (QUOLL_NODE_URL when the listen address is not one).
  await membership.update({ url: config.nodeUrl ?? url, roles });
  membershipLog = app.log;
  // Deployments are registered before requests pass the gate, so a request for a restored
  // pipeline hears "not ready" (Starting) rather than "not deployed"; their models load in the
  // background. After the node is registered: on a cluster, replicas are placed on nodes that
  // are up, and a restarted node keeps its own.
  await pipelines.restoreDeployments();
  // A deploy or undeploy through any node, or a node joining or lost, reaches this one (a
  // message, and a timer).
  const reconciler = new DeploymentReconciler({
    pipelines,
    notifier: stores.notifier,
    onError: (err) => reportLoopError(err, 'reconciling deployments'),
  });
  await reconciler.start();
  closers.push({ what: 'deployment reconciler', close: () => reconciler.stop() });
  // Recovery (lost runs closed, schedules re-armed, continuous tasks restarted) needs the URL.
  throwIfRefused();
  await tasks.start();
  throwIfRefused();
  opened();
  app.log.info(
    { url, home: config.home, database: stores.dialect, nodeId, runs: runIsolation },
    'quoll server listening',
  );
  // Key ids (keyed hashes), never keys: what an operator checks during a key rotation's rollout.
  const [sealKeyId, ...decryptOnlyKeyIds] = keyring.keyIds();
  app.log.info(
    { sealKeyId, heldKeyIds: keyring.keyIds(), decryptOnlyKeyIds },
    `master key: seals with key id ${sealKeyId}; holds key ids ${keyring.keyIds().join(', ')}`,
  );
  if (leftovers.processes > 0)
    app.log.warn(
      { processes: leftovers.processes, groups: leftovers.stopped.map((e) => ({ pid: e.pid, dir: e.dir })) },
      'stopped processes a previous server on this home left running',
    );
  if (!runIsolation.sandboxed)
    app.log.warn(
      { reason: runIsolation.reason, unsandboxedRuns: runIsolation.unsandboxedRuns },
      'task runs are not sandboxed',
    );
  throwIfRefused();
  stopRefused = (err) => {
    failWith(err);
    // A close that fails is said in the log; the refusal stays what `failed` reports.
    close().catch((closeErr: unknown) => membershipLog.error({ err: closeErr }, 'error while stopping'));
  };
  return {
    url,
    adminToken: creds.token,
    app,
    context,
    runIsolation,
    close,
    stoppingStep: () => closers.waitingFor,
    failed,
  };
}

/** An address that reaches a server listening on `host` from this machine. */
function loopbackFor(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}
