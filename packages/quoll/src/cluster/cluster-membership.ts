import type { Clock } from '../clock/index.js';
import type { Notifier } from './notifier.js';
import type { NodeRegistration, NodeStore } from './node-store.js';
import { PeriodicLoop } from './periodic-loop.js';

/** Options of {@link ClusterMembership}. */
export interface ClusterMembershipOptions {
  store: NodeStore;
  notifier: Notifier;
  /** This node. */
  node: NodeRegistration;
  /** How often this node says it is alive. @default 2000 */
  heartbeatMs?: number;
  /** A node not heard from for this long is marked lost (by any live node). @default 15000 */
  lostAfterMs?: number;
  /** Told the ids of nodes this node has just marked lost. @default nothing */
  onNodesLost?: (nodeIds: string[]) => void;
  /**
   * Told when this node's own row said it was lost (it stalled past the timeout): whatever it
   * held has been taken over; it is registered again. @default nothing
   */
  onSelfLost?: () => void;
  onError: (err: unknown) => void;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * A node's membership of its cluster: registers the node, sends heartbeats, marks nodes that
 * stopped sending theirs as lost (announced on `quoll_nodes`), and marks this node `stopped`
 * when it shuts down cleanly.
 * @example
 * const membership = new ClusterMembership({ store: stores.nodes, notifier: stores.notifier, node, onError });
 * await membership.start();
 * await membership.stop();
 */
export class ClusterMembership {
  readonly #options: ClusterMembershipOptions;
  readonly #lostAfterMs: number;
  readonly #loop: PeriodicLoop;
  #started = false;

  constructor(options: ClusterMembershipOptions) {
    this.#options = options;
    this.#lostAfterMs = options.lostAfterMs ?? 15_000;
    this.#loop = new PeriodicLoop({
      step: () => this.#beat(),
      intervalMs: options.heartbeatMs ?? 2_000,
      onError: options.onError,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
  }

  /** Whether the heartbeat loop is still going (false once stopped). */
  get active(): boolean {
    return this.#loop.active;
  }

  /** Registers this node (`up`) and starts the heartbeats. */
  async start(): Promise<void> {
    await this.#options.store.registerNode(this.#options.node);
    this.#started = true;
    await this.#options.notifier.publish('quoll_nodes', this.#options.node.id).catch(this.#options.onError);
    this.#loop.start();
  }

  /** Runs one heartbeat (and lost-node check) now; for tests and benches. */
  beatNow(): Promise<void> {
    return this.#loop.runNow();
  }

  /** Stops the heartbeats and marks this node `stopped`. Idempotent. */
  async stop(): Promise<void> {
    await this.#loop.stop();
    if (!this.#started) return;
    this.#started = false;
    try {
      await this.#options.store.markStopped(this.#options.node.id);
      await this.#options.notifier.publish('quoll_nodes', this.#options.node.id);
    } catch (err) {
      // The database may be gone at shutdown; the others will find this node lost instead.
      this.#options.onError(err);
    }
  }

  async #beat(): Promise<void> {
    const { store, node } = this.#options;
    if (!(await store.heartbeat(node.id))) {
      await store.registerNode(node);
      this.#options.onSelfLost?.();
    }
    const lost = await store.markLostNodes(this.#lostAfterMs);
    if (lost.length === 0) return;
    for (const id of lost) await this.#options.notifier.publish('quoll_nodes', id);
    this.#options.onNodesLost?.(lost);
  }
}
