import type {
  DeploymentConfigDto,
  ModelVersionDto,
  PipelineDto,
  PipelineStatusDto,
  PipelineStatusName,
  PipelineStepDto,
  PipelineVersionDto,
  ReplicaStatusDto,
} from '@quoll/client/wire';
import type { Notifier } from '../cluster/index.js';
import type { StepModel } from '../inference/index.js';
import type { ModelService } from '../models/index.js';
import { ApiError } from '../errors/index.js';
import { timeOrderedId } from '../ids/index.js';
import type { IdGenerator } from '../ids/index.js';
import type { PipelineRecord, PipelineStore } from './pipeline-store.js';
import { validateName } from '../validation/index.js';
import type { DeploymentManager, LocalStatus } from './deployment-manager.js';
import { resolveDeploymentConfig, type ResolvedDeploymentConfig } from './deployment-config.js';
import type { ReplicaRecord, ReplicaStore } from './replica-store.js';

/**
 * Where this node stands among the nodes serving pipelines: its id, and on a cluster the
 * replica placement (null for the embedded home, whose one node serves every deployment).
 */
export interface ReplicaPlacement {
  nodeId: string;
  /** Where replicas are placed; null for the embedded home. */
  store: ReplicaStore | null;
  /** Whether this node loads pipelines at all (`--no-inference` turns it off). */
  servesInference: boolean;
  /** How long `deploy({ wait: true })` through a node without a replica waits for the others. @default 300000 */
  waitMs?: number;
}

/** How often a deploy through a node without a replica looks at the replicas' reports. */
const REPLICA_POLL_MS = 100;

/** A step as the API receives it: which model version to run. */
export interface StepInput {
  modelName: string;
  modelVersion: string;
}

/** Pipelines: draft steps, versions, deploy/undeploy and status. */
export class PipelineService {
  /** Bumped by every deploy and undeploy through this node (see {@link PipelineService.reconcileDeployments}). */
  private localChanges = 0;

  constructor(
    private readonly store: PipelineStore,
    private readonly models: ModelService,
    private readonly deployments: DeploymentManager,
    private readonly now: () => number,
    private readonly newId: IdGenerator = timeOrderedId,
    /**
     * The most replicas a deployment may ask for: 1 while one node serves each deployment;
     * null once a cluster places replicas across its nodes. @default 1
     */
    private readonly maxReplicas: number | null = 1,
    /** Tells the other nodes about deploys and undeploys (`quoll_deployments`). @default nobody */
    private readonly notifier: Notifier | null = null,
    /** This node, and the cluster's replica placement. @default an embedded node that serves everything */
    private readonly placement: ReplicaPlacement = { nodeId: 'local', store: null, servesInference: true },
  ) {}

  /** This node's replicas' last state and when it changed, by pipeline (see {@link ownReplica}). */
  private readonly ownStates = new Map<number, { state: string; at: string }>();

  /** Whether this node holds a replica of the pipeline (always, on the embedded home). */
  private async holds(pipelineId: number): Promise<boolean> {
    const { store, nodeId, servesInference } = this.placement;
    if (!servesInference) return false;
    if (store === null) return true;
    return (await store.pipelinesOn(nodeId)).includes(pipelineId);
  }

  /**
   * Records what this node serves for each replica it holds, so that every node's status()
   * and forwarding see it. A failure only delays it (the reconciler reports every round).
   */
  async reportReplicas(): Promise<void> {
    const { store, nodeId } = this.placement;
    if (store === null) return;
    const mine = await store.pipelinesOn(nodeId);
    await store.report(
      nodeId,
      mine.map((pipelineId) => {
        const local = this.deployments.status(pipelineId);
        return {
          pipelineId,
          status: local.status === 'Undeployed' ? 'Starting' : local.status,
          version: local.version,
          details:
            local.status === 'Undeployed'
              ? ['placed on this node; waiting for it to load the pipeline']
              : local.details,
          workers: local.workers,
        };
      }),
    );
  }

  /** Tells every node that a pipeline's deployment changed; a failure only delays them. */
  private async announce(pipelineId: number): Promise<void> {
    try {
      await this.notifier?.publish('quoll_deployments', String(pipelineId));
    } catch {
      // Every node also reconciles on a timer.
    }
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  /** Creates the pipeline, or returns the existing one with that name. */
  async build(workspaceId: number, name: unknown): Promise<PipelineDto> {
    const { pipeline } = await this.store.ensurePipeline(
      workspaceId,
      validateName('pipeline', name),
      this.iso(),
    );
    return this.toDtoOf(pipeline);
  }

  async get(workspaceId: number, name: string): Promise<PipelineDto> {
    return this.toDtoOf(await this.record(workspaceId, name));
  }

  async list(workspaceId: number): Promise<PipelineDto[]> {
    const pipelines = await this.store.listPipelines(workspaceId);
    // One query for every pipeline's versions, not one per pipeline.
    const versions = await this.store.listVersionIds(pipelines.map((p) => p.id));
    const deployed = await this.deployedIds();
    return pipelines.map((p) => this.toDto(p, versions.get(p.id) ?? [], deployed));
  }

  /**
   * The pipelines deployed in the instance: on a cluster the recorded deployments (a node
   * without a replica still says deployed); null on the embedded home (this node's own).
   */
  private async deployedIds(): Promise<Set<number> | null> {
    if (this.placement.store === null) return null;
    return new Set((await this.store.listDeployments()).map((d) => d.pipelineId));
  }

  /**
   * Pipelines of several workspaces (those a caller can see), oldest first, optionally only
   * those with an exact `name` (names are unique per workspace, so at most one each).
   */
  async listIn(workspaceIds: readonly number[], filter: { name?: string } = {}): Promise<PipelineDto[]> {
    const wanted = new Set(workspaceIds);
    const all =
      workspaceIds.length === 1
        ? await this.store.listPipelines(workspaceIds[0])
        : await this.store.listPipelines();
    const pipelines = all.filter(
      (p) => wanted.has(p.workspaceId) && (filter.name === undefined || p.name === filter.name),
    );
    const versions = await this.store.listVersionIds(pipelines.map((p) => p.id));
    const deployed = await this.deployedIds();
    return pipelines.map((p) => this.toDto(p, versions.get(p.id) ?? [], deployed));
  }

  /** Replaces the draft steps; every model version must exist in the workspace. */
  async setSteps(workspaceId: number, name: string, steps: StepInput[]): Promise<PipelineDto> {
    const p = await this.record(workspaceId, name);
    const resolved: PipelineStepDto[] = [];
    for (const s of steps) {
      const m = await this.models.get(workspaceId, s.modelName, s.modelVersion);
      resolved.push({ model: { name: m.name, version: m.version, sha: m.sha } });
    }
    const updated = await this.store.setPipelineSteps(p.id, resolved, this.iso());
    if (updated === null) throw notFound(name);
    return this.toDtoOf(updated);
  }

  async versions(workspaceId: number, name: string): Promise<PipelineVersionDto[]> {
    return this.store.listPipelineVersions((await this.record(workspaceId, name)).id);
  }

  /**
   * Persists the draft steps as a new version, with each model's current config (so a later
   * `configure()` does not change what this version runs), and loads it. Steps equal to the
   * newest version's reuse that version; when it is already running with the same config,
   * nothing is reloaded. With `wait`, answers
   * once the load has settled: `Running` on the new version, `Error` with the reason (first
   * deploy), or — when a redeploy of a running pipeline fails — still `Running` on the old
   * version with `details` saying why the new one failed. The config is checked first
   * (`invalid_deployment_config`, see {@link resolveDeploymentConfig}) and nothing is written
   * when it cannot be honoured.
   */
  async deploy(
    workspaceId: number,
    name: string,
    config: DeploymentConfigDto,
    wait: boolean,
  ): Promise<PipelineStatusDto> {
    const p = await this.record(workspaceId, name);
    if (p.steps.length === 0) {
      throw new ApiError(
        'invalid_step',
        `Pipeline "${name}" has no steps; add one with addModelStep(model) before deploy().`,
        { name },
      );
    }
    const models = await this.stepVersions(workspaceId, p.steps);
    const resolved = this.resolveConfig(config, models);
    const snapshot: PipelineStepDto[] = models.map((m) => ({
      model: { name: m.name, version: m.version, sha: m.sha },
      config: m.config,
    }));
    // The model files are on this node (fetched and checked, on a node of a cluster) before
    // anything is recorded; a node that serves no inference never fetches them.
    const steps = this.placement.servesInference ? await this.stepModels(models, snapshot) : null;
    // The version and the desired deployment are written together, so a crash or another
    // node never sees a deployment pointing at a version that does not exist.
    this.localChanges++;
    const { version, previous, reused } = await this.store.recordDeploy({
      pipelineId: p.id,
      version: this.newId(),
      steps: snapshot,
      config,
      at: this.iso(),
    });
    const { store } = this.placement;
    if (store !== null) await store.rebalance();
    if (steps === null || !(await this.holds(p.id))) {
      // Another node holds the replicas: it loads them on the message (or its next round).
      await this.announce(p.id);
      if (wait) await this.waitForReplicas(p.id, version.version);
      return this.status(workspaceId, name);
    }
    const current = this.deployments.status(p.id);
    if (
      reused &&
      previous?.version === version.version &&
      sameLoad(previous.config, config) &&
      current.status === 'Running' &&
      current.version === version.version
    ) {
      // The same version with the same config already serves: nothing to load.
      await this.announce(p.id);
      return this.status(workspaceId, name);
    }
    this.localChanges++;
    const done = this.deployments
      .deploy(p, version, steps, workersOnly(resolved.workers))
      .then(async (outcome) => {
        // A redeploy that failed leaves the old version serving: it stays the one a restart
        // restores (unless a newer deploy has been recorded meanwhile: compare and set).
        if (outcome.result === 'failed' && outcome.stillServing !== null && previous !== null) {
          await this.store.restoreDeploymentIfCurrent(p.id, version.version, previous);
        }
        await this.reportReplicas().catch(() => undefined);
      });
    await this.announce(p.id);
    if (wait) {
      await done;
      await this.waitForReplicas(p.id, version.version);
    } else void done.catch(() => undefined);
    return this.status(workspaceId, name);
  }

  /**
   * Waits (bounded) until every replica of the pipeline has settled on `version` (`Running`,
   * or `Error`), or another deploy replaced it; nothing on the embedded home.
   */
  private async waitForReplicas(pipelineId: number, version: string): Promise<void> {
    const { store } = this.placement;
    if (store === null) return;
    const giveUp = this.now() + (this.placement.waitMs ?? 300_000);
    for (;;) {
      const replicas = await store.replicasOf(pipelineId);
      const settled = replicas.every(
        (r) => r.nodeStatus !== 'up' || (r.version === version && r.status !== 'Starting'),
      );
      if (settled || this.now() >= giveUp) return;
      if ((await this.store.getDeployment(pipelineId))?.version !== version) return;
      await new Promise((resolve) => setTimeout(resolve, REPLICA_POLL_MS));
    }
  }

  async undeploy(workspaceId: number, name: string): Promise<PipelineStatusDto> {
    const p = await this.record(workspaceId, name);
    this.localChanges++;
    await this.store.deleteDeployment(p.id);
    if (this.placement.store !== null) await this.placement.store.rebalance();
    this.localChanges++;
    await this.announce(p.id);
    await this.deployments.undeploy(p.id);
    return this.status(workspaceId, name);
  }

  /**
   * The deployment's status with each node's replica. A node holding a replica answers with
   * its own state (as an embedded server does); a node without one with the best replica's
   * (Running, else Starting, else Error), so every node answers alike.
   */
  async status(workspaceId: number, name: string): Promise<PipelineStatusDto> {
    const p = await this.record(workspaceId, name);
    const local = this.deployments.status(p.id);
    const { store, nodeId } = this.placement;
    if (store === null) {
      return { ...local, replicas: local.status === 'Undeployed' ? [] : [this.ownReplica(p.id, local)] };
    }
    const [deployment, recorded] = await Promise.all([
      this.store.getDeployment(p.id),
      store.replicasOf(p.id),
    ]);
    const replicas = recorded.map((r) =>
      r.nodeId === nodeId && local.status !== 'Undeployed' ? this.ownReplica(p.id, local) : toReplicaDto(r),
    );
    if (deployment === null) return { ...local, replicas };
    const asked = deployment.config.replicas;
    const placedNote =
      asked !== undefined && replicas.length < asked
        ? [`${replicas.length} of ${asked} replicas placed: only ${replicas.length} inference nodes are up`]
        : [];
    if (local.status !== 'Undeployed')
      return { ...local, details: [...local.details, ...placedNote], replicas };
    const best = bestReplica(replicas);
    const version = best?.version ?? deployment.version;
    const steps = (await this.store.getPipelineVersion(version))?.steps ?? [];
    const status: PipelineStatusName = best?.status ?? 'Starting';
    const details =
      best === null
        ? ['no inference node is up to serve it; it is placed on the first that joins']
        : [
            `served by ${replicas.filter((r) => r.status === 'Running').length} of ${replicas.length} replicas`,
            ...best.details,
          ];
    return {
      status,
      details: [...details, ...placedNote],
      version,
      // No replica here: this node's pool holds none of its models.
      models: steps.map((s) => ({
        name: s.model.name,
        version: s.model.version,
        sha: s.model.sha,
        status,
        loadedOn: [],
      })),
      workers: best?.workers ?? 0,
      deployedAt: deployment.deployedAt,
      replicas,
    };
  }

  /**
   * This node's replica as it is now; `updatedAt` is when its state (status, version, details,
   * workers) last changed, so asking twice for an unchanged deployment answers the same.
   */
  private ownReplica(pipelineId: number, local: LocalStatus): ReplicaStatusDto {
    const state = JSON.stringify([local.status, local.version, local.details, local.workers]);
    let seen = this.ownStates.get(pipelineId);
    if (seen?.state !== state) {
      seen = { state, at: this.iso() };
      this.ownStates.set(pipelineId, seen);
    }
    return {
      node: this.placement.nodeId,
      nodeStatus: 'up',
      status: local.status,
      version: local.version,
      details: local.details,
      workers: local.workers,
      updatedAt: seen.at,
    };
  }

  /**
   * Registers what was deployed when the server last stopped and starts loading it. Resolves
   * once every deployment is registered (`Starting`, or `Error` with the reason when its
   * version or a model is gone); the models load in the background.
   */
  async restoreDeployments(): Promise<void> {
    await this.reconcileDeployments();
  }

  /**
   * Makes this node serve what the shared database says is deployed: loads every recorded
   * deployment whose version this node does not serve (or load) yet, and undeploys pipelines
   * no longer recorded. Resolves once each change is registered (loads go on in the
   * background). A round that overlaps a deploy or undeploy made through this node stops
   * (it may have read the state before that change); the next round catches up.
   * @returns how many pipelines were loaded or undeployed.
   */
  async reconcileDeployments(): Promise<number> {
    const before = this.localChanges;
    const { store, nodeId, servesInference } = this.placement;
    // Any node may place replicas (one at a time, in the database): a node that died or
    // joined, or a deployment made meanwhile, is placed by whichever node looks first.
    if (store !== null) {
      const plan = await store.rebalance();
      // The nodes given or relieved of a replica hear it now, not at their next round.
      for (const id of new Set([...plan.add, ...plan.remove].map((slot) => slot.pipelineId)))
        await this.announce(id);
    }
    const all = await this.store.listDeployments();
    // This node serves what is placed on it (on the embedded home: everything).
    const mine = !servesInference
      ? new Set<number>()
      : store === null
        ? null
        : new Set(await store.pipelinesOn(nodeId));
    const recorded = mine === null ? all : all.filter((d) => mine.has(d.pipelineId));
    if (this.localChanges !== before) return 0;
    const targets = this.deployments.targets();
    let changed = 0;
    for (const pipelineId of targets.keys()) {
      if (recorded.some((d) => d.pipelineId === pipelineId)) continue;
      await this.deployments.undeploy(pipelineId);
      changed++;
    }
    for (const d of recorded) {
      if (targets.get(d.pipelineId) === d.version) continue;
      if (this.localChanges !== before) return changed;
      const p = await this.store.getPipelineById(d.pipelineId);
      if (!p) continue;
      const v = await this.store.getPipelineVersion(d.version);
      if (!v) {
        this.deployments.fail(p, d.version, `version ${d.version} to restore no longer exists; deploy again`);
        continue;
      }
      let steps: StepModel[];
      let workers: number | undefined;
      try {
        const models = await this.stepVersions(p.workspaceId, v.steps);
        // A config this server cannot honour (e.g. a cluster's replicas on one node) is an Error too.
        workers = this.resolveConfig(d.config, models).workers;
        steps = await this.stepModels(models, v.steps);
      } catch (err) {
        this.deployments.fail(
          p,
          v.version,
          `failed to restore version ${v.version}: ${err instanceof Error ? err.message : String(err)}`,
        );
        continue;
      }
      if (this.localChanges !== before) return changed;
      // Once loaded (or failed), the other nodes hear of it at once, not at the next round.
      void this.deployments
        .deploy(p, v, steps, workersOnly(workers))
        .then(() => this.reportReplicas())
        .catch(() => undefined);
      changed++;
    }
    await this.reportReplicas();
    return changed;
  }

  /** What a deployment config means here, for these step models; throws `invalid_deployment_config`. */
  private resolveConfig(
    config: DeploymentConfigDto,
    models: readonly ModelVersionDto[],
  ): ResolvedDeploymentConfig {
    return resolveDeploymentConfig(config, {
      maxReplicas: this.maxReplicas,
      defaultWorkers: this.deployments.defaultWorkers,
      modelBytes: models.reduce((sum, m) => sum + m.sizeBytes, 0),
    });
  }

  /** The model version of every step (each must still exist in the workspace). */
  private async stepVersions(workspaceId: number, steps: PipelineStepDto[]): Promise<ModelVersionDto[]> {
    const out: ModelVersionDto[] = [];
    for (const s of steps) out.push(await this.models.get(workspaceId, s.model.name, s.model.version));
    return out;
  }

  /**
   * What the engine loads for each step. The config is the one the version snapshotted;
   * versions persisted before snapshots existed fall back to the model's current config.
   */
  private async stepModels(models: ModelVersionDto[], steps: PipelineStepDto[]): Promise<StepModel[]> {
    return Promise.all(
      models.map(async (m, i) => ({
        name: m.name,
        version: m.version,
        sha: m.sha,
        path: await this.models.localPath(m),
        inputs: m.inputs,
        outputs: m.outputs,
        config: steps[i]?.config ?? m.config,
      })),
    );
  }

  private async record(workspaceId: number, name: string): Promise<PipelineRecord> {
    const p = await this.store.getPipeline(workspaceId, name);
    if (!p) throw notFound(name);
    return p;
  }

  private async toDtoOf(p: PipelineRecord): Promise<PipelineDto> {
    const versions = await this.store.listVersionIds([p.id]);
    const deployed =
      this.placement.store === null ? null : new Set((await this.store.getDeployment(p.id)) ? [p.id] : []);
    return this.toDto(p, versions.get(p.id) ?? [], deployed);
  }

  private toDto(p: PipelineRecord, versions: string[], deployed: Set<number> | null): PipelineDto {
    return {
      id: p.id,
      name: p.name,
      workspaceId: p.workspaceId,
      createdAt: p.createdAt,
      updatedAt: p.updatedAt,
      steps: p.steps,
      versions,
      deployed: deployed === null ? this.deployments.isDeployed(p.id) : deployed.has(p.id),
      inferencePath: `/v1/workspaces/${p.workspaceId}/pipelines/${encodeURIComponent(p.name)}/infer`,
    };
  }
}

/** The config the deployment manager runs: the worker count, or the server's default. */
function workersOnly(workers: number | undefined): DeploymentConfigDto {
  return workers === undefined ? {} : { workers };
}

/**
 * Whether two deployment configs load the same thing on a node (field order aside; the
 * replica count changes where it is loaded, not what).
 */
function sameLoad(a: DeploymentConfigDto, b: DeploymentConfigDto): boolean {
  const norm = (c: DeploymentConfigDto): string =>
    JSON.stringify([c.workers ?? null, c.cpus ?? null, c.memory ?? null]);
  return norm(a) === norm(b);
}

const REPLICA_RANK: Record<PipelineStatusName, number> = { Running: 0, Starting: 1, Error: 2, Undeployed: 3 };

/** The replica whose state the pipeline's status reports: Running, else Starting, else Error. */
function bestReplica(replicas: readonly ReplicaStatusDto[]): ReplicaStatusDto | null {
  const live = replicas.filter((r) => r.nodeStatus === 'up');
  return [...live].sort((a, b) => REPLICA_RANK[a.status] - REPLICA_RANK[b.status])[0] ?? null;
}

function toReplicaDto(r: ReplicaRecord): ReplicaStatusDto {
  return {
    node: r.nodeId,
    nodeStatus: r.nodeStatus,
    status: r.status,
    version: r.version,
    details: r.details,
    workers: r.workers,
    updatedAt: r.updatedAt,
  };
}

function notFound(name: string): ApiError {
  return new ApiError(
    'pipeline_not_found',
    `No pipeline named "${name}" in this workspace; create it with buildPipeline("${name}").`,
    { name },
  );
}
