import { Command } from 'commander';
import { QuollError } from '@quoll/client/errors';
import { ApiError } from '../../errors/index.js';
import { redactDatabaseUrl, resolveServerConfig } from '../../config/index.js';

/** `quoll server [--home DIR] [--database postgres://…] [--host H] [--port P]`. */
export function serverCommand(): Command {
  return new Command('server')
    .description(
      'Start the Quoll server: on its embedded default (SQLite + files under the home directory), or as a node of a cluster on a shared PostgreSQL database (--database)',
    )
    .option(
      '--home <dir>',
      'home directory: all state when embedded; node-local files (caches, run directories, credentials) with --database (default: $QUOLL_HOME, else ./.quoll)',
    )
    .option(
      '--database <url>',
      'run as a node of a cluster on this PostgreSQL database, postgres://USER@HOST:PORT/DB (env QUOLL_DATABASE_URL; pool size QUOLL_DATABASE_POOL_SIZE, default 10). The node migrates the schema at start, and refuses a schema newer than its code; one already running when a newer node migrates it keeps serving and says schema_ahead on /v1/health (upgrade nodes one at a time: docs/distributed.md, Upgrades)',
    )
    .option('--host <host>', 'address to listen on', undefined)
    .option('--port <port>', 'port to listen on (0 = any free port)', undefined)
    .option('--log-level <level>', 'log level: fatal, error, warn, info, debug, trace')
    .option(
      '--workers <n>',
      'model workers of the shared pool each deployed pipeline runs on, unless its deploy config says otherwise (default min(2, cores); env QUOLL_WORKERS)',
      (v) => Number(v),
    )
    .option(
      '--pool-workers <n>',
      'model worker threads in the one pool shared by every deployed pipeline (default: --workers; env QUOLL_POOL_WORKERS)',
      (v) => Number(v),
    )
    .option(
      '--model-memory <size>',
      'model bytes the pool may hold, e.g. 512MiB; over it least recently used models are unloaded and load again on demand (default 4GiB; env QUOLL_MODEL_MEMORY)',
    )
    .option(
      '--task-concurrency <n>',
      'task runs executing at once; more wait in a queue (default 4; env QUOLL_TASK_CONCURRENCY)',
      (v) => Number(v),
    )
    .option(
      '--task-workspace-concurrency <n>',
      'task runs of one workspace executing at once, so one cannot hold every slot; waiting workspaces take turns (default task concurrency - 1, at least 1; env QUOLL_TASK_WORKSPACE_CONCURRENCY)',
      (v) => Number(v),
    )
    .option(
      '--sandbox <mode>',
      'isolate task runs and installs: auto (bubblewrap when it works here), bubblewrap (required), off (env QUOLL_SANDBOX)',
    )
    .option(
      '--allow-unsandboxed-runs',
      'let workspace-scoped tokens start task runs although runs are not sandboxed (env QUOLL_ALLOW_UNSANDBOXED_RUNS=1)',
    )
    .option(
      '--task-network <mode>',
      "a sandboxed run's network: host, or server-only (only the Quoll API reachable) (env QUOLL_TASK_NETWORK)",
    )
    .option(
      '--task-disk <size>',
      "what one task run may write: its directory's size on disk, and each file it writes (e.g. 10GiB, or none; default 2GiB; env QUOLL_TASK_DISK); a run past it ends failure (disk limit exceeded)",
    )
    .option(
      '--python <python>',
      'the Python (>= 3.9, with venv) that packages and runs Python orchestrations: a name on PATH or a path (default python3; env QUOLL_PYTHON)',
    )
    .option(
      '--no-tasks',
      'on a cluster (--database): run no task runs on this node; runs of tasks created through it wait for a node that runs tasks',
    )
    .option(
      '--no-inference',
      'on a cluster (--database): load no pipelines on this node (it serves the API and tasks); inference requests it receives go to a node holding a replica',
    )
    .option(
      '--no-sync-handoff',
      'send every run to the model workers by message, never through the synchronous shared-memory hand-off for small runs of fast models (env QUOLL_SYNC_HANDOFF=off)',
    )
    .option(
      '--inline-runs [on|off]',
      "run small runs (<= 8 rows) of small, fast pipelines on the HTTP thread, with no hand-off to a model worker (default on; env QUOLL_INLINE_RUNS=off turns it off): a pipeline runs there only when a static bound of its work (from the model's graph) is small and an admission probe, its largest inline runs timed in a thread of their own, took at most 2 ms each; 3 runs over 10 ms send it back to the workers",
    )
    .option('--no-inline-runs', 'run every model in the model workers (the same as --inline-runs off)')
    .option(
      '--no-inference-logs',
      'do not write inference logs (existing logs stay readable; env QUOLL_INFERENCE_LOGS=off)',
    )
    .option(
      '--no-metrics',
      'keep no metrics: GET /metrics is off, the console shows no charts (env QUOLL_METRICS=off)',
    )
    .option(
      '--metrics-public',
      'serve GET /metrics (Prometheus) without a token (env QUOLL_METRICS_PUBLIC=1); otherwise it needs an admin token',
    )
    .action(async (_local: unknown, command: Command) => {
      // --home is also a global flag (for client commands); read both levels.
      const opts = command.optsWithGlobals<{
        home?: string;
        database?: string;
        host?: string;
        port?: string;
        logLevel?: string;
        workers?: number;
        poolWorkers?: number;
        modelMemory?: string;
        taskConcurrency?: number;
        taskWorkspaceConcurrency?: number;
        inferenceLogs?: boolean;
        syncHandoff?: boolean;
        inlineRuns?: boolean | string;
        sandbox?: string;
        allowUnsandboxedRuns?: boolean;
        taskNetwork?: string;
        taskDisk?: string;
        metricsPublic?: boolean;
        metrics?: boolean;
        python?: string;
        tasks?: boolean;
        inference?: boolean;
      }>();
      const config = resolveServerConfig(
        {
          home: opts.home,
          database: opts.database,
          host: opts.host,
          port: opts.port,
          logLevel: opts.logLevel,
          workersPerDeployment: opts.workers,
          poolWorkers: opts.poolWorkers,
          modelMemory: opts.modelMemory,
          taskConcurrency: opts.taskConcurrency,
          taskWorkspaceConcurrency: opts.taskWorkspaceConcurrency,
          // Commander defaults a --no-* flag to true; only an explicit flag overrides the environment.
          inferenceLogs: opts.inferenceLogs === false ? false : undefined,
          syncHandoff: opts.syncHandoff === false ? false : undefined,
          // Commander defaults the option to true once --no-inline-runs is declared: only a flag given overrides the environment.
          inlineRuns: command.getOptionValueSource('inlineRuns') === 'cli' ? opts.inlineRuns : undefined,
          sandbox: opts.sandbox,
          allowUnsandboxedRuns: opts.allowUnsandboxedRuns === true ? true : undefined,
          taskNetwork: opts.taskNetwork,
          taskDisk: opts.taskDisk,
          metricsPublic: opts.metricsPublic === true ? true : undefined,
          // Commander defaults a --no-* flag to true; only an explicit flag overrides the environment.
          metrics: opts.metrics === false ? false : undefined,
          python: opts.python,
          tasks: opts.tasks === false ? false : undefined,
          inference: opts.inference === false ? false : undefined,
        },
        process.env,
        process.cwd(),
      );
      // Loaded on demand: client commands must not pay for onnxruntime, SQLite and Fastify.
      const { startServer } = await import('../../server/index.js');
      // A start refused with a catalogue code (e.g. node_id_in_use) prints as `error [code]: …`.
      const server = await startServer(config).catch((err: unknown) => {
        throw err instanceof ApiError ? new QuollError(err.code, err.message, 0, err.details) : err;
      });
      // The handlers go in before the "listening" line: whoever reads that line may send SIGTERM
      // at once, and a signal with no handler yet takes the kernel's default (the process dies
      // where it stands, leaving its home's lock behind). Seen in CI on 3 December.
      // A second SIGINT or SIGTERM during the stop exits at once (exit code 1), naming the step
      // the stop was still waiting for: a stop may wait long (an upload under way, a model
      // worker finishing a long run) and the first signal never cuts work short.
      const stopped = new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) {
            const waitingFor = server.stoppingStep() ?? 'the last steps';
            server.app.log.error(
              { signal, waitingFor },
              `second signal (${signal}) during the stop: exiting now with code 1; still stopping: ${waitingFor}`,
            );
            process.exit(1);
          }
          stopping = true;
          server.app.log.info({ signal }, 'stopping: draining requests and loops');
          server.close().then(resolve, (err: unknown) => {
            server.app.log.error({ err }, 'error while stopping');
            process.exitCode = 1;
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      const where =
        config.database.kind === 'sqlite'
          ? `home ${config.home}`
          : `node ${server.context.nodeId} on ${redactDatabaseUrl(config.database.url)}; node home ${config.home}`;
      process.stdout.write(
        `quoll server listening on ${server.url} (${where}; credentials in ${config.home}/credentials.json)\n`,
      );
      const runs = server.runIsolation;
      process.stdout.write(
        runs.sandboxed
          ? `task runs: sandboxed with ${runs.launcher} (network: ${runs.network})\n`
          : `task runs: NOT sandboxed (${runs.reason ?? 'no sandbox'}); ` +
              (runs.unsandboxedRuns === 'allowed'
                ? 'workspace-scoped tokens may still start runs (--allow-unsandboxed-runs)\n'
                : 'only admin tokens may start runs (--allow-unsandboxed-runs lets workspace tokens too)\n'),
      );
      if (!runs.sandboxed || runs.network === 'host')
        process.stdout.write(
          "warning: task runs share this host's network: they reach every service listening here, " +
            'loopback included (a database trusting local connections, an admin port); ' +
            '--task-network server-only gives a sandboxed run only the Quoll API\n',
        );
      // A node refused on its return after being marked lost stops on its own (the server is
      // closing already): once closed, the refusal prints as `error [code]: …` (exit code 2).
      const refused = server.failed.then(async (err) => {
        // A close that fails is logged (the server's own stop already did); the refusal is
        // what the exit says.
        await server.close().catch((closeErr: unknown) => {
          server.app.log.error({ err: closeErr }, 'error while stopping');
        });
        return err;
      });
      const err = await Promise.race([stopped.then(() => null), refused]);
      if (err !== null) throw new QuollError(err.code, err.message, 0, err.details);
    });
}
