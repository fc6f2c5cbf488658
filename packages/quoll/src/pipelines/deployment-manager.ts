import type {
  DeploymentConfigDto,
  PipelineStatusDto,
  PipelineStatusName,
  PipelineVersionDto,
} from '@quoll/client/wire';
import type { Deployment, InferenceEngine, StepModel } from '../inference/index.js';

/** One pipeline's live deployment state. */
interface Entry {
  pipelineId: number;
  key: string;
  status: PipelineStatusName;
  details: string[];
  /** The version served (or, before the first load succeeds, the one being loaded). */
  version: string;
  /** Steps of `version`. */
  steps: StepModel[];
  workers: number;
  deployedAt: string;
  /** The deployment serving requests (absent while the first load runs or after an error). */
  serving: Deployment | null;
  /** Resolves when the current deploy attempt has settled. */
  settled: Promise<unknown>;
  /** Bumped by every deploy/undeploy so a stale load cannot overwrite a newer one. */
  generation: number;
  /** The version this node was last asked to serve (loading, serving, or failed to load). */
  target: string;
}

/** A deployment's state on this node (the pipeline service adds every node's replicas). */
export type LocalStatus = Omit<PipelineStatusDto, 'replicas'>;

/** What the inference hot path gets for a pipeline. */
export type ServingLookup =
  | { state: 'serving'; pipelineId: number; version: string; deployment: Deployment }
  | { state: 'not_deployed' }
  | { state: 'not_ready'; status: PipelineStatusName; details: string[] };

/**
 * How a deploy attempt ended: `loaded` (the version serves), `failed` (it did not load; with
 * `stillServing` the version that keeps serving) or `superseded` (a newer deploy or an
 * undeploy came first).
 */
export type DeployOutcome =
  | { result: 'loaded' }
  | { result: 'failed'; reason: string; stillServing: string | null }
  | { result: 'superseded' };

/** A pipeline as the deployment manager needs it. */
export interface DeployTarget {
  id: number;
  workspaceId: number;
  name: string;
}

/**
 * Loads pipeline versions into the inference engine and switches traffic between them.
 *
 * A new version of a running pipeline is loaded beside the old one; requests keep going to
 * the old deployment until the new one is ready, then the pointer swaps and the old one is
 * closed after its in-flight requests finish, so a redeploy fails no request. When the new
 * version fails to load, the old one keeps serving (status stays `Running`, `details` says
 * why the new version failed); a first deploy that fails is `Error` with the reason.
 */
export class DeploymentManager {
  private readonly byPipeline = new Map<number, Entry>();
  private readonly byKey = new Map<string, Entry>();
  private stopped = false;

  constructor(
    private readonly engine: InferenceEngine,
    /** Worker threads of a deployment whose config names none. */
    readonly defaultWorkers: number,
    private readonly now: () => number,
  ) {}

  /** Hot-path lookup by workspace id and pipeline name. */
  lookup(workspaceId: number, name: string): ServingLookup {
    const e = this.byKey.get(keyOf(workspaceId, name));
    if (!e) return { state: 'not_deployed' };
    if (e.serving && e.status === 'Running') {
      return { state: 'serving', pipelineId: e.pipelineId, version: e.version, deployment: e.serving };
    }
    return { state: 'not_ready', status: e.status, details: e.details };
  }

  /**
   * Starts loading `version`; the pipeline is registered at once (`Starting`, or still
   * `Running` on its current version). The returned promise settles with the outcome when
   * the load ends; it never rejects.
   */
  deploy(
    pipeline: DeployTarget,
    version: PipelineVersionDto,
    steps: StepModel[],
    config: DeploymentConfigDto,
  ): Promise<DeployOutcome> {
    if (this.stopped) return Promise.resolve({ result: 'superseded' });
    const workers = config.workers ?? this.defaultWorkers;
    const prev = this.byPipeline.get(pipeline.id);
    const running = prev?.serving && prev.status === 'Running' ? prev : null;
    const entry = this.register(
      pipeline,
      version.version,
      (prev?.generation ?? 0) + 1,
      running
        ? // A running pipeline keeps serving (and reporting) its current version while the new one loads.
          {
            ...running,
            details: [`loading version ${version.version}; serving version ${running.version} meanwhile`],
          }
        : {
            status: 'Starting',
            details: ['loading models'],
            version: version.version,
            steps,
            workers,
            deployedAt: new Date(this.now()).toISOString(),
            serving: null,
          },
    );
    const retired = prev && !running ? prev.serving : null;
    const settled = this.load(entry, version, steps, workers, retired);
    entry.settled = settled;
    return settled;
  }

  /**
   * Registers a deployment that cannot be loaded (e.g. a restored version whose model is
   * gone) as `Error` with the reason, so `status()` says why instead of `Undeployed`.
   */
  fail(pipeline: DeployTarget, version: string, reason: string): void {
    const prev = this.byPipeline.get(pipeline.id);
    const retired = prev?.serving ?? null;
    this.register(pipeline, version, (prev?.generation ?? 0) + 1, {
      status: 'Error',
      details: [reason],
      version,
      steps: [],
      workers: 0,
      deployedAt: new Date(this.now()).toISOString(),
      serving: null,
    });
    if (retired) void retired.close();
  }

  private register(
    pipeline: DeployTarget,
    target: string,
    generation: number,
    state: Pick<Entry, 'status' | 'details' | 'version' | 'steps' | 'workers' | 'deployedAt' | 'serving'>,
  ): Entry {
    const prev = this.byPipeline.get(pipeline.id);
    const key = keyOf(pipeline.workspaceId, pipeline.name);
    // A renamed pipeline must not stay reachable under its old name.
    if (prev && prev.key !== key) this.byKey.delete(prev.key);
    const entry: Entry = {
      ...state,
      pipelineId: pipeline.id,
      key,
      settled: Promise.resolve(),
      generation,
      target,
    };
    this.byPipeline.set(pipeline.id, entry);
    this.byKey.set(key, entry);
    return entry;
  }

  private async load(
    entry: Entry,
    version: PipelineVersionDto,
    steps: StepModel[],
    workers: number,
    retired: Deployment | null,
  ): Promise<DeployOutcome> {
    if (retired) await retired.close();
    let loaded: Deployment;
    try {
      loaded = await this.engine.deploy(`${entry.pipelineId}:${version.version}`, steps, { workers });
    } catch (err) {
      if (this.stopped || entry.generation !== this.byPipeline.get(entry.pipelineId)?.generation) {
        return { result: 'superseded' };
      }
      const reason = `failed to load version ${version.version}: ${err instanceof Error ? err.message : String(err)}`;
      if (entry.serving && entry.status === 'Running') {
        // A failed redeploy must not take down the healthy version: it keeps serving.
        entry.details = [`${reason}; still serving version ${entry.version}`];
        // The version that keeps serving is the one recorded again as deployed.
        entry.target = entry.version;
        return { result: 'failed', reason, stillServing: entry.version };
      }
      entry.status = 'Error';
      entry.version = version.version;
      entry.details = [reason];
      return { result: 'failed', reason, stillServing: null };
    }
    if (this.stopped || entry.generation !== this.byPipeline.get(entry.pipelineId)?.generation) {
      await loaded.close();
      return { result: 'superseded' };
    }
    const old = entry.serving;
    entry.serving = loaded;
    entry.version = version.version;
    entry.steps = steps;
    entry.workers = workers;
    entry.deployedAt = new Date(this.now()).toISOString();
    entry.status = 'Running';
    entry.details = [];
    if (old && old !== loaded) await old.close();
    return { result: 'loaded' };
  }

  /** Stops serving and frees the workers. */
  async undeploy(pipelineId: number): Promise<void> {
    const e = this.byPipeline.get(pipelineId);
    if (!e) return;
    e.generation += 1;
    this.byPipeline.delete(pipelineId);
    this.byKey.delete(e.key);
    const serving = e.serving;
    e.serving = null;
    if (serving) await serving.close();
  }

  /** The pipeline's deployment status (`Undeployed` when it has none). */
  status(pipelineId: number): LocalStatus {
    const e = this.byPipeline.get(pipelineId);
    if (!e)
      return { status: 'Undeployed', details: [], version: null, models: [], workers: 0, deployedAt: null };
    return {
      status: e.status,
      details: [...e.details],
      version: e.version,
      models: e.steps.map((s) => ({
        name: s.name,
        version: s.version,
        sha: s.sha,
        status: e.status,
        loadedOn: e.serving ? e.serving.loadedOn(s.sha) : [],
      })),
      // The pool's workers that actually serve it (a request for more than the pool has gets the pool).
      workers: e.serving ? e.serving.workerCount : 0,
      deployedAt: e.deployedAt,
    };
  }

  /**
   * The version of each pipeline this node was last asked to serve (loading, serving or
   * failed), by pipeline id: what a reconciler compares with the recorded deployments.
   */
  targets(): Map<number, string> {
    return new Map([...this.byPipeline.values()].map((e) => [e.pipelineId, e.target]));
  }

  /** Whether the pipeline has a deployment (in any status but `Undeployed`). */
  isDeployed(pipelineId: number): boolean {
    return this.byPipeline.has(pipelineId);
  }

  /** Requests waiting for a worker, per serving pipeline (for the queue-depth metric). */
  queueDepths(): Array<{ workspaceId: number; name: string; queued: number }> {
    const depths: Array<{ workspaceId: number; name: string; queued: number }> = [];
    for (const e of this.byKey.values()) {
      if (e.serving === null) continue;
      const at = e.key.indexOf('\u0000');
      depths.push({
        workspaceId: Number(e.key.slice(0, at)),
        name: e.key.slice(at + 1),
        queued: e.serving.queueDepth,
      });
    }
    return depths;
  }

  /** Closes every deployment; in-flight requests finish first. */
  async stop(): Promise<void> {
    this.stopped = true;
    const entries = [...this.byPipeline.values()];
    this.byPipeline.clear();
    this.byKey.clear();
    await Promise.all(
      entries.map(async (e) => {
        await e.settled;
        await e.serving?.close();
      }),
    );
  }
}

function keyOf(workspaceId: number, name: string): string {
  return `${workspaceId}\u0000${name}`;
}
