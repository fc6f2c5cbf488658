import { createHash } from 'node:crypto';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where an instance keeps its metadata. */
export type DatabaseConfig =
  /** The embedded default: `<home>/quoll.db`. */
  | { readonly kind: 'sqlite'; readonly path: string }
  /** A PostgreSQL database shared by every node of a cluster. */
  | {
      readonly kind: 'postgres';
      /** `postgres://USER@HOST:PORT/DB` (`--database`, `QUOLL_DATABASE_URL`). */
      readonly url: string;
      /** Connections this node keeps open (`QUOLL_DATABASE_POOL_SIZE`). @default 10 */
      readonly poolSize: number;
    };

/** Settings of one server process, parsed once at the edge and frozen. */
export interface ServerConfig {
  /**
   * All state of an embedded instance lives here; with a PostgreSQL database it is node-local
   * (caches, run directories, this node's credentials file and id).
   */
  readonly home: string;
  /** Where the metadata lives. @default `{ kind: 'sqlite', path: '<home>/quoll.db' }` */
  readonly database: DatabaseConfig;
  /**
   * This node's id in shared state (e.g. who holds a packaging lease): `QUOLL_NODE_ID`, else
   * the id kept in `<home>/node-id`, made at the node's first start. `null` until resolved
   * by the server start (it reads or writes the file).
   * @default null
   */
  readonly nodeId: string | null;
  /**
   * How long a node's hold on shared work lasts without renewal (`QUOLL_CLUSTER_LEASE_MS`): a
   * run's lease, and the silence after which a node is marked lost. A node renews every fifth
   * of it, so a dead node's runs are closed `failure (node lost)` between one and two leases
   * after its last renewal.
   * @default 15000
   */
  readonly leaseMs: number;
  /** Whether this node runs task runs (`--no-tasks` turns it off). @default true */
  readonly runsTasks: boolean;
  /** Whether this node serves inference (`--no-inference` turns it off). @default true */
  readonly servesInference: boolean;
  /**
   * The URL other nodes reach this node at (`QUOLL_NODE_URL`): where they forward inference
   * requests for the pipelines it serves. Null: the URL it listens on (`http://HOST:PORT`),
   * which other machines cannot use when HOST is 0.0.0.0 or a loopback address.
   * @default null
   */
  readonly nodeUrl: string | null;
  /**
   * The bound on one inference request forwarded to another node, from connecting to the last
   * byte of the answer (`QUOLL_FORWARD_TIMEOUT_MS`), ms. @default 60000
   */
  readonly forwardTimeoutMs: number;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest model upload accepted, bytes. @default 2 GiB */
  readonly maxModelBytes: number;
  /** Largest inference request body, bytes (`QUOLL_MAX_INFERENCE_BYTES`); larger ones are refused 413 before they are read. @default 256 MiB */
  readonly maxInferenceBytes: number;
  /**
   * Most inference body bytes the server holds at once over all requests
   * (`QUOLL_MAX_INFLIGHT_BODY_BYTES`); a request that would pass it is refused 503
   * `server_busy` before its body is read. A request counts 8 times its body (decode, model input and answer).
   * @default 1 GiB
   */
  readonly maxInflightBodyBytes: number;
  /**
   * Longest wait for the next bytes of a request body, ms (`QUOLL_BODY_IDLE_TIMEOUT_MS`); also the
   * grace before {@link bodyMinBytesPerSecond} applies. Past it 408 `request_timeout` and the
   * connection is closed. @default 20000
   */
  readonly bodyIdleTimeoutMs: number;
  /**
   * Least average rate of a request body once it has been arriving for the idle timeout, bytes per
   * second (`QUOLL_BODY_MIN_RATE`); slower bodies are cut like idle ones. @default 16 KiB
   */
  readonly bodyMinBytesPerSecond: number;
  /**
   * Longest time an answer's bytes may wait unsent without any of them leaving, ms
   * (`QUOLL_ANSWER_IDLE_TIMEOUT_MS`): a client that reads nothing of its answer for that long
   * has its connection closed, which frees the answer and its request's body budget.
   * @default 60000
   */
  readonly answerIdleTimeoutMs: number;
  /**
   * Least average rate an answer must leave at once its bytes have waited unsent for the answer
   * idle timeout, bytes per second (`QUOLL_ANSWER_MIN_RATE`); slower readers are cut like idle
   * ones. @default 16 KiB
   */
  readonly answerMinBytesPerSecond: number;
  /**
   * Deadline of decoding one inference body in a decode worker, plus 200 ms per MiB
   * (`QUOLL_DECODE_DEADLINE_MS`); past it the decode is abandoned (400 `input_decode_timeout`).
   * @default 2000
   */
  readonly decodeDeadlineMs: number;
  /**
   * Benchmarks only (`QUOLL_BENCH_INPUT_CHECKS=off`): `false` decodes `/v1` inference bodies on
   * the HTTP thread without the decode pool, its deadline, the Arrow framing checks or the
   * in-flight body budget, as before those checks existed, so `bench/input-checks.bench.ts` can
   * measure what they cost. Never turn it off on a server that takes requests from anyone.
   * @default true
   */
  readonly inputChecks: boolean;
  /**
   * Worker threads per deployed pipeline unless the deploy config says otherwise.
   * @default min(2, cores this process may run on) — more workers than cores only add hand-offs.
   */
  readonly workersPerDeployment: number;
  /**
   * Model worker threads in the server's one shared pool (`--pool-workers`, `QUOLL_POOL_WORKERS`):
   * every deployed pipeline runs on `workers` of them, so the server never runs more.
   * @default `workersPerDeployment`
   */
  readonly poolWorkers: number;
  /**
   * Model bytes (ONNX file sizes) the pool's workers may hold together (`--model-memory`,
   * `QUOLL_MODEL_MEMORY`, e.g. `512 MiB`); over it each worker unloads its least recently used
   * models, which load again on their next request.
   * @default 4 GiB
   */
  readonly modelMemoryBytes: number;
  /**
   * Whether idle model workers take small runs of fast models through the synchronous
   * shared-memory hand-off (`--no-sync-handoff`, `QUOLL_SYNC_HANDOFF=off` send every run by
   * message; see the engine's `syncHandoff`).
   * @default true
   */
  readonly syncHandoff: boolean;
  /**
   * Whether small runs of small, fast pipelines run on the HTTP thread, without a hand-off to a
   * model worker (`--no-inline-runs`, `--inline-runs off`, `QUOLL_INLINE_RUNS=off` turn it off;
   * see the engine's `inlineRuns`). A pipeline runs inline only when a static bound of its work
   * and then a measured admission probe in a thread of its own let it, and a trip wire sends it
   * back to the workers after slow runs.
   * @default true
   */
  readonly inlineRuns: boolean;
  /**
   * With inline runs on: whether small runs run on the HTTP thread while requests overlap too,
   * the requests of one turn merged into one run, instead of going to the model workers for
   * dynamic batching (`QUOLL_INLINE_CONTENDED=on|off`; see the engine's `inlineWhenContended`).
   * @default true when the process may run on one CPU only (`os.availableParallelism()` is 1), else false
   */
  readonly inlineWhenContended: boolean;
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
  /**
   * Whether the server keeps metrics at all (`--no-metrics`, `QUOLL_METRICS=off`): off, nothing
   * is counted, `GET /metrics` is `route_not_found` and the console shows no charts.
   * @default true
   */
  readonly metrics: boolean;
  /** Whether `GET /metrics` answers without a token (`--metrics-public`, `QUOLL_METRICS_PUBLIC=1`). @default false */
  readonly metricsPublic: boolean;
  /** Inference-log retention: most segment bytes kept per pipeline (`QUOLL_LOG_MAX_BYTES_PER_PIPELINE`). @default 1 GiB */
  readonly logMaxBytesPerPipeline: number;
  /** Inference-log retention: most segment bytes kept over all pipelines (`QUOLL_LOG_MAX_BYTES_TOTAL`). @default 10 GiB */
  readonly logMaxBytesTotal: number;
  /** Size at which an inference-log segment file is sealed and a new one started (`QUOLL_LOG_SEGMENT_MAX_BYTES`). @default 64 MiB */
  readonly logSegmentMaxBytes: number;
  /** Task runs executing at once; more wait in a queue (`--task-concurrency`, `QUOLL_TASK_CONCURRENCY`). @default 4 */
  readonly taskConcurrency: number;
  /**
   * Task runs of one workspace executing at once (`--task-workspace-concurrency`,
   * `QUOLL_TASK_WORKSPACE_CONCURRENCY`), at most `taskConcurrency`: below it, one workspace's
   * continuous tasks cannot hold every slot. Waiting workspaces take free slots in turn.
   * @default taskConcurrency − 1 (at least 1)
   */
  readonly taskWorkspaceConcurrency: number;
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
  /**
   * Which dependencies' install scripts npm runs when packaging: `none`, `all`, or the named
   * packages (`QUOLL_NPM_ALLOW_SCRIPTS=name,name`, or `*` for all; `QUOLL_NPM_IGNORE_SCRIPTS=0`
   * is the older way to say all). They run in the same sandbox as runs.
   * @default 'none'
   */
  readonly npmScripts: 'none' | 'all' | readonly string[];
  /**
   * The Python that Python orchestrations are packaged and run with (`--python`,
   * `QUOLL_PYTHON`): a name on PATH or a path; it must be Python >= 3.9 with its venv module.
   * Without a usable one, Python zips are refused at upload (`python_unavailable`).
   * @default 'python3'
   */
  readonly python: string;
  /**
   * How task runs (and installs) are isolated (`--sandbox`, `QUOLL_SANDBOX`): `auto` = a
   * bubblewrap sandbox when one works here (Linux with `bwrap`), else none; `bubblewrap` =
   * required (the server does not start without); `off` = never.
   * @default 'auto'
   */
  readonly sandbox: 'auto' | 'bubblewrap' | 'off';
  /**
   * Let workspace-scoped tokens start runs although runs are not sandboxed
   * (`--allow-unsandboxed-runs`, `QUOLL_ALLOW_UNSANDBOXED_RUNS=1`); admin tokens always may.
   * @default false
   */
  readonly allowUnsandboxedRuns: boolean;
  /**
   * A sandboxed run's network (`--task-network`, `QUOLL_TASK_NETWORK`): `host` = the server's;
   * `server-only` = its own, where only the Quoll API is reachable.
   * @default 'host'
   */
  readonly taskNetwork: 'host' | 'server-only';
  /**
   * What each run may use, server-wide; a task can only ask for less. null = no limit.
   * `QUOLL_TASK_MEMORY` (bytes per process, @default 4 GiB), `QUOLL_TASK_PROCESSES`
   * (@default 512), `QUOLL_TASK_OPEN_FILES` (per process, @default 16384),
   * `QUOLL_TASK_CPU_SECONDS` (per process, @default none), `QUOLL_TASK_DISK` / `--task-disk`
   * (what a run's directory may hold, and each file it writes, bytes; @default 2 GiB); `none`
   * turns one off.
   */
  readonly taskLimits: {
    readonly memoryBytes: number | null;
    readonly processes: number | null;
    readonly openFiles: number | null;
    readonly cpuSeconds: number | null;
    readonly diskBytes: number | null;
  };
  /**
   * The least `memoryBytes` a task may set: what the Node.js of the runs (the server's) needs
   * to start, or null where there is none (see {@link nodeMemoryFloorBytes}).
   */
  readonly taskMemoryFloorBytes: number | null;
  /**
   * What one install (npm, `python -m venv`, pip) may write: its build folder and its own
   * cache together, and each file (`QUOLL_INSTALL_DISK`); apart from `QUOLL_TASK_DISK` because
   * ML dependencies (a CUDA wheel) are large. null = none. @default 16 GiB
   */
  readonly installDiskBytes: number | null;
  /** Size of a sandboxed run's private /tmp, a tmpfs held in memory (`QUOLL_TASK_TMP_SIZE`). @default 1 GiB */
  readonly taskTmpBytes: number;
  /** Most bytes one run's log keeps; later output is dropped and counted (`QUOLL_RUN_LOG_MAX_BYTES`). @default 64 MiB */
  readonly runLogMaxBytes: number;
  /** Most bytes all run logs keep; the oldest finished ones are cut to a note (`QUOLL_RUN_LOG_MAX_BYTES_TOTAL`). @default 10 GiB */
  readonly runLogMaxBytesTotal: number;
}

/** Command-line style overrides. */
export interface ServerConfigInput {
  home?: string | undefined;
  /** From `--database`: a `postgres://` URL. */
  database?: string | undefined;
  host?: string | undefined;
  port?: number | string | undefined;
  logLevel?: string | undefined;
  logging?: boolean | undefined;
  workersPerDeployment?: number | undefined;
  /** From `--pool-workers`. */
  poolWorkers?: number | undefined;
  /** From `--model-memory`: bytes, or a size such as `512 MiB`. */
  modelMemory?: number | string | undefined;
  /** `false` from `--no-inference-logs`. */
  inferenceLogs?: boolean | undefined;
  /** `false` from `--no-sync-handoff`. */
  syncHandoff?: boolean | undefined;
  /** From `--inline-runs [on|off]` (`true` without a value) or `--no-inline-runs` (`false`). */
  inlineRuns?: boolean | string | undefined;
  /** `false` from `--no-metrics`. */
  metrics?: boolean | undefined;
  /** `true` from `--metrics-public`. */
  metricsPublic?: boolean | undefined;
  /** From `--task-concurrency`. */
  taskConcurrency?: number | undefined;
  /** From `--task-workspace-concurrency`. */
  taskWorkspaceConcurrency?: number | undefined;
  /** From `--sandbox`. */
  sandbox?: string | undefined;
  /** `true` from `--allow-unsandboxed-runs`. */
  allowUnsandboxedRuns?: boolean | undefined;
  /** From `--task-network`. */
  taskNetwork?: string | undefined;
  /** From `--task-disk`: bytes, a size such as `10 GiB`, or `none`. */
  taskDisk?: number | string | undefined;
  /** Largest inference body, bytes (embedders and tests; else `QUOLL_MAX_INFERENCE_BYTES`). */
  maxInferenceBytes?: number | undefined;
  /** Inference body bytes held at once (embedders and tests; else `QUOLL_MAX_INFLIGHT_BODY_BYTES`). */
  maxInflightBodyBytes?: number | undefined;
  /** Request body idle timeout, ms (embedders and tests; else `QUOLL_BODY_IDLE_TIMEOUT_MS`). */
  bodyIdleTimeoutMs?: number | undefined;
  /** Least request body rate, bytes per second (embedders and tests; else `QUOLL_BODY_MIN_RATE`). */
  bodyMinBytesPerSecond?: number | undefined;
  /** Answer send idle timeout, ms (embedders and tests; else `QUOLL_ANSWER_IDLE_TIMEOUT_MS`). */
  answerIdleTimeoutMs?: number | undefined;
  /** Least answer send rate, bytes per second (embedders and tests; else `QUOLL_ANSWER_MIN_RATE`). */
  answerMinBytesPerSecond?: number | undefined;
  /** From `--python`. */
  python?: string | undefined;
  /** `false` from `--no-tasks`. */
  tasks?: boolean | undefined;
  /** `false` from `--no-inference`. */
  inference?: boolean | undefined;
}

/** Default inference-log retention per pipeline: 1 GiB. */
export const DEFAULT_LOG_MAX_BYTES_PER_PIPELINE = 1024 ** 3;
/** Default inference-log retention over all pipelines: 10 GiB. */
export const DEFAULT_LOG_MAX_BYTES_TOTAL = 10 * 1024 ** 3;
/** Default disk limit of each run (its directory, and each file it writes): 2 GiB. */
export const DEFAULT_TASK_DISK_BYTES = 2 * 1024 ** 3;
/** Default memory limit of each run process: 4 GiB. */
export const DEFAULT_TASK_MEMORY_BYTES = 4 * 1024 ** 3;
/**
 * The least per-process memory limit (RLIMIT_DATA) under which a Node.js of this version starts
 * a task run, or null where there is none to speak of. Node 24 reserves its code range up front
 * and stops (`Failed to reserve virtual memory for CodeRange`) below about 570 MiB (seen with
 * 24.22.3); Node 20 and 22 start under 64 MiB. The floor keeps a margin above what was seen.
 */
export function nodeMemoryFloorBytes(nodeVersion: string): number | null {
  const major = Number.parseInt(nodeVersion.replace(/^v/, ''), 10);
  return major >= 24 ? 600 * 1024 ** 2 : null;
}

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

function parsePositiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`Invalid ${name} "${raw}": give a positive whole number.`);
  }
  return value;
}

function parseSwitch(name: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined || raw === '') return undefined;
  const v = raw.trim().toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(v)) return true;
  if (['off', 'false', '0', 'no'].includes(v)) return false;
  throw new Error(`Invalid ${name} "${raw}": give on or off.`);
}

/** One of a fixed set of words, from a flag or the environment; throws naming the setting. */
function parseChoice<T extends string>(
  name: string,
  raw: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim().toLowerCase();
  if ((choices as readonly string[]).includes(v)) return v as T;
  throw new Error(`Invalid ${name} "${raw}": give one of ${choices.join(', ')}.`);
}

/** A positive whole number, or `none` (no limit); throws naming the variable. */
function parseLimit(name: string, raw: string | undefined, fallback: number | null): number | null {
  if (raw === undefined || raw.trim() === '') return fallback;
  if (/^(none|unlimited|off)$/i.test(raw.trim())) return null;
  const n = Number(raw.trim());
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new Error(`Invalid ${name} "${raw}": give a positive whole number, or none.`);
  return n;
}

/** npm package names (optionally scoped) an admin allows to run install scripts. */
const NPM_NAME = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

function parseNpmScripts(
  allow: string | undefined,
  ignore: string | undefined,
): 'none' | 'all' | readonly string[] {
  const names = (allow ?? '').split(/[\s,]+/).filter((n) => n !== '');
  if (names.length > 0) {
    if (names.includes('*') || names.includes('all')) return 'all';
    for (const name of names) {
      if (!NPM_NAME.test(name))
        throw new Error(
          `Invalid QUOLL_NPM_ALLOW_SCRIPTS entry "${name}": give npm package names separated by commas (e.g. sharp,@tensorflow/tfjs-node), or * for all.`,
        );
    }
    return Object.freeze([...new Set(names)].sort());
  }
  return parseSwitch('QUOLL_NPM_IGNORE_SCRIPTS', ignore) === false ? 'all' : 'none';
}

/** Parses `--database` / `QUOLL_DATABASE_URL`; undefined means the embedded SQLite file. */
function parseDatabase(raw: string | undefined, poolRaw: string | undefined, home: string): DatabaseConfig {
  const poolSize = Number(poolRaw ?? 10);
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) {
    throw new Error(`Invalid QUOLL_DATABASE_POOL_SIZE "${String(poolRaw)}": give an integer from 1 to 1000.`);
  }
  if (raw === undefined || raw.trim() === '') return { kind: 'sqlite', path: join(home, 'quoll.db') };
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(
      'Invalid database URL (--database or QUOLL_DATABASE_URL): give postgres://USER@HOST:PORT/DB, e.g. postgres://quoll@db.internal:5432/quoll.',
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(
      `Unsupported database URL scheme "${url.protocol}" (--database or QUOLL_DATABASE_URL): only postgres:// is supported; leave it unset for the embedded SQLite home.`,
    );
  }
  return { kind: 'postgres', url: raw.trim(), poolSize };
}

/** A database URL with its password masked, for messages and logs. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '*****';
    return u.toString();
  } catch {
    return '(the configured database)';
  }
}

/** The default port, `8470`. */
export const DEFAULT_PORT = 8470;

/**
 * Resolves the configuration: explicit input, then environment (`QUOLL_HOME`, `QUOLL_DATABASE_URL`,
 * `QUOLL_DATABASE_POOL_SIZE`, `QUOLL_NODE_ID`, `QUOLL_NODE_URL`, `QUOLL_FORWARD_TIMEOUT_MS`, `QUOLL_CLUSTER_LEASE_MS`, `QUOLL_HOST`,
 * `QUOLL_PORT`, `QUOLL_LOG_LEVEL`, `QUOLL_WORKERS`, `QUOLL_POOL_WORKERS`, `QUOLL_MODEL_MEMORY`, `QUOLL_SYNC_HANDOFF`, `QUOLL_INLINE_RUNS`, `QUOLL_INLINE_CONTENDED`, `QUOLL_INFERENCE_LOGS`,
 * `QUOLL_LOG_MAX_BYTES_PER_PIPELINE`, `QUOLL_LOG_MAX_BYTES_TOTAL`, `QUOLL_LOG_SEGMENT_MAX_BYTES`,
 * `QUOLL_TASK_CONCURRENCY`, `QUOLL_TASK_WARM_PROCESSES`, `QUOLL_RUNS_DIR`, `QUOLL_TASK_USER`, `QUOLL_NPM_IGNORE_SCRIPTS`, `QUOLL_NPM_ALLOW_SCRIPTS`, `QUOLL_PYTHON`,
 * `QUOLL_SANDBOX`, `QUOLL_ALLOW_UNSANDBOXED_RUNS`, `QUOLL_TASK_NETWORK`, `QUOLL_TASK_MEMORY`, `QUOLL_TASK_PROCESSES`,
 * `QUOLL_TASK_OPEN_FILES`, `QUOLL_TASK_CPU_SECONDS`, `QUOLL_TASK_DISK`, `QUOLL_INSTALL_DISK`, `QUOLL_TASK_TMP_SIZE`, `QUOLL_RUN_LOG_MAX_BYTES`,
 * `QUOLL_RUN_LOG_MAX_BYTES_TOTAL`), then defaults (`./.quoll`, 127.0.0.1, 8470).
 * `nodeVersion` is the Node.js that task runs start on (the server's): a `QUOLL_TASK_MEMORY`
 * below what it needs to start ({@link nodeMemoryFloorBytes}) is refused.
 */
export function resolveServerConfig(
  input: ServerConfigInput,
  env: NodeJS.ProcessEnv,
  cwd: string,
  nodeVersion: string = process.versions.node,
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
  const poolWorkers = Number(input.poolWorkers ?? env.QUOLL_POOL_WORKERS ?? workers);
  if (!Number.isInteger(poolWorkers) || poolWorkers < 1 || poolWorkers > 256) {
    throw new Error(
      `Invalid pool worker count "${String(input.poolWorkers ?? env.QUOLL_POOL_WORKERS)}": give an integer from 1 to 256 (--pool-workers or QUOLL_POOL_WORKERS).`,
    );
  }
  const modelMemoryBytes = parseByteSize(
    input.modelMemory === undefined ? 'QUOLL_MODEL_MEMORY' : '--model-memory',
    input.modelMemory === undefined ? env.QUOLL_MODEL_MEMORY : String(input.modelMemory),
    4 * 1024 ** 3,
  );
  const taskConcurrency = Number(input.taskConcurrency ?? env.QUOLL_TASK_CONCURRENCY ?? 4);
  if (!Number.isInteger(taskConcurrency) || taskConcurrency < 1 || taskConcurrency > 256) {
    throw new Error(
      `Invalid task concurrency "${String(input.taskConcurrency ?? env.QUOLL_TASK_CONCURRENCY)}": give an integer from 1 to 256 (--task-concurrency or QUOLL_TASK_CONCURRENCY).`,
    );
  }
  const workspaceInput = input.taskWorkspaceConcurrency ?? env.QUOLL_TASK_WORKSPACE_CONCURRENCY;
  const taskWorkspaceConcurrency = Number(workspaceInput ?? Math.max(1, taskConcurrency - 1));
  if (
    !Number.isInteger(taskWorkspaceConcurrency) ||
    taskWorkspaceConcurrency < 1 ||
    taskWorkspaceConcurrency > 256
  ) {
    throw new Error(
      `Invalid task workspace concurrency "${String(workspaceInput)}": give an integer from 1 to 256 (--task-workspace-concurrency or QUOLL_TASK_WORKSPACE_CONCURRENCY).`,
    );
  }
  const taskWarmProcesses = Number(env.QUOLL_TASK_WARM_PROCESSES ?? 2);
  if (!Number.isInteger(taskWarmProcesses) || taskWarmProcesses < 0 || taskWarmProcesses > 256) {
    throw new Error(
      `Invalid QUOLL_TASK_WARM_PROCESSES "${String(env.QUOLL_TASK_WARM_PROCESSES)}": give an integer from 0 to 256.`,
    );
  }
  const home = resolve(cwd, input.home ?? env.QUOLL_HOME ?? '.quoll');
  const database = parseDatabase(
    input.database ?? env.QUOLL_DATABASE_URL,
    env.QUOLL_DATABASE_POOL_SIZE,
    home,
  );
  const nodeId = env.QUOLL_NODE_ID?.trim();
  if (nodeId !== undefined && nodeId !== '' && !/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) {
    throw new Error(
      `Invalid QUOLL_NODE_ID "${nodeId}": give 1 to 64 letters, digits, dots, dashes or underscores, unique per node.`,
    );
  }
  const leaseMs = Number(env.QUOLL_CLUSTER_LEASE_MS ?? 15_000);
  if (!Number.isInteger(leaseMs) || leaseMs < 500 || leaseMs > 600_000) {
    throw new Error(
      `Invalid QUOLL_CLUSTER_LEASE_MS "${String(env.QUOLL_CLUSTER_LEASE_MS)}": give whole milliseconds from 500 to 600000, e.g. 15000.`,
    );
  }
  const runsTasks = input.tasks ?? true;
  if (!runsTasks && database.kind === 'sqlite') {
    throw new Error(
      '--no-tasks needs --database (or QUOLL_DATABASE_URL): on the embedded home no other node would run the tasks.',
    );
  }
  const servesInference = input.inference ?? true;
  if (!servesInference && database.kind === 'sqlite') {
    throw new Error(
      '--no-inference needs --database (or QUOLL_DATABASE_URL): on the embedded home no other node would serve the pipelines.',
    );
  }
  const nodeUrl = env.QUOLL_NODE_URL?.trim();
  if (nodeUrl !== undefined && nodeUrl !== '' && !/^https?:\/\/[^\s/]+\/?$/.test(nodeUrl)) {
    throw new Error(
      `Invalid QUOLL_NODE_URL "${nodeUrl}": give the URL other nodes reach this one at, http(s)://HOST:PORT with no path, e.g. http://10.0.0.1:8470.`,
    );
  }
  const forwardTimeoutMs = Number(env.QUOLL_FORWARD_TIMEOUT_MS ?? 60_000);
  if (!Number.isInteger(forwardTimeoutMs) || forwardTimeoutMs < 100 || forwardTimeoutMs > 3_600_000) {
    throw new Error(
      `Invalid QUOLL_FORWARD_TIMEOUT_MS "${String(env.QUOLL_FORWARD_TIMEOUT_MS)}": give whole milliseconds from 100 to 3600000, e.g. 60000.`,
    );
  }
  const homeHash = createHash('sha256').update(home).digest('hex').slice(0, 12);
  const taskUser = env.QUOLL_TASK_USER?.trim();
  return Object.freeze({
    home,
    database: Object.freeze(database),
    nodeId: nodeId === undefined || nodeId === '' ? null : nodeId,
    leaseMs,
    runsTasks,
    servesInference,
    nodeUrl: nodeUrl === undefined || nodeUrl === '' ? null : nodeUrl.replace(/\/$/, ''),
    forwardTimeoutMs,
    host: input.host ?? env.QUOLL_HOST ?? '127.0.0.1',
    port,
    maxModelBytes: 2 * 1024 ** 3,
    maxInferenceBytes:
      input.maxInferenceBytes ??
      parseByteSize('QUOLL_MAX_INFERENCE_BYTES', env.QUOLL_MAX_INFERENCE_BYTES, 256 * 1024 ** 2),
    maxInflightBodyBytes:
      input.maxInflightBodyBytes ??
      parseByteSize('QUOLL_MAX_INFLIGHT_BODY_BYTES', env.QUOLL_MAX_INFLIGHT_BODY_BYTES, 1024 ** 3),
    bodyIdleTimeoutMs:
      input.bodyIdleTimeoutMs ??
      parsePositiveInt('QUOLL_BODY_IDLE_TIMEOUT_MS', env.QUOLL_BODY_IDLE_TIMEOUT_MS, 20_000),
    bodyMinBytesPerSecond:
      input.bodyMinBytesPerSecond ?? parseByteSize('QUOLL_BODY_MIN_RATE', env.QUOLL_BODY_MIN_RATE, 16 * 1024),
    answerIdleTimeoutMs:
      input.answerIdleTimeoutMs ??
      parsePositiveInt('QUOLL_ANSWER_IDLE_TIMEOUT_MS', env.QUOLL_ANSWER_IDLE_TIMEOUT_MS, 60_000),
    answerMinBytesPerSecond:
      input.answerMinBytesPerSecond ??
      parseByteSize('QUOLL_ANSWER_MIN_RATE', env.QUOLL_ANSWER_MIN_RATE, 16 * 1024),
    decodeDeadlineMs: parsePositiveInt('QUOLL_DECODE_DEADLINE_MS', env.QUOLL_DECODE_DEADLINE_MS, 2000),
    inputChecks: env.QUOLL_BENCH_INPUT_CHECKS !== 'off',
    workersPerDeployment: workers,
    poolWorkers,
    modelMemoryBytes,
    syncHandoff: input.syncHandoff ?? parseSwitch('QUOLL_SYNC_HANDOFF', env.QUOLL_SYNC_HANDOFF) ?? true,
    inlineRuns:
      (typeof input.inlineRuns === 'string'
        ? parseSwitch('--inline-runs', input.inlineRuns)
        : input.inlineRuns) ??
      parseSwitch('QUOLL_INLINE_RUNS', env.QUOLL_INLINE_RUNS) ??
      true,
    inlineWhenContended:
      parseSwitch('QUOLL_INLINE_CONTENDED', env.QUOLL_INLINE_CONTENDED) ?? availableParallelism() === 1,
    logLevel: input.logLevel ?? env.QUOLL_LOG_LEVEL ?? 'info',
    logging: input.logging ?? true,
    inferenceLogs:
      input.inferenceLogs ?? parseSwitch('QUOLL_INFERENCE_LOGS', env.QUOLL_INFERENCE_LOGS) ?? true,
    metrics: input.metrics ?? parseSwitch('QUOLL_METRICS', env.QUOLL_METRICS) ?? true,
    metricsPublic:
      input.metricsPublic ?? parseSwitch('QUOLL_METRICS_PUBLIC', env.QUOLL_METRICS_PUBLIC) ?? false,
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
    taskWorkspaceConcurrency: Math.min(taskWorkspaceConcurrency, taskConcurrency),
    taskWarmProcesses: Math.min(taskWarmProcesses, taskConcurrency),
    runsDir:
      env.QUOLL_RUNS_DIR !== undefined && env.QUOLL_RUNS_DIR.trim() !== ''
        ? resolve(cwd, env.QUOLL_RUNS_DIR)
        : join(tmpdir(), `quoll-runs-${homeHash}`),
    taskUser: taskUser === undefined || taskUser === '' ? null : taskUser,
    npmScripts: parseNpmScripts(env.QUOLL_NPM_ALLOW_SCRIPTS, env.QUOLL_NPM_IGNORE_SCRIPTS),
    python: nonEmpty(input.python) ?? nonEmpty(env.QUOLL_PYTHON) ?? 'python3',
    sandbox: parseChoice(
      'sandbox mode (--sandbox, QUOLL_SANDBOX)',
      input.sandbox ?? env.QUOLL_SANDBOX,
      ['auto', 'bubblewrap', 'off'] as const,
      'auto',
    ),
    allowUnsandboxedRuns:
      input.allowUnsandboxedRuns ??
      parseSwitch('QUOLL_ALLOW_UNSANDBOXED_RUNS', env.QUOLL_ALLOW_UNSANDBOXED_RUNS) ??
      false,
    taskNetwork: parseChoice(
      'task network (--task-network, QUOLL_TASK_NETWORK)',
      input.taskNetwork ?? env.QUOLL_TASK_NETWORK,
      ['host', 'server-only'] as const,
      'host',
    ),
    taskLimits: Object.freeze({
      memoryBytes: parseTaskMemory(env.QUOLL_TASK_MEMORY, nodeVersion),
      processes: parseLimit('QUOLL_TASK_PROCESSES', env.QUOLL_TASK_PROCESSES, 512),
      openFiles: parseLimit('QUOLL_TASK_OPEN_FILES', env.QUOLL_TASK_OPEN_FILES, 16384),
      cpuSeconds: parseLimit('QUOLL_TASK_CPU_SECONDS', env.QUOLL_TASK_CPU_SECONDS, null),
      diskBytes:
        input.taskDisk === undefined
          ? parseOptionalByteSize('QUOLL_TASK_DISK', env.QUOLL_TASK_DISK, DEFAULT_TASK_DISK_BYTES)
          : parseOptionalByteSize('--task-disk', String(input.taskDisk), DEFAULT_TASK_DISK_BYTES),
    }),
    taskMemoryFloorBytes: nodeMemoryFloorBytes(nodeVersion),
    installDiskBytes: parseOptionalByteSize('QUOLL_INSTALL_DISK', env.QUOLL_INSTALL_DISK, 16 * 1024 ** 3),
    taskTmpBytes: parseByteSize('QUOLL_TASK_TMP_SIZE', env.QUOLL_TASK_TMP_SIZE, 1024 ** 3),
    runLogMaxBytes: parseByteSize('QUOLL_RUN_LOG_MAX_BYTES', env.QUOLL_RUN_LOG_MAX_BYTES, 64 * 1024 ** 2),
    runLogMaxBytesTotal: parseByteSize(
      'QUOLL_RUN_LOG_MAX_BYTES_TOTAL',
      env.QUOLL_RUN_LOG_MAX_BYTES_TOTAL,
      10 * 1024 ** 3,
    ),
  });
}

/**
 * `QUOLL_TASK_MEMORY`: bytes, or none. Below what the Node.js of the runs needs to start, every
 * run (and the sandbox probe) would fail before its code starts, so the server refuses it.
 */
function parseTaskMemory(raw: string | undefined, nodeVersion: string): number | null {
  if (raw !== undefined && /^(none|unlimited|off)$/i.test(raw.trim())) return null;
  const bytes = parseByteSize('QUOLL_TASK_MEMORY', raw, DEFAULT_TASK_MEMORY_BYTES);
  const floor = nodeMemoryFloorBytes(nodeVersion);
  if (floor !== null && bytes < floor) {
    throw new Error(
      `QUOLL_TASK_MEMORY "${raw ?? ''}" is below ${formatMiB(floor)}, the least Node.js ${nodeVersion} needs to start a task run (below about 570 MiB it cannot reserve its code range, and every run would fail before its code starts). Give ${formatMiB(floor)} or more (1 GiB recommended), or none.`,
    );
  }
  return bytes;
}

const formatMiB = (bytes: number): string => `${Math.round(bytes / 1024 ** 2)} MiB`;

/** A size in bytes (see {@link parseByteSize}), or null for `none`. */
function parseOptionalByteSize(name: string, raw: string | undefined, fallback: number): number | null {
  if (raw !== undefined && /^(none|unlimited|off)$/i.test(raw.trim())) return null;
  return parseByteSize(name, raw, fallback);
}

/** The trimmed value, or undefined when it is missing or blank. */
function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' ? undefined : v;
}
