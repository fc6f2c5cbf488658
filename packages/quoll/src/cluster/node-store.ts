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
}

/**
 * Port: the registry of the nodes of one instance. Times are taken from the database's own
 * clock where it has one, so nodes whose clocks disagree still agree on who is late.
 */
export interface NodeStore {
  /** Registers (or re-registers after a restart) a node as `up`, seen now. */
  registerNode(node: NodeRegistration): Promise<void>;
  /**
   * Records a heartbeat. Returns false when the node's row says it is not `up` (another node
   * found it lost): the caller must treat every lease it held as gone.
   */
  heartbeat(nodeId: string): Promise<boolean>;
  /** Marks every `up` node not seen for `timeoutMs` as `lost`; returns their ids. */
  markLostNodes(timeoutMs: number): Promise<string[]>;
  /** Marks a node `stopped` (a clean shutdown). */
  markStopped(nodeId: string): Promise<void>;
  /** Every registered node, by id. */
  listNodes(): Promise<NodeRecord[]>;
}
