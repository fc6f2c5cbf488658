import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import { ApiError } from '../errors/index.js';
import type { Notifier } from './notifier.js';
import type { NodeRecord, NodeRegistration, NodeStore } from './node-store.js';
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
  /**
   * Whether {@link ClusterMembership.start} refuses an id another live process holds (see
   * there). Off where something else already keeps a second process out (an embedded home's
   * lock). @default true
   */
  checkDuplicateId?: boolean;
}

/**
 * The error of a node whose id another live process holds (a copied home, the same
 * `QUOLL_NODE_ID` given twice): code `node_id_in_use`, naming the id and that process's URL.
 */
export function nodeIdInUse(nodeId: string, holderUrl: string): ApiError {
  const where = holderUrl === '' ? 'a node that is still starting' : `the node at ${holderUrl}`;
  return new ApiError(
    'node_id_in_use',
    `Node id "${nodeId}" is in use by another running process (${where}, still sending heartbeats): ` +
      "two processes with one id would renew each other's run leases. Give this node its own id " +
      "(a --home of its own, not a copy of another node's, or another QUOLL_NODE_ID), or stop the other process first.",
    { nodeId, holderUrl },
  );
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
  readonly #heartbeatMs: number;
  readonly #clock: Clock;
  /** This process, as the holder of its node id (heartbeats of another process do not count). */
  readonly #instance = randomUUID();
  #node: NodeRegistration;
  #started = false;
  #holdsId = false;

  constructor(options: ClusterMembershipOptions) {
    this.#options = options;
    this.#node = { ...options.node, instance: this.#instance };
    this.#lostAfterMs = options.lostAfterMs ?? 15_000;
    this.#heartbeatMs = options.heartbeatMs ?? 2_000;
    this.#clock = options.clock ?? systemClock;
    this.#loop = new PeriodicLoop({
      step: () => this.#beat(),
      intervalMs: this.#heartbeatMs,
      onError: options.onError,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
  }

  /**
   * Whether this process holds its node id now: from {@link start} until a heartbeat finds that
   * another process took the id over (this one stalled past the lease), and again once a beat
   * registers it again; false once stopped. What is done under the id (a key report recorded)
   * waits for it.
   */
  get holdsId(): boolean {
    return this.#holdsId;
  }

  /** Whether the heartbeat loop is still going (false once stopped). */
  get active(): boolean {
    return this.#loop.active;
  }

  /**
   * Registers this node (`up`) and starts the heartbeats. When another process holds the id
   * (its row is `up` and was seen within `lostAfterMs`), waits: if that process's heartbeat
   * moves on meanwhile it is alive, and this rejects with `node_id_in_use` (within about one
   * heartbeat interval); if it stays silent for `lostAfterMs` (a crash just before this start),
   * the id is taken over.
   */
  async start(): Promise<void> {
    const { store } = this.#options;
    const node = { ...this.#node, instance: this.#instance };
    let seen: string | null = null;
    if (this.#options.checkDuplicateId === false) await store.registerNode(node);
    else
      for (;;) {
        const holder = await store.claimNodeId(node, this.#lostAfterMs);
        if (holder === null) break;
        if (seen !== null && holder.lastSeenAt !== seen) throw nodeIdInUse(node.id, holder.url);
        seen ??= holder.lastSeenAt;
        await new Promise<void>((resolve) =>
          this.#clock.setTimeout(resolve, Math.max(10, this.#heartbeatMs / 2)),
        );
      }
    this.#started = true;
    this.#holdsId = true;
    await this.#options.notifier.publish('quoll_nodes', node.id).catch(this.#options.onError);
    this.#loop.start();
  }

  /**
   * Changes what this started node registers (its URL and roles, once it listens): written at
   * once and told to the other nodes.
   */
  async update(change: Pick<NodeRegistration, 'url' | 'roles'>): Promise<void> {
    this.#node = { ...this.#node, ...change };
    const held = await this.#register();
    if (held !== null) throw nodeIdInUse(this.#node.id, held.url);
    await this.#options.notifier.publish('quoll_nodes', this.#node.id).catch(this.#options.onError);
  }

  /** Runs one heartbeat (and lost-node check) now; for tests and benches. */
  beatNow(): Promise<void> {
    return this.#loop.runNow();
  }

  /**
   * Stops the heartbeats and marks this node `stopped`, unless another process took its id
   * meanwhile (this one stalled past the lease): that process's row stays `up`. Idempotent.
   */
  async stop(): Promise<void> {
    await this.#loop.stop();
    this.#holdsId = false;
    if (!this.#started) return;
    this.#started = false;
    try {
      await this.#options.store.markStopped(this.#options.node.id, this.#instance);
      await this.#options.notifier.publish('quoll_nodes', this.#options.node.id);
    } catch (err) {
      // The database may be gone at shutdown; the others will find this node lost instead.
      this.#options.onError(err);
    }
  }

  /**
   * Writes what this node registers (its id kept only while no other live process holds it);
   * that process's row when one does. Written again when {@link update} changed it meanwhile,
   * so a heartbeat's re-registration never leaves the URL and roles of before.
   */
  async #register(): Promise<NodeRecord | null> {
    for (;;) {
      const node = this.#node;
      const holder = await this.#options.store.claimNodeId(
        { ...node, instance: this.#instance },
        this.#lostAfterMs,
      );
      if (holder !== null || node === this.#node) return holder;
    }
  }

  async #beat(): Promise<void> {
    const { store } = this.#options;
    const id = this.#node.id;
    if (!(await store.heartbeat(id, this.#instance))) {
      // Marked lost (this node stalled): registered again. Taken meanwhile by another process
      // with this id (this one stalled for a whole lease): never taken back, reported each beat.
      const holder = await this.#register();
      this.#holdsId = holder === null;
      if (holder !== null) throw nodeIdInUse(id, holder.url);
      this.#options.onSelfLost?.();
    }
    const lost = await store.markLostNodes(this.#lostAfterMs);
    if (lost.length === 0) return;
    for (const id of lost) await this.#options.notifier.publish('quoll_nodes', id);
    this.#options.onNodesLost?.(lost);
  }
}
