import { createHash } from 'node:crypto';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

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
  /**
   * Worker threads per deployed pipeline unless the deploy config says otherwise.
   * @default min(2, cores this process may run on) — more workers than cores only add hand-offs.
   */
  readonly workersPerDeployment: number;
  /** Pino log level. @default 'info' */
  readonly logLevel: string;
  /** Whether to write server logs at all (false for an embedded server in tests or examples). @default true */
  readonly logging: boolean;
  /**
   * Whether every inference is written to the inference log (`--no-inference-logs`,
   * `QUOLL_INFERENCE_LOGS=off`). Off, existing logs can still be read.
   * @default true
   */
  readonly inferenceLogs: boolean;
  /** Inference-log retention: most segment bytes kept per pipeline (`QUOLL_LOG_MAX_BYTES_PER_PIPELINE`). @default 1 GiB */
  readonly logMaxBytesPerPipeline: number;
  /** Inference-log retention: most segment bytes kept over all pipelines (`QUOLL_LOG_MAX_BYTES_TOTAL`). @default 10 GiB */
  readonly logMaxBytesTotal: number;
  /** Size at which an inference-log segment file is sealed and a new one started (`QUOLL_LOG_SEGMENT_MAX_BYTES`). @default 64 MiB */
  readonly logSegmentMaxBytes: number;
  /** Task runs executing at once; more wait in a queue (`--task-concurrency`, `QUOLL_TASK_CONCURRENCY`). @default 4 */
  readonly taskConcurrency: number;
  /**
   * Pre-started Node processes kept ready for task runs (`QUOLL_TASK_WARM_PROCESSES`; 0 = off),
   * at most `taskConcurrency`. Each saves a run Node's start-up (~0.1 s) at ~40 MB idle.
   * @default 2
   */
  readonly taskWarmProcesses: number;
  /**
   * Where task runs get their working directories (`QUOLL_RUNS_DIR`); outside the home so
   * run code cannot reach the home's files by a relative path.
   * @default `<os tmpdir>/quoll-runs-<first 12 hex of sha256(home)>`
   */
  readonly runsDir: string;
  /**
   * OS user task processes run as (`QUOLL_TASK_USER`: a name, uid or uid:gid); null = the
   * server's user. Needs a server running as root.
   * @default null
   */
  readonly taskUser: string | null;
  /** Whether npm skips dependencies' install scripts when packaging (`QUOLL_NPM_IGNORE_SCRIPTS=1`). @default false */
  readonly npmIgnoreScripts: boolean;
}

/** Command-line style overrides. */
export interface ServerConfigInput {
  home?: string | undefined;
  host?: string | undefined;
  port?: number | string | undefined;
  logLevel?: string | undefined;
  logging?: boolean | undefined;
  workersPerDeployment?: number | undefined;
  /** `false` from `--no-inference-logs`. */
  inferenceLogs?: boolean | undefined;
  /** From `--task-concurrency`. */
  taskConcurrency?: number | undefined;
}

/** Default inference-log retention per pipeline: 1 GiB. */
export const DEFAULT_LOG_MAX_BYTES_PER_PIPELINE = 1024 ** 3;
/** Default inference-log retention over all pipelines: 10 GiB. */
export const DEFAULT_LOG_MAX_BYTES_TOTAL = 10 * 1024 ** 3;
/** Default inference-log segment size: 64 MiB. */
export const DEFAULT_LOG_SEGMENT_MAX_BYTES = 64 * 1024 ** 2;

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/**
 * Parses a byte size from the environment: a plain integer of bytes, or a number with a
 * binary unit (`512 MiB`, `1.5GiB`). Throws naming the variable when it is neither.
 */
export function parseByteSize(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const m = /^(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|tib)?$/i.exec(raw.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new Error(
      `Invalid ${name} "${raw}": give a positive number of bytes, optionally with a unit (e.g. 1073741824, 512 MiB, 1 GiB).`,
    );
  }
  return bytes;
}

function parseSwitch(name: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined || raw === '') return undefined;
  const v = raw.trim().toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(v)) return true;
  if (['off', 'false', '0', 'no'].includes(v)) return false;
  throw new Error(`Invalid ${name} "${raw}": give on or off.`);
}

/** The default port, `8470`. */
export const DEFAULT_PORT = 8470;

/**
 * Resolves the configuration: explicit input, then environment (`QUOLL_HOME`, `QUOLL_HOST`,
 * `QUOLL_PORT`, `QUOLL_LOG_LEVEL`, `QUOLL_WORKERS`, `QUOLL_INFERENCE_LOGS`,
 * `QUOLL_LOG_MAX_BYTES_PER_PIPELINE`, `QUOLL_LOG_MAX_BYTES_TOTAL`, `QUOLL_LOG_SEGMENT_MAX_BYTES`,
 * `QUOLL_TASK_CONCURRENCY`, `QUOLL_TASK_WARM_PROCESSES`, `QUOLL_RUNS_DIR`, `QUOLL_TASK_USER`, `QUOLL_NPM_IGNORE_SCRIPTS`), then defaults (`./.quoll`, 127.0.0.1, 8470).
 */
export function resolveServerConfig(
  input: ServerConfigInput,
  env: NodeJS.ProcessEnv,
  cwd: string,
): ServerConfig {
  const port = Number(input.port ?? env.QUOLL_PORT ?? DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(
      `Invalid port "${String(input.port ?? env.QUOLL_PORT)}": give an integer from 0 to 65535.`,
    );
  }
  const workers = Number(
    input.workersPerDeployment ?? env.QUOLL_WORKERS ?? Math.min(2, availableParallelism()),
  );
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new Error(`Invalid worker count "${String(workers)}": give an integer from 1 to 64.`);
  }
  const taskConcurrency = Number(input.taskConcurrency ?? env.QUOLL_TASK_CONCURRENCY ?? 4);
  if (!Number.isInteger(taskConcurrency) || taskConcurrency < 1 || taskConcurrency > 256) {
    throw new Error(
      `Invalid task concurrency "${String(input.taskConcurrency ?? env.QUOLL_TASK_CONCURRENCY)}": give an integer from 1 to 256 (--task-concurrency or QUOLL_TASK_CONCURRENCY).`,
    );
  }
  const taskWarmProcesses = Number(env.QUOLL_TASK_WARM_PROCESSES ?? 2);
  if (!Number.isInteger(taskWarmProcesses) || taskWarmProcesses < 0 || taskWarmProcesses > 256) {
    throw new Error(
      `Invalid QUOLL_TASK_WARM_PROCESSES "${String(env.QUOLL_TASK_WARM_PROCESSES)}": give an integer from 0 to 256.`,
    );
  }
  const home = resolve(cwd, input.home ?? env.QUOLL_HOME ?? '.quoll');
  const homeHash = createHash('sha256').update(home).digest('hex').slice(0, 12);
  const taskUser = env.QUOLL_TASK_USER?.trim();
  return Object.freeze({
    home,
    host: input.host ?? env.QUOLL_HOST ?? '127.0.0.1',
    port,
    maxModelBytes: 2 * 1024 ** 3,
    maxInferenceBytes: 256 * 1024 ** 2,
    workersPerDeployment: workers,
    logLevel: input.logLevel ?? env.QUOLL_LOG_LEVEL ?? 'info',
    logging: input.logging ?? true,
    inferenceLogs:
      input.inferenceLogs ?? parseSwitch('QUOLL_INFERENCE_LOGS', env.QUOLL_INFERENCE_LOGS) ?? true,
    logMaxBytesPerPipeline: parseByteSize(
      'QUOLL_LOG_MAX_BYTES_PER_PIPELINE',
      env.QUOLL_LOG_MAX_BYTES_PER_PIPELINE,
      DEFAULT_LOG_MAX_BYTES_PER_PIPELINE,
    ),
    logMaxBytesTotal: parseByteSize(
      'QUOLL_LOG_MAX_BYTES_TOTAL',
      env.QUOLL_LOG_MAX_BYTES_TOTAL,
      DEFAULT_LOG_MAX_BYTES_TOTAL,
    ),
    logSegmentMaxBytes: parseByteSize(
      'QUOLL_LOG_SEGMENT_MAX_BYTES',
      env.QUOLL_LOG_SEGMENT_MAX_BYTES,
      DEFAULT_LOG_SEGMENT_MAX_BYTES,
    ),
    taskConcurrency,
    taskWarmProcesses: Math.min(taskWarmProcesses, taskConcurrency),
    runsDir:
      env.QUOLL_RUNS_DIR !== undefined && env.QUOLL_RUNS_DIR.trim() !== ''
        ? resolve(cwd, env.QUOLL_RUNS_DIR)
        : join(tmpdir(), `quoll-runs-${homeHash}`),
    taskUser: taskUser === undefined || taskUser === '' ? null : taskUser,
    npmIgnoreScripts: parseSwitch('QUOLL_NPM_IGNORE_SCRIPTS', env.QUOLL_NPM_IGNORE_SCRIPTS) ?? false,
  });
}
