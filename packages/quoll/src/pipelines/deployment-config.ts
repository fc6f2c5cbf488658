import type { DeploymentConfigDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';

/** The most worker threads one deployment may have (the route schema says the same). */
export const MAX_WORKERS = 64;

/** What a deployment config means on this server. */
export interface ResolvedDeploymentConfig {
  /** Worker threads to run, or undefined for the server's default. */
  workers: number | undefined;
  /** The memory limit in bytes, or null when none was given. */
  memoryBytes: number | null;
}

/** What the server can offer, for {@link resolveDeploymentConfig}. */
export interface DeploymentCapacity {
  /**
   * The most replicas a pipeline can have: 1 on an embedded server (one node); null on a
   * node of a cluster, which places replicas across its inference nodes (fewer while fewer
   * are up).
   */
  maxReplicas: number | null;
  /** Worker threads a deployment gets when the config names none. */
  defaultWorkers: number;
  /** Bytes of the model files each worker loads (the sum over the steps). */
  modelBytes: number;
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/**
 * Bytes of a memory quantity as Kubernetes (and Wallaroo's `DeploymentConfigBuilder().memory()`)
 * write it: `"1Gi"`, `"512Mi"`, `"1.5G"`, `"800M"`, or a plain number of bytes. Throws
 * `invalid_deployment_config` naming the value and the accepted forms.
 * @example parseMemory('1Gi') // 1073741824
 */
export function parseMemory(value: string | number): number {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(text);
  const unit = UNITS[m?.[2] ?? ''];
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isFinite(bytes) || bytes <= 0) {
    throw new ApiError(
      'invalid_deployment_config',
      `config.memory ${JSON.stringify(value)} is not a memory size: give a positive number of bytes or a quantity such as "512Mi", "1Gi" or "2G".`,
      { field: 'config.memory', value },
    );
  }
  return bytes;
}

const formatBytes = (bytes: number): string =>
  bytes >= 2 ** 30
    ? `${(bytes / 2 ** 30).toFixed(2)} GiB`
    : bytes >= 2 ** 20
      ? `${(bytes / 2 ** 20).toFixed(1)} MiB`
      : bytes >= 1024
        ? `${Math.ceil(bytes / 1024)} KiB`
        : `${bytes} bytes`;

/**
 * Maps a deployment config, including the names Wallaroo's tutorials use, onto what this
 * server runs, and refuses what it cannot honour rather than ignoring it:
 *
 * - `workers`: worker threads serving the pipeline (each runs one onnxruntime thread).
 * - `cpus`: cores the pipeline may use. Without `workers` it sets the worker count,
 *   `ceil(cpus)` (a fraction of a core still takes one thread; the thread's share of the
 *   core is not capped). With `workers` both must agree.
 * - `memory`: a limit on what the pipeline's models take: every worker holds each model, so
 *   the deploy is refused when `workers × model bytes` is over it. It is checked here, not
 *   enforced on onnxruntime's own allocations.
 * - `replicas`: how many nodes serve the pipeline: only 1 on an embedded server; any count on
 *   a cluster, placed on that many inference nodes (all of them when not given).
 *
 * Throws `invalid_deployment_config` naming the field, the value and what would fit.
 */
export function resolveDeploymentConfig(
  config: DeploymentConfigDto,
  capacity: DeploymentCapacity,
): ResolvedDeploymentConfig {
  const { replicas, cpus, workers } = config;
  if (replicas !== undefined && capacity.maxReplicas !== null && replicas > capacity.maxReplicas) {
    throw new ApiError(
      'invalid_deployment_config',
      `config.replicas is ${replicas}, but this server runs at most ${capacity.maxReplicas} replica of a pipeline ` +
        '(an embedded server is one node): give replicas: 1, and workers or cpus for more parallelism on it; ' +
        'for replicas on several machines, run a cluster (quoll server --database postgres://…, docs/distributed.md).',
      { field: 'config.replicas', value: replicas, max: capacity.maxReplicas },
    );
  }
  let resolvedWorkers = workers;
  if (cpus !== undefined) {
    const fromCpus = Math.min(MAX_WORKERS, Math.max(1, Math.ceil(cpus)));
    if (workers === undefined) resolvedWorkers = fromCpus;
    else if (workers > fromCpus) {
      throw new ApiError(
        'invalid_deployment_config',
        `config.workers ${workers} and config.cpus ${cpus} disagree: each worker runs on its own core, so ${workers} workers need cpus: ${workers}. ` +
          'Give one of the two, or make them agree.',
        { field: 'config.workers', workers, cpus },
      );
    }
  }
  let memoryBytes: number | null = null;
  if (config.memory !== undefined) {
    memoryBytes = parseMemory(config.memory);
    const count = resolvedWorkers ?? capacity.defaultWorkers;
    const needed = count * capacity.modelBytes;
    if (needed > memoryBytes) {
      const fits = Math.floor(memoryBytes / Math.max(1, capacity.modelBytes));
      throw new ApiError(
        'invalid_deployment_config',
        `config.memory ${JSON.stringify(config.memory)} (${formatBytes(memoryBytes)}) is too small: ${count} workers each hold the pipeline's models, ` +
          `${formatBytes(capacity.modelBytes)}, so it needs at least ${formatBytes(needed)}. ` +
          (fits >= 1
            ? `Raise memory, or give workers: ${fits} (or cpus: ${fits}).`
            : 'Raise memory to at least the models\u2019 size.'),
        { field: 'config.memory', memoryBytes, neededBytes: needed, workers: count },
      );
    }
  }
  return { workers: resolvedWorkers, memoryBytes };
}
