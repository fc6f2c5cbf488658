import { resolve } from 'node:path';

/** Settings of one server process, parsed once at the edge and frozen. */
export interface ServerConfig {
  /** All state of this instance lives here. */
  readonly home: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest model upload accepted, bytes. @default 2 GiB */
  readonly maxModelBytes: number;
  /** Largest inference request body, bytes. @default 256 MiB */
  readonly maxInferenceBytes: number;
  /** Worker threads per deployed pipeline unless the deploy config says otherwise. @default 2 */
  readonly workersPerDeployment: number;
  /** Pino log level. @default 'info' */
  readonly logLevel: string;
  /** Whether to write logs at all (the CLI's `--quiet`). @default true */
  readonly logging: boolean;
}

/** Command-line style overrides. */
export interface ServerConfigInput {
  home?: string | undefined;
  host?: string | undefined;
  port?: number | string | undefined;
  logLevel?: string | undefined;
  logging?: boolean | undefined;
  workersPerDeployment?: number | undefined;
}

/** The default port, `8470`. */
export const DEFAULT_PORT = 8470;

/**
 * Resolves the configuration: explicit input, then environment (`QUOLL_HOME`, `QUOLL_HOST`,
 * `QUOLL_PORT`, `QUOLL_LOG_LEVEL`, `QUOLL_WORKERS`), then defaults (`./.quoll`, 127.0.0.1, 8470).
 */
export function resolveServerConfig(input: ServerConfigInput, env: NodeJS.ProcessEnv, cwd: string): ServerConfig {
  const port = Number(input.port ?? env.QUOLL_PORT ?? DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`Invalid port "${String(input.port ?? env.QUOLL_PORT)}": give an integer from 0 to 65535.`);
  }
  const workers = Number(input.workersPerDeployment ?? env.QUOLL_WORKERS ?? 2);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new Error(`Invalid worker count "${String(workers)}": give an integer from 1 to 64.`);
  }
  return Object.freeze({
    home: resolve(cwd, input.home ?? env.QUOLL_HOME ?? '.quoll'),
    host: input.host ?? env.QUOLL_HOST ?? '127.0.0.1',
    port,
    maxModelBytes: 2 * 1024 ** 3,
    maxInferenceBytes: 256 * 1024 ** 2,
    workersPerDeployment: workers,
    logLevel: input.logLevel ?? env.QUOLL_LOG_LEVEL ?? 'info',
    logging: input.logging ?? true,
  });
}
