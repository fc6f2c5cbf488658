import type { PipelineStatusName } from '@quoll/client/wire';
import type { NodeRecord } from '../cluster/index.js';
import type { PlacementChanges } from './replica-placement.js';

/** A replica as recorded: where it is placed and what its node last reported. */
export interface ReplicaRecord {
  pipelineId: number;
  nodeId: string;
  /** The node's advertised URL (where requests are forwarded). */
  nodeUrl: string;
  /** The node's own state in the node list. */
  nodeStatus: NodeRecord['status'];
  /** What the node reported: `Starting` until it has loaded the version. */
  status: PipelineStatusName;
  version: string | null;
  details: string[];
  workers: number;
  /** RFC 3339, the database's clock. */
  placedAt: string;
  /** When the node's report last changed the state (RFC 3339, the database's clock). */
  updatedAt: string;
}

/** What a node reports about a replica it holds. */
export interface ReplicaReport {
  pipelineId: number;
  status: PipelineStatusName;
  version: string | null;
  details: string[];
  workers: number;
}

/**
 * Port: where the replicas of deployed pipelines are placed on a cluster (PostgreSQL table
 * `pipeline_replicas`). Placement is computed by {@link planReplicaPlacement} from the
 * recorded deployments and the nodes that are up and serve inference.
 */
export interface ReplicaStore {
  /**
   * In one transaction, under a lock every node takes for it: reads deployments, nodes and
   * replicas, applies the plan, and returns what changed (nothing when the placement holds).
   * When another node has held that lock for longer than the lock timeout (it stalled in the
   * middle of its placement), changes nothing and returns no changes: a later round places.
   */
  rebalance(): Promise<PlacementChanges>;
  /** The pipelines `nodeId` holds a replica of. */
  pipelinesOn(nodeId: string): Promise<number[]>;
  /** A pipeline's replicas, by node id. */
  replicasOf(pipelineId: number): Promise<ReplicaRecord[]>;
  /** The replicas of the pipeline named `name` in the workspace, by node id (the forwarding's lookup). */
  replicasByName(workspaceId: number, name: string): Promise<ReplicaRecord[]>;
  /** Records what `nodeId` serves for each report (rows of pipelines it no longer holds are left alone). */
  report(nodeId: string, reports: readonly ReplicaReport[]): Promise<void>;
}
