import type { Table } from 'apache-arrow';
import { LOG_APPEND_ADMITTED } from '../logs/index.js';
import type { LogRowSource } from '../logs/index.js';
import type { Principal } from '../auth/index.js';
import { ApiError } from '../errors/index.js';
import type {
  Deployment,
  EncodedInference,
  InferenceCodec,
  RawInferenceBody,
  ServedModel,
} from '../inference/index.js';
import type { DeploymentManager, PipelineService, ServingLookup } from '../pipelines/index.js';
import { canSeeWorkspace, DEFAULT_WORKSPACE_NAME } from '../workspaces/index.js';
import type { WorkspaceService } from '../workspaces/index.js';
import type { ForwardTarget, ReplicaDirectory } from './replica-directory.js';

/**
 * Which pipeline a request names: by workspace id (Quoll's `/v1` routes), or by workspace name,
 * `null` meaning the caller's current workspace (the Open Inference Protocol's routes: the
 * token's own workspace, or the default one for admin tokens).
 */
export type PipelineAddress =
  { workspaceId: number; pipeline: string } | { workspaceName: string | null; pipeline: string };

/**
 * Where the inference log rows go (the `InferenceLogStore`): the result's Arrow table, or for
 * JSON records a `LogRowSource` that writes the same rows straight into the store's staging
 * (its `toTable()` gives them as a table). Once `append` settles the caller releases the
 * result: a sink that keeps the rows' buffers past that must copy them or retain their
 * `BufferLease` (the store's staging does: it copies small batches and holds the lease of
 * those it keeps until its writer confirms them). An append that answers `LOG_APPEND_ADMITTED`
 * (queued at once) is not awaited.
 */
export interface InferenceLogSink {
  append(pipelineId: number, rows: Table | LogRowSource): Promise<void>;
}

/** Where inference counts go (the server's `/metrics`). */
export interface InferenceMetricsSink {
  rowsInferred(workspaceId: number, pipeline: string, rows: number): void;
}

/** Collaborators of {@link InferenceService}. */
export interface InferenceServiceOptions {
  deployments: DeploymentManager;
  pipelines: PipelineService;
  workspaces: WorkspaceService;
  logs: InferenceLogSink;
  /** Counts the rows inferred per pipeline. @default none */
  metrics?: InferenceMetricsSink;
  /** Whether every inference is logged. @default true */
  logging?: boolean;
  /** Epoch milliseconds stamped on results. @default Date.now */
  now?: () => number;
  /**
   * On a node of a cluster: where the replicas of pipelines this node does not serve are, so
   * their requests can be forwarded. @default none (the embedded home serves everything itself)
   */
  replicas?: ReplicaDirectory;
}

/**
 * Where a request is answered: here, or by one of `targets` (in that order: the first that
 * can be reached), because this node holds no serving replica of the pipeline.
 */
export type InferenceRoute = { kind: 'local' } | { kind: 'forward'; targets: ForwardTarget[] };

/** A served pipeline, resolved for one request. */
interface Serving {
  workspaceId: number;
  pipelineId: number;
  deployment: Deployment;
  served: ServedModel;
}

/** Workspace ids by name; workspaces are never renamed or deleted, so entries stay true. */
const MAX_CACHED_WORKSPACES = 1024;

/**
 * The one inference use case: find the pipeline the caller may see, read the body with a
 * codec, run the deployment, log the rows, write the answer with the same codec. Quoll's
 * `/v1` endpoint and the Open Inference Protocol's `/v2` endpoint both call it; only their
 * codecs differ, so both are served, checked and logged alike.
 *
 * @example
 * const answer = await service.infer(principal, { workspaceId: 1, pipeline: 'houseprice' },
 *   codecs.json, { contentType: 'application/json', body, header: () => undefined });
 */
export class InferenceService {
  readonly #deployments: DeploymentManager;
  readonly #pipelines: PipelineService;
  readonly #workspaces: WorkspaceService;
  readonly #logs: InferenceLogSink;
  readonly #metrics: InferenceMetricsSink | null;
  readonly #logging: boolean;
  readonly #now: () => number;
  readonly #workspaceIds = new Map<string, number>();
  readonly #served = new WeakMap<Deployment, ServedModel>();
  readonly #replicas: ReplicaDirectory | null;

  constructor(options: InferenceServiceOptions) {
    this.#deployments = options.deployments;
    this.#pipelines = options.pipelines;
    this.#workspaces = options.workspaces;
    this.#logs = options.logs;
    this.#metrics = options.metrics ?? null;
    this.#logging = options.logging ?? true;
    this.#now = options.now ?? Date.now;
    this.#replicas = options.replicas ?? null;
  }

  /**
   * Whether this node answers the request itself or forwards it. Local when it serves the
   * pipeline, on the embedded home, and for what no node serves (the local path then says
   * why: not found, not deployed); forwarded to the nodes whose replica is Running. A request
   * that was already forwarded (`forwarded`) is never forwarded again. Rejects with
   * `replica_unavailable` (503) naming the nodes holding replicas when none of them can take
   * it now (they are loading, failed, or lost).
   */
  async route(principal: Principal, address: PipelineAddress, forwarded: boolean): Promise<InferenceRoute> {
    if (this.#replicas === null) return { kind: 'local' };
    const workspaceId = await this.#workspaceOf(principal, address);
    const found = this.#deployments.lookup(workspaceId, address.pipeline);
    if (found.state === 'serving') return { kind: 'local' };
    const replicas = await this.#replicas.replicas(workspaceId, address.pipeline);
    if (replicas.length === 0) return { kind: 'local' };
    const targets = forwarded ? [] : this.#replicas.targetsOf(replicas);
    if (targets.length > 0) return { kind: 'forward', targets };
    // This node holds a replica still loading (or failed): it says so itself.
    if (found.state === 'not_ready') return { kind: 'local' };
    // The pipeline must exist and be visible before its nodes are named.
    if ('workspaceId' in address) await this.#workspaces.getById(principal, workspaceId);
    await this.#pipelines.get(workspaceId, address.pipeline);
    const nodes = replicas.map((r) => ({
      node: r.nodeId,
      url: r.nodeUrl,
      nodeStatus: r.nodeStatus,
      status: r.status,
    }));
    throw new ApiError(
      'replica_unavailable',
      `Pipeline "${address.pipeline}" is served by ${nodes
        .map((n) => `node ${n.node} (${n.url}, ${n.nodeStatus === 'up' ? n.status : `node ${n.nodeStatus}`})`)
        .join(
          ', ',
        )}, and none of them can take the request now${forwarded ? ' (it was forwarded here by another node)' : ''}; retry shortly, or send it to a node that serves the pipeline.`,
      { name: address.pipeline, nodes },
    );
  }

  /**
   * Runs one request on a deployed pipeline and answers in the codec's format. Rejects with
   * `workspace_not_found` / `pipeline_not_found` (unknown or not visible), `pipeline_not_deployed`,
   * `pipeline_not_ready`, the codec's and the engine's input errors, or `inference_failed`.
   * The rows are queued in the inference log before it resolves (read-your-writes).
   * `onServing` hears the workspace id once the pipeline is found serving (before the body is
   * read), so the caller can label what follows with the pipeline.
   */
  async infer<Request>(
    principal: Principal,
    address: PipelineAddress,
    codec: InferenceCodec<Request>,
    raw: RawInferenceBody,
    onServing?: (workspaceId: number) => void,
  ): Promise<EncodedInference> {
    const now = this.#now();
    // Without a promise when the pipeline is found serving at once (nearly every request): the two
    // async look-ups and their awaits were ≈ 0.7 KiB of the ≈ 26 KiB the HTTP thread allocates
    // per JSON batch-1 request (bench/heap-sample-probe.ts; docs/benchmarks.md, arrowgc lane).
    const { workspaceId, pipelineId, deployment, served } =
      this.#servingNow(principal, address) ?? (await this.#serving(principal, address));
    onServing?.(workspaceId);
    // A codec's answer is awaited only when it is a promise: a small answer is encoded at once,
    // and each await of a plain value would still cost a microtask and a promise per request.
    const decoded = codec.decode(raw, served);
    const { input, request, answerTable } = decoded instanceof Promise ? await decoded : decoded;
    const result = await deployment.infer(input, now, this.#logging, answerTable === true);
    try {
      this.#metrics?.rowsInferred(workspaceId, address.pipeline, result.rowCount);
      const encoded = codec.encode(result, request, served);
      const answer = encoded instanceof Promise ? await encoded : encoded;
      // Queued before the answer leaves, so a logs query after the answer sees the rows. The
      // append only enqueues (the disk write is the log writer's); it waits only when the
      // writer's queue is full, which slows callers instead of dropping rows.
      if (this.#logging) {
        const queued = this.#logs.append(pipelineId, result.logRows());
        // Nearly always queued at once: no await, so no microtask nor suspended state per request.
        if (queued !== LOG_APPEND_ADMITTED) await queued;
      }
      return answer;
    } finally {
      // The answer is encoded (its own bytes) and the log has copied the rows or holds what it
      // keeps: the input's buffers can go back to the worker that lent them.
      result.release();
    }
  }

  /** What a deployed pipeline takes and answers (its first step's inputs, its last step's outputs). */
  async describe(principal: Principal, address: PipelineAddress): Promise<ServedModel> {
    return (await this.#serving(principal, address)).served;
  }

  /**
   * {@link #serving}'s answer when it needs no look-up (the workspace named by id and visible, or
   * known to this caller, and the pipeline serving); otherwise undefined, and `#serving` answers
   * or says why not.
   */
  #servingNow(principal: Principal, address: PipelineAddress): Serving | undefined {
    const workspaceId = this.#workspaceNow(principal, address);
    if (workspaceId === undefined) return undefined;
    const found = this.#deployments.lookup(workspaceId, address.pipeline);
    return found.state === 'serving' ? this.#servingOf(workspaceId, address.pipeline, found) : undefined;
  }

  /** What both paths answer for a serving pipeline (built in one place, so they cannot drift). */
  #servingOf(
    workspaceId: number,
    pipeline: string,
    found: Extract<ServingLookup, { state: 'serving' }>,
  ): Serving {
    return {
      workspaceId,
      pipelineId: found.pipelineId,
      deployment: found.deployment,
      served: this.#servedModel(pipeline, found.version, found.deployment),
    };
  }

  async #serving(principal: Principal, address: PipelineAddress): Promise<Serving> {
    const workspaceId = await this.#workspaceOf(principal, address);
    const found = this.#deployments.lookup(workspaceId, address.pipeline);
    if (found.state === 'serving') return this.#servingOf(workspaceId, address.pipeline, found);
    // Slow path: say precisely why (unknown workspace or pipeline, not deployed, or not ready).
    if ('workspaceId' in address) await this.#workspaces.getById(principal, workspaceId);
    await this.#pipelines.get(workspaceId, address.pipeline);
    if (found.state === 'not_deployed') {
      throw new ApiError(
        'pipeline_not_deployed',
        `Pipeline "${address.pipeline}" is not deployed; call deploy() first.`,
        { name: address.pipeline },
      );
    }
    throw new ApiError(
      'pipeline_not_ready',
      `Pipeline "${address.pipeline}" is ${found.status}, not Running${found.details.length ? `: ${found.details.join('; ')}` : ''}.`,
      { status: found.status, details: found.details },
    );
  }

  /** The workspace of `address` when no look-up is needed and the caller may see it; else undefined. */
  #workspaceNow(principal: Principal, address: PipelineAddress): number | undefined {
    if ('workspaceId' in address)
      return canSeeWorkspace(principal, address.workspaceId) ? address.workspaceId : undefined;
    if (address.workspaceName === null && principal.kind === 'workspace') return principal.workspaceId;
    const cached = this.#workspaceIds.get(address.workspaceName ?? DEFAULT_WORKSPACE_NAME);
    return cached !== undefined && canSeeWorkspace(principal, cached) ? cached : undefined;
  }

  async #workspaceOf(principal: Principal, address: PipelineAddress): Promise<number> {
    const known = this.#workspaceNow(principal, address);
    if (known !== undefined) return known;
    if ('workspaceId' in address)
      throw new ApiError('workspace_not_found', `No workspace with id ${address.workspaceId} exists.`, {
        id: address.workspaceId,
      });
    const name = address.workspaceName ?? DEFAULT_WORKSPACE_NAME;
    // Not cached, or not visible to this caller: the service answers (and words the error).
    const workspace = await this.#workspaces.getByName(principal, name);
    if (this.#workspaceIds.size >= MAX_CACHED_WORKSPACES) this.#workspaceIds.clear();
    this.#workspaceIds.set(name, workspace.id);
    return workspace.id;
  }

  #servedModel(name: string, version: string, deployment: Deployment): ServedModel {
    let served = this.#served.get(deployment);
    // A pipeline renamed while deployed keeps its deployment: rebuild for the new name.
    if (!served || served.name !== name) {
      const steps = deployment.steps;
      const first = steps[0]!;
      const last = steps[steps.length - 1]!;
      const fields = first.config.tensorFields ?? [];
      served = Object.freeze({
        name,
        version,
        inputs: first.inputs.map((input, i) => ({ ...input, name: fields[i] ?? input.name })),
        outputs: last.outputs,
      });
      this.#served.set(deployment, served);
    }
    return served;
  }
}
