/** What a node does: `api` always; `tasks` and `inference` unless turned off (`--no-tasks`, `--no-inference`). */
export type NodeRole = 'api' | 'tasks' | 'inference';

/** A node as registered in the shared database. Times are RFC 3339 strings of the database's clock. */
export interface NodeRecord {
  id: string;
  /** Where the node serves the API (as it was started). */
  url: string;
  roles: NodeRole[];
  /** `up` while it sends heartbeats; `lost` once it stopped without saying so; `stopped` after a clean shutdown. */
  status: 'up' | 'lost' | 'stopped';
  startedAt: string;
  lastSeenAt: string;
}

/** What a node registers. */
export interface NodeRegistration {
  id: string;
  url: string;
  roles: readonly NodeRole[];
  /**
   * The process holding the id (a random token made at its start): heartbeats of another
   * process with the same id do not count as this one's. @default none (older callers)
   */
  instance?: string;
}

/**
 * Port: the registry of the nodes of one instance. Times are taken from the database's own
 * clock where it has one, so nodes whose clocks disagree still agree on who is late.
 */
export interface NodeStore {
  /** Registers (or re-registers after a restart) a node as `up`, seen now. */
  registerNode(node: NodeRegistration): Promise<void>;
  /**
   * Registers `node` (as {@link registerNode}) unless another process holds its id: a row that
   * is `up`, of another instance (or of none), seen within `staleAfterMs`. Returns null when
   * registered, else that row (whose `lastSeenAt` moves on while its process lives). One
   * statement: of two processes claiming one id at once, one gets it.
   */
  claimNodeId(
    node: NodeRegistration & { instance: string },
    staleAfterMs: number,
  ): Promise<NodeRecord | null>;
  /**
   * Records a heartbeat. Returns false when the node's row says it is not `up` (another node
   * found it lost), or, given `instance`, when another process holds the id: the caller must
   * treat every lease it held as gone.
   */
  heartbeat(nodeId: string, instance?: string): Promise<boolean>;
  /** Marks every `up` node not seen for `timeoutMs` as `lost`; returns their ids. */
  markLostNodes(timeoutMs: number): Promise<string[]>;
  /**
   * Marks a node `stopped` (a clean shutdown). Given `instance`, only while that process holds
   * the id: a stalled process whose id another process took over meanwhile leaves that one's
   * row as it is.
   */
  markStopped(nodeId: string, instance?: string): Promise<void>;
  /** Every registered node, by id. */
  listNodes(): Promise<NodeRecord[]>;
}
