import { describe, expect, it } from 'vitest';
import { planReplicaPlacement, type ReplicaSlot } from './replica-placement.js';

const slots = (pairs: Array<[number, string]>): ReplicaSlot[] =>
  pairs.map(([pipelineId, nodeId]) => ({ pipelineId, nodeId }));

/** Applies a plan to the current slots, as the store does. */
function apply(current: ReplicaSlot[], plan: ReturnType<typeof planReplicaPlacement>): string[] {
  const key = (s: ReplicaSlot): string => `${s.pipelineId}@${s.nodeId}`;
  const gone = new Set(plan.remove.map(key));
  return [...current.filter((s) => !gone.has(key(s))), ...plan.add].map(key).sort();
}

describe('planReplicaPlacement', () => {
  it('places every node by default, and replicas: n on the least loaded nodes', () => {
    const plan = planReplicaPlacement({
      deployments: [
        { pipelineId: 1, replicas: undefined },
        { pipelineId: 2, replicas: 1 },
        { pipelineId: 3, replicas: 1 },
        { pipelineId: 4, replicas: 2 },
      ],
      nodes: ['c', 'a', 'b'],
      current: [],
    });
    expect(plan.remove).toEqual([]);
    expect(apply([], plan)).toEqual(['1@a', '1@b', '1@c', '2@a', '3@b', '4@a', '4@c'].sort());
  });

  it('keeps replicas where they are; moves only those of a node that left; drops undeployed pipelines', () => {
    const current = slots([
      [1, 'b'],
      [2, 'c'],
      [2, 'a'],
      [9, 'a'],
    ]);
    const plan = planReplicaPlacement({
      deployments: [
        { pipelineId: 1, replicas: 1 },
        { pipelineId: 2, replicas: 2 },
      ],
      nodes: ['a', 'b', 'd'],
      current,
    });
    expect(plan.remove).toEqual(
      slots([
        [2, 'c'],
        [9, 'a'],
      ]),
    );
    // 1 stays on b; 2 keeps a and takes the least loaded node that does not hold it: d.
    expect(plan.add).toEqual(slots([[2, 'd']]));
    expect(apply(current, plan)).toEqual(['1@b', '2@a', '2@d']);
  });

  it('caps replicas at the nodes there are, and fills up when nodes join; a lower count sheds the most loaded', () => {
    const two = planReplicaPlacement({
      deployments: [{ pipelineId: 1, replicas: 5 }],
      nodes: ['a', 'b'],
      current: [],
    });
    expect(apply([], two)).toEqual(['1@a', '1@b']);
    const joined = planReplicaPlacement({
      deployments: [{ pipelineId: 1, replicas: 5 }],
      nodes: ['a', 'b', 'c'],
      current: two.add,
    });
    expect(joined).toEqual({ add: slots([[1, 'c']]), remove: [] });
    const current = slots([
      [1, 'a'],
      [1, 'b'],
      [2, 'b'],
    ]);
    const fewer = planReplicaPlacement({
      deployments: [
        { pipelineId: 1, replicas: 1 },
        { pipelineId: 2, replicas: 1 },
      ],
      nodes: ['a', 'b'],
      current,
    });
    expect(fewer).toEqual({ add: [], remove: slots([[1, 'b']]) });
  });

  it('is stable: a plan applied leaves nothing to change, and no nodes means no replicas', () => {
    const input = {
      deployments: [
        { pipelineId: 1, replicas: 2 },
        { pipelineId: 2, replicas: undefined },
      ],
      nodes: ['a', 'b', 'c'],
      current: [] as ReplicaSlot[],
    };
    const first = planReplicaPlacement(input);
    expect(planReplicaPlacement({ ...input, current: first.add })).toEqual({ add: [], remove: [] });
    expect(planReplicaPlacement({ ...input, nodes: [], current: first.add })).toEqual({
      add: [],
      remove: first.add,
    });
  });
});
