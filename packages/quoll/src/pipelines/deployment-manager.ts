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
  version: string;
  steps: StepModel[];
  workers: number;
  deployedAt: string;
  /** The deployment serving requests (absent while the first load runs or after an error). */
  serving: Deployment | null;
  /** Resolves when the current deploy attempt has settled. */
  settled: Promise<void>;
  /** Bumped by every deploy/undeploy so a stale load cannot overwrite a newer one. */
  generation: number;
}

/** What the inference hot path gets for a pipeline. */
export type ServingLookup =
  | { state: 'serving'; pipelineId: number; version: string; deployment: Deployment }
  | { state: 'not_deployed' }
  | { state: 'not_ready'; status: PipelineStatusName; details: string[] };

/**
 * Loads pipeline versions into the inference engine and switches traffic between them.
 *
 * A new version of a running pipeline is loaded beside the old one; requests keep going to
 * the old deployment until the new one is ready, then the pointer swaps and the old one is
 * closed after its in-flight requests finish, so a redeploy fails no request.
 */
export class DeploymentManager {
  private readonly byPipeline = new Map<number, Entry>();
  private readonly byKey = new Map<string, Entry>();
  private stopped = false;

  constructor(
    private readonly engine: InferenceEngine,
    private readonly defaultWorkers: number,
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
   * Starts loading `version`; the returned promise settles when it is Running or Error
   * (it never rejects: the outcome is in `status()`).
   */
  deploy(
    pipeline: { id: number; workspaceId: number; name: string },
    version: PipelineVersionDto,
    steps: StepModel[],
    config: DeploymentConfigDto,
  ): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const workers = config.workers ?? this.defaultWorkers;
    const key = keyOf(pipeline.workspaceId, pipeline.name);
    const prev = this.byPipeline.get(pipeline.id);
    const generation = (prev?.generation ?? 0) + 1;
    const entry: Entry = {
      pipelineId: pipeline.id,
      key,
      // A running pipeline keeps serving its current version while the new one loads.
      status: prev?.serving && prev.status === 'Running' ? 'Running' : 'Starting',
      details:
        prev?.serving && prev.status === 'Running'
          ? [`loading version ${version.version}`]
          : ['loading models'],
      version: prev?.serving && prev.status === 'Running' ? prev.version : version.version,
      steps,
      workers,
      deployedAt: new Date(this.now()).toISOString(),
      serving: prev?.status === 'Running' ? prev.serving : null,
      settled: Promise.resolve(),
      generation,
    };
    const retired = prev && prev.status !== 'Running' ? prev.serving : null;
    this.byPipeline.set(pipeline.id, entry);
    this.byKey.set(key, entry);
    entry.settled = this.load(entry, version, retired);
    return entry.settled;
  }

  private async load(entry: Entry, version: PipelineVersionDto, retired: Deployment | null): Promise<void> {
    if (retired) await retired.close();
    let loaded: Deployment;
    try {
      loaded = await this.engine.deploy(`${entry.pipelineId}:${version.version}`, entry.steps, {
        workers: entry.workers,
      });
    } catch (err) {
      if (entry.generation !== this.byPipeline.get(entry.pipelineId)?.generation) return;
      const old = entry.serving;
      entry.serving = null;
      entry.status = 'Error';
      entry.version = version.version;
      entry.details = [
        `failed to load version ${version.version}: ${err instanceof Error ? err.message : String(err)}`,
      ];
      if (old) await old.close();
      return;
    }
    if (this.stopped || entry.generation !== this.byPipeline.get(entry.pipelineId)?.generation) {
      await loaded.close();
      return;
    }
    const old = entry.serving;
    entry.serving = loaded;
    entry.version = version.version;
    entry.status = 'Running';
    entry.details = [];
    if (old && old !== loaded) await old.close();
  }

  /** Waits for the pipeline's current deploy attempt to settle. */
  async settled(pipelineId: number): Promise<void> {
    await this.byPipeline.get(pipelineId)?.settled;
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

  status(pipelineId: number): PipelineStatusDto {
    const e = this.byPipeline.get(pipelineId);
    if (!e)
      return { status: 'Undeployed', details: [], version: null, models: [], workers: 0, deployedAt: null };
    return {
      status: e.status,
      details: [...e.details],
      version: e.version,
      models: e.steps.map((s) => ({ name: s.name, version: s.version, sha: s.sha, status: e.status })),
      workers: e.serving ? e.workers : 0,
      deployedAt: e.deployedAt,
    };
  }

  isDeployed(pipelineId: number): boolean {
    return this.byPipeline.has(pipelineId);
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
