import { Command } from 'commander';
import { resolveServerConfig } from '../../config/index.js';

/** `quoll server [--home DIR] [--host H] [--port P]`. */
export function serverCommand(): Command {
  return new Command('server')
    .description('Start the Quoll server on its embedded default (SQLite + files under the home directory)')
    .option('--home <dir>', 'home directory with all state (default: $QUOLL_HOME, else ./.quoll)')
    .option('--host <host>', 'address to listen on', undefined)
    .option('--port <port>', 'port to listen on (0 = any free port)', undefined)
    .option('--log-level <level>', 'log level: fatal, error, warn, info, debug, trace')
    .option('--workers <n>', 'inference worker threads per deployed pipeline', (v) => Number(v))
    .option(
      '--task-concurrency <n>',
      'task runs executing at once; more wait in a queue (default 4; env QUOLL_TASK_CONCURRENCY)',
      (v) => Number(v),
    )
    .option(
      '--no-inference-logs',
      'do not write inference logs (existing logs stay readable; env QUOLL_INFERENCE_LOGS=off)',
    )
    .action(async (_local: unknown, command: Command) => {
      // --home is also a global flag (for client commands); read both levels.
      const opts = command.optsWithGlobals<{
        home?: string;
        host?: string;
        port?: string;
        logLevel?: string;
        workers?: number;
        taskConcurrency?: number;
        inferenceLogs?: boolean;
      }>();
      const config = resolveServerConfig(
        {
          home: opts.home,
          host: opts.host,
          port: opts.port,
          logLevel: opts.logLevel,
          workersPerDeployment: opts.workers,
          taskConcurrency: opts.taskConcurrency,
          // Commander defaults a --no-* flag to true; only an explicit flag overrides the environment.
          inferenceLogs: opts.inferenceLogs === false ? false : undefined,
        },
        process.env,
        process.cwd(),
      );
      // Loaded on demand: client commands must not pay for onnxruntime, SQLite and Fastify.
      const { startServer } = await import('../../server/index.js');
      const server = await startServer(config);
      process.stdout.write(
        `quoll server listening on ${server.url} (home ${config.home}; credentials in ${config.home}/credentials.json)\n`,
      );
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) return;
          stopping = true;
          server.app.log.info({ signal }, 'stopping: draining requests and loops');
          server.close().then(resolve, (err: unknown) => {
            server.app.log.error({ err }, 'error while stopping');
            process.exitCode = 1;
            resolve();
          });
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
