/** One replica: a node that serves a pipeline. */
export interface ReplicaSlot {
  pipelineId: number;
  nodeId: string;
}

/** What {@link planReplicaPlacement} places. */
export interface PlacementInput {
  /** Every recorded deployment, with the replica count its config asks for (undefined: every node). */
  deployments: readonly { pipelineId: number; replicas: number | undefined }[];
  /** The nodes that may hold replicas: up, and serving inference. */
  nodes: readonly string[];
  /** The replicas recorded now. */
  current: readonly ReplicaSlot[];
}

/** The changes that make the recorded replicas match the deployments. */
export interface PlacementChanges {
  add: ReplicaSlot[];
  remove: ReplicaSlot[];
}

/**
 * Places the replicas of every deployment on the nodes that may hold them, moving as little as
 * possible: a replica stays where it is while its node is eligible and its pipeline deployed;
 * replicas of undeployed pipelines and of nodes that left are removed; a pipeline with fewer
 * replicas than it asks for (capped at the number of nodes) gets them on the least loaded
 * nodes that do not hold it yet, one with more loses those on the most loaded nodes. Ties go
 * by node id, so every node computes the same plan from the same rows.
 * @example
 * planReplicaPlacement({ deployments: [{ pipelineId: 1, replicas: 1 }], nodes: ['a', 'b'], current: [] });
 * // { add: [{ pipelineId: 1, nodeId: 'a' }], remove: [] }
 */
export function planReplicaPlacement(input: PlacementInput): PlacementChanges {
  const nodes = [...new Set(input.nodes)].sort();
  const eligible = new Set(nodes);
  const wanted = new Map(input.deployments.map((d) => [d.pipelineId, d.replicas]));
  const remove: ReplicaSlot[] = [];
  const add: ReplicaSlot[] = [];
  const holders = new Map<number, Set<string>>();
  const load = new Map<string, number>(nodes.map((n) => [n, 0]));
  for (const slot of input.current) {
    if (!wanted.has(slot.pipelineId) || !eligible.has(slot.nodeId)) {
      remove.push(slot);
      continue;
    }
    let held = holders.get(slot.pipelineId);
    if (held === undefined) holders.set(slot.pipelineId, (held = new Set()));
    held.add(slot.nodeId);
    load.set(slot.nodeId, (load.get(slot.nodeId) ?? 0) + 1);
  }
  const byLoad = (a: string, b: string): number =>
    (load.get(a) ?? 0) - (load.get(b) ?? 0) || (a < b ? -1 : 1);
  for (const pipelineId of [...wanted.keys()].sort((a, b) => a - b)) {
    const asked = wanted.get(pipelineId);
    const want = Math.min(asked ?? nodes.length, nodes.length);
    const held = holders.get(pipelineId) ?? new Set<string>();
    while (held.size > want) {
      // The most loaded holder (the last by load, then id) gives its replica up.
      const nodeId = [...held].sort(byLoad).at(-1)!;
      held.delete(nodeId);
      load.set(nodeId, (load.get(nodeId) ?? 1) - 1);
      remove.push({ pipelineId, nodeId });
    }
    while (held.size < want) {
      const nodeId = nodes.filter((n) => !held.has(n)).sort(byLoad)[0]!;
      held.add(nodeId);
      load.set(nodeId, (load.get(nodeId) ?? 0) + 1);
      add.push({ pipelineId, nodeId });
    }
  }
  return { add, remove };
}
