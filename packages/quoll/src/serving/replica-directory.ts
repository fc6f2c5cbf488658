import type { Notifier } from '../cluster/index.js';
import type { ReplicaRecord, ReplicaStore } from '../pipelines/index.js';

/** A node a request can be forwarded to. */
export interface ForwardTarget {
  nodeId: string;
  /** The node's advertised URL. */
  url: string;
}

/** Options of {@link ReplicaDirectory}. */
export interface ReplicaDirectoryOptions {
  store: ReplicaStore;
  notifier: Notifier;
  /** This node (never a target of its own forwarding). */
  nodeId: string;
  /** How long a pipeline's replicas are reused without asking the database again, ms. @default 1000 */
  ttlMs?: number;
  /** How long a node that could not be reached is tried last, ms. @default 5000 */
  avoidMs?: number;
  /** @default Date.now */
  now?: () => number;
}

interface Cached {
  at: number;
  replicas: Promise<ReplicaRecord[]>;
}

/** Entries kept at most (pipelines looked up recently); older ones are dropped first. */
const MAX_CACHED = 1024;

/**
 * Where a cluster node sends an inference for a pipeline it holds no replica of: the nodes
 * that hold one and report it `Running`, in turn (round robin), a node that could not be
 * reached recently last. Replicas are read from the database and reused for a second at most;
 * any message on `quoll_deployments` or `quoll_nodes` (a deploy, a move, a node lost) drops
 * what was read.
 * @example
 * const directory = new ReplicaDirectory({ store: stores.replicas, notifier, nodeId });
 * await directory.start();
 * const targets = directory.targetsOf(await directory.replicas(1, 'houseprice'));
 * await directory.stop();
 */
export class ReplicaDirectory {
  readonly #options: ReplicaDirectoryOptions;
  readonly #now: () => number;
  readonly #cache = new Map<string, Cached>();
  readonly #avoid = new Map<string, number>();
  #turn = 0;
  #unsubscribe: Array<() => void> = [];

  constructor(options: ReplicaDirectoryOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Listens for the messages that make what was read stale. */
  async start(): Promise<void> {
    const drop = (): void => this.#cache.clear();
    // What was read may be stale after the listening connection re-opened (messages lost).
    for (const channel of ['quoll_deployments', 'quoll_nodes'] as const)
      this.#unsubscribe.push(await this.#options.notifier.subscribe(channel, drop, { onCatchUp: drop }));
  }

  /** Stops listening. Idempotent. */
  stop(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#cache.clear();
    return Promise.resolve();
  }

  /** Whether it listens (false once stopped). */
  get active(): boolean {
    return this.#unsubscribe.length > 0;
  }

  /** The replicas of a pipeline (by workspace id and name), at most `ttlMs` old. */
  replicas(workspaceId: number, name: string): Promise<ReplicaRecord[]> {
    const key = `${workspaceId}\u0000${name}`;
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit !== undefined && now - hit.at < (this.#options.ttlMs ?? 1_000)) return hit.replicas;
    if (this.#cache.size >= MAX_CACHED) this.#cache.clear();
    const replicas = this.#options.store.replicasByName(workspaceId, name);
    this.#cache.set(key, { at: now, replicas });
    // A failed read is not kept: the next request asks again.
    replicas.catch(() => this.#cache.delete(key));
    return replicas;
  }

  /**
   * The nodes to try, in order: other nodes whose replica is `Running` and which are up,
   * starting at the next in turn; those that failed recently come last.
   */
  targetsOf(replicas: readonly ReplicaRecord[]): ForwardTarget[] {
    const now = this.#now();
    const serving = replicas.filter(
      (r) =>
        r.status === 'Running' &&
        r.nodeStatus === 'up' &&
        r.nodeId !== this.#options.nodeId &&
        r.nodeUrl !== '',
    );
    if (serving.length === 0) return [];
    const start = this.#turn++ % serving.length;
    const inTurn = [...serving.slice(start), ...serving.slice(0, start)];
    const avoided = (r: ReplicaRecord): boolean => (this.#avoid.get(r.nodeId) ?? 0) > now;
    return [...inTurn.filter((r) => !avoided(r)), ...inTurn.filter(avoided)].map((r) => ({
      nodeId: r.nodeId,
      url: r.nodeUrl,
    }));
  }

  /** A node that could not be reached is tried last for `avoidMs`. */
  unreachable(nodeId: string): void {
    const now = this.#now();
    for (const [id, until] of this.#avoid) if (until <= now) this.#avoid.delete(id);
    this.#avoid.set(nodeId, now + (this.#options.avoidMs ?? 5_000));
  }
}
