/**
 * The channels nodes tell each other about changes on. Every payload is an id (a pipeline, a
 * task, a node); a message says "look again", never carries the state itself, so a lost
 * message only delays what the reconcile loops find on their own.
 */
export type ClusterChannel =
  /** A pipeline's deployment changed (deploy, undeploy); payload: the pipeline id. */
  | 'quoll_deployments'
  /** A task was created or changed; payload: the task id. */
  | 'quoll_tasks'
  /** A task is being killed: whoever runs one of its runs stops it; payload: the task id. */
  | 'quoll_task_kill'
  /** A run waits for a node to claim it; payload: the run id. */
  | 'quoll_task_runs'
  /** A node joined, left or was found lost; payload: the node id. */
  | 'quoll_nodes';

/** Every channel, for subscribers and tests. */
export const CLUSTER_CHANNELS: readonly ClusterChannel[] = [
  'quoll_deployments',
  'quoll_tasks',
  'quoll_task_kill',
  'quoll_task_runs',
  'quoll_nodes',
];

/** Options of {@link Notifier.subscribe}. */
export interface SubscribeOptions {
  /**
   * Called when messages may have been lost: after the node's listening connection was
   * re-opened (it dropped, or stopped answering its liveness check), once it listens again.
   * The subscriber re-reads what the messages would have told it. Never called in-process.
   */
  onCatchUp?: () => void;
}

/**
 * Port: messages between the nodes of one instance (PostgreSQL `LISTEN`/`NOTIFY` on a
 * cluster, in-process for the embedded home). A node hears its own messages too, so handlers
 * are idempotent. Delivery is best effort: a node whose listening connection is re-opening
 * misses what was sent meanwhile, which is why every receiver also re-reads on a timer.
 */
export interface Notifier {
  /** Sends `payload` to every subscriber of `channel` on every node (this one included). */
  publish(channel: ClusterChannel, payload: string): Promise<void>;
  /**
   * Calls `handler` for every message on `channel` until the returned function is called, and
   * `options.onCatchUp` whenever messages may have been lost (see {@link SubscribeOptions}).
   */
  subscribe(
    channel: ClusterChannel,
    handler: (payload: string) => void,
    options?: SubscribeOptions,
  ): Promise<() => void>;
}
