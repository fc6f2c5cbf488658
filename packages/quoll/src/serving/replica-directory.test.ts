import { describe, expect, it } from 'vitest';
import { LocalNotifier } from '../cluster/index.js';
import type { ReplicaRecord, ReplicaStore } from '../pipelines/index.js';
import { ReplicaDirectory } from './replica-directory.js';
import { LossyNotifier } from '../../../../test/support/lossy-notifier.js';

const replica = (
  nodeId: string,
  status: ReplicaRecord['status'],
  nodeStatus: ReplicaRecord['nodeStatus'] = 'up',
): ReplicaRecord => ({
  pipelineId: 1,
  nodeId,
  nodeUrl: `http://${nodeId}:8470`,
  nodeStatus,
  status,
  version: 'v1',
  details: [],
  workers: 1,
  placedAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
});

/** A store that answers `rows` and counts the reads (only replicasByName is used). */
function storeOf(rows: () => ReplicaRecord[]): ReplicaStore & { reads: number } {
  const store = {
    reads: 0,
    replicasByName: () => {
      store.reads++;
      return Promise.resolve(rows());
    },
    rebalance: () => Promise.reject(new Error('unused')),
    pipelinesOn: () => Promise.reject(new Error('unused')),
    replicasOf: () => Promise.reject(new Error('unused')),
    report: () => Promise.reject(new Error('unused')),
  };
  return store;
}

describe('ReplicaDirectory', () => {
  it('targets the other nodes whose replica runs, in turn, an unreachable one last', () => {
    let now = 0;
    const directory = new ReplicaDirectory({
      store: storeOf(() => []),
      notifier: new LocalNotifier(),
      nodeId: 'self',
      now: () => now,
    });
    const rows = [
      replica('a', 'Running'),
      replica('b', 'Running'),
      replica('self', 'Running'),
      replica('c', 'Starting'),
      replica('d', 'Running', 'lost'),
    ];
    expect(directory.targetsOf(rows).map((t) => t.nodeId)).toEqual(['a', 'b']);
    expect(directory.targetsOf(rows).map((t) => t.nodeId)).toEqual(['b', 'a']);
    directory.unreachable('a');
    expect(directory.targetsOf(rows).map((t) => t.nodeId)).toEqual(['b', 'a']);
    expect(directory.targetsOf(rows).map((t) => t.nodeId)).toEqual(['b', 'a']);
    now += 5_000;
    expect(directory.targetsOf(rows).map((t) => t.nodeId)).toEqual(['a', 'b']);
    expect(directory.targetsOf(rows)[0]).toEqual({ nodeId: 'b', url: 'http://b:8470' });
    expect(directory.targetsOf([replica('c', 'Error')])).toEqual([]);
  });

  it('reuses what it read for a second, drops it on a deployment or node message, and stops listening', async () => {
    let now = 0;
    const notifier = new LocalNotifier();
    let rows = [replica('a', 'Starting')];
    const store = storeOf(() => rows);
    const directory = new ReplicaDirectory({ store, notifier, nodeId: 'self', now: () => now });
    await directory.start();
    expect(directory.active).toBe(true);
    expect((await directory.replicas(1, 'p'))[0]?.status).toBe('Starting');
    rows = [replica('a', 'Running')];
    expect((await directory.replicas(1, 'p'))[0]?.status).toBe('Starting');
    expect(store.reads).toBe(1);
    now += 1_000;
    expect((await directory.replicas(1, 'p'))[0]?.status).toBe('Running');
    expect(store.reads).toBe(2);
    rows = [replica('b', 'Running')];
    await notifier.publish('quoll_nodes', 'a');
    await new Promise((resolve) => setImmediate(resolve));
    expect((await directory.replicas(1, 'p'))[0]?.nodeId).toBe('b');
    expect(store.reads).toBe(3);
    await directory.stop();
    expect(directory.active).toBe(false);
    // No longer listening: a message no longer drops what was read.
    expect((await directory.replicas(1, 'p'))[0]?.nodeId).toBe('b');
    rows = [];
    await notifier.publish('quoll_deployments', '1');
    await new Promise((resolve) => setImmediate(resolve));
    expect((await directory.replicas(1, 'p'))[0]?.nodeId).toBe('b');
  });

  it('drops what it read when its listening connection was re-opened (messages may have been lost)', async () => {
    const notifier = new LossyNotifier();
    let rows = [replica('a', 'Starting')];
    const store = storeOf(() => rows);
    const directory = new ReplicaDirectory({ store, notifier, nodeId: 'self', now: () => 0 });
    await directory.start();
    expect((await directory.replicas(1, 'p'))[0]?.status).toBe('Starting');
    // The deployment message is lost while the connection is down.
    notifier.deaf = true;
    rows = [replica('a', 'Running')];
    await notifier.publish('quoll_deployments', '1');
    expect((await directory.replicas(1, 'p'))[0]?.status).toBe('Starting');
    notifier.reconnect();
    expect((await directory.replicas(1, 'p'))[0]?.status).toBe('Running');
    expect(store.reads).toBe(2);
    await directory.stop();
    expect(notifier.catchUpCount).toBe(0);
  });
});
