import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeRegistration } from '../../cluster/index.js';
import { ClusterMembership } from '../../cluster/index.js';
import type { NewTask, RunOwner } from '../../scheduler/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores, OpenPeer } from './make-stores.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` returns true (polling every 10 ms), failing after `ms`. */
async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const giveUp = Date.now() + ms;
  while (!check()) {
    if (Date.now() > giveUp) throw new Error(`not true within ${ms} ms`);
    await sleep(10);
  }
}

/**
 * The {@link NodeStore} and {@link Notifier} contracts, run against one backend. With
 * `crossProcess`, a peer (another pool: another node) hears what this one publishes.
 */
export function clusterSuite(
  backend: string,
  makeStores: MakeStores,
  openPeer: OpenPeer,
  options: { crossProcess: boolean },
): void {
  describe(`${backend}: NodeStore and Notifier`, () => {
    let stores: Stores;
    const a: NodeRegistration = {
      id: 'node-a',
      url: 'http://10.0.0.1:8470',
      roles: ['api', 'tasks', 'inference'],
    };
    const b: NodeRegistration = { id: 'node-b', url: 'http://10.0.0.2:8470', roles: ['api', 'inference'] };

    beforeEach(async () => {
      stores = await makeStores();
    });
    afterEach(async () => {
      await stores.close();
    });

    it('registers nodes as up and lists them with their roles', async () => {
      await stores.nodes.registerNode(b);
      await stores.nodes.registerNode(a);
      const nodes = await stores.nodes.listNodes();
      expect(nodes.map((n) => [n.id, n.url, n.roles, n.status])).toEqual([
        ['node-a', a.url, ['api', 'tasks', 'inference'], 'up'],
        ['node-b', b.url, ['api', 'inference'], 'up'],
      ]);
      for (const n of nodes) expect(Date.parse(n.lastSeenAt)).toBeGreaterThanOrEqual(Date.parse(n.startedAt));
    });

    it('marks a node lost once its heartbeat is older than the timeout, and only then', async () => {
      await stores.nodes.registerNode(a);
      await stores.nodes.registerNode(b);
      expect(await stores.nodes.markLostNodes(60_000)).toEqual([]);
      // node-b's heartbeat ages past the timeout while node-a's is fresh. The timeout is wide
      // (500 ms) so that node-a's stays within it across the round trips below on a loaded
      // machine (at 50 ms it was once marked lost too, at load 9).
      await sleep(600);
      expect(await stores.nodes.heartbeat('node-a')).toBe(true);
      expect(await stores.nodes.markLostNodes(500)).toEqual(['node-b']);
      // Marked once: a second pass finds nothing new.
      expect(await stores.nodes.markLostNodes(500)).toEqual([]);
      const byId = new Map((await stores.nodes.listNodes()).map((n) => [n.id, n.status]));
      expect(byId).toEqual(
        new Map([
          ['node-a', 'up'],
          ['node-b', 'lost'],
        ]),
      );
      // A lost node's heartbeat is refused (it must re-register); registering makes it up again.
      expect(await stores.nodes.heartbeat('node-b')).toBe(false);
      await stores.nodes.registerNode(b);
      expect(await stores.nodes.heartbeat('node-b')).toBe(true);
      await stores.nodes.markStopped('node-b');
      expect((await stores.nodes.listNodes()).find((n) => n.id === 'node-b')?.status).toBe('stopped');
      expect(await stores.nodes.markLostNodes(0)).toEqual(['node-a']);
    });

    it('delivers a message to every subscriber of its channel, the publisher included, until unsubscribed', async () => {
      const got: string[] = [];
      const other: string[] = [];
      const off = await stores.notifier.subscribe('quoll_task_kill', (p) => got.push(p));
      const offOther = await stores.notifier.subscribe('quoll_deployments', (p) => other.push(p));
      await stores.notifier.publish('quoll_task_kill', 'task-1');
      await until(() => got.length === 1);
      expect(got).toEqual(['task-1']);
      expect(other).toEqual([]);
      off();
      await stores.notifier.publish('quoll_task_kill', 'task-2');
      await stores.notifier.publish('quoll_deployments', 'p-1');
      await until(() => other.length === 1);
      expect(got).toEqual(['task-1']);
      offOther();
    });

    it.skipIf(!options.crossProcess)('another node hears what this one publishes', async () => {
      const peer = await openPeer(stores);
      try {
        const got: string[] = [];
        const off = await peer.notifier.subscribe('quoll_tasks', (p) => got.push(p));
        await stores.notifier.publish('quoll_tasks', 'task-9');
        await until(() => got.length === 1);
        expect(got).toEqual(['task-9']);
        off();
      } finally {
        await peer.close();
      }
    });

    it('a membership registers, beats, finds a silent peer lost, and stops cleanly as stopped', async () => {
      const errors: unknown[] = [];
      const lost: string[][] = [];
      const heard: string[] = [];
      const off = await stores.notifier.subscribe('quoll_nodes', (p) => heard.push(p));
      await stores.nodes.registerNode(b);
      const membership = new ClusterMembership({
        store: stores.nodes,
        notifier: stores.notifier,
        node: a,
        heartbeatMs: 20,
        lostAfterMs: 150,
        onNodesLost: (ids) => lost.push(ids),
        onError: (err) => errors.push(err),
      });
      await membership.start();
      expect(membership.active).toBe(true);
      await until(() => lost.length === 1);
      expect(lost).toEqual([['node-b']]);
      const first = (await stores.nodes.listNodes()).find((n) => n.id === 'node-a');
      await sleep(60);
      const later = (await stores.nodes.listNodes()).find((n) => n.id === 'node-a');
      expect(Date.parse(later?.lastSeenAt ?? '')).toBeGreaterThan(Date.parse(first?.lastSeenAt ?? ''));
      await membership.stop();
      expect(membership.active).toBe(false);
      expect((await stores.nodes.listNodes()).map((n) => [n.id, n.status])).toEqual([
        ['node-a', 'stopped'],
        ['node-b', 'lost'],
      ]);
      await until(() => heard.filter((id) => id === 'node-a').length >= 2);
      expect(heard).toContain('node-b');
      off();
      expect(errors).toEqual([]);
    });

    /** A membership of `node` on `on` (this node's stores unless given), with quick beats. */
    const member = (node: NodeRegistration, on: Stores = stores, errors: unknown[] = []) =>
      new ClusterMembership({
        store: on.nodes,
        notifier: on.notifier,
        node,
        heartbeatMs: 30,
        lostAfterMs: 400,
        onError: (err) => errors.push(err),
      });

    it('a second process starting with a live node id is refused with node_id_in_use, naming the id', async () => {
      const peer = options.crossProcess ? await openPeer(stores) : stores;
      const first = member(a);
      const second = member({ ...a, url: 'http://10.0.0.9:8470' }, peer);
      try {
        await first.start();
        const started = Date.now();
        await expect(second.start()).rejects.toMatchObject({
          code: 'node_id_in_use',
          details: { nodeId: 'node-a', holderUrl: a.url },
          message: expect.stringContaining('"node-a"') as unknown,
        });
        // Refused within a few heartbeats, well before the holder could be thought lost.
        expect(Date.now() - started).toBeLessThan(400);
        expect(second.active).toBe(false);
        // The holder's row is untouched and it keeps beating.
        expect((await stores.nodes.listNodes()).map((n) => [n.id, n.url, n.status])).toEqual([
          ['node-a', a.url, 'up'],
        ]);
        const seen = (await stores.nodes.listNodes())[0]?.lastSeenAt;
        await sleep(100);
        expect((await stores.nodes.listNodes())[0]?.lastSeenAt).not.toBe(seen);
      } finally {
        await second.stop();
        await first.stop();
        if (peer !== stores) await peer.close();
      }
    });

    it('a node id whose holder stopped is taken at once; one whose holder went silent, after the lease', async () => {
      const first = member(a);
      await first.start();
      await first.stop();
      const again = member(a);
      const t0 = Date.now();
      await again.start();
      expect(Date.now() - t0).toBeLessThan(200);
      // A crash: the row stays up, fresh, and nobody beats for it any more.
      await again.stop();
      await stores.nodes.registerNode({ ...a, instance: 'crashed-process' });
      const restarted = member(a);
      const t1 = Date.now();
      await restarted.start();
      const waited = Date.now() - t1;
      expect(waited).toBeGreaterThanOrEqual(300);
      expect(waited).toBeLessThan(2_000);
      expect((await stores.nodes.listNodes()).map((n) => [n.id, n.status])).toEqual([['node-a', 'up']]);
      await restarted.stop();
    });

    it('a re-registration racing update() never leaves the URL and roles of before', async () => {
      let delayClaims = false;
      const nodes = stores.nodes;
      const slow: typeof nodes = new Proxy(nodes, {
        get: (target, key) => {
          if (key === 'claimNodeId')
            return async (...args: Parameters<typeof nodes.claimNodeId>) => {
              // The write lands after update()'s own (another pooled connection, a slower one).
              if (delayClaims && args[0].roles.length === 0) await sleep(100);
              return target.claimNodeId(...args);
            };
          const value: unknown = Reflect.get(target, key);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const membership = new ClusterMembership({
        store: slow,
        notifier: stores.notifier,
        node: { id: 'node-a', url: '', roles: [] },
        heartbeatMs: 60_000,
        lostAfterMs: 60_000,
        onError: () => undefined,
      });
      await membership.start();
      // Another node found this one lost (it stalled while starting): its next beat registers again.
      await sleep(5);
      expect(await stores.nodes.markLostNodes(0)).toEqual(['node-a']);
      delayClaims = true;
      const beat = membership.beatNow();
      await sleep(20);
      await membership.update({ url: a.url, roles: a.roles });
      await beat;
      expect((await stores.nodes.listNodes()).map((n) => [n.url, n.roles, n.status])).toEqual([
        [a.url, a.roles, 'up'],
      ]);
      await membership.stop();
    });

    it('claimNodeId takes a free, stopped, stale or own id, never a live one of another process', async () => {
      const mine = { ...a, instance: 'p1' };
      expect(await stores.nodes.claimNodeId(mine, 60_000)).toBeNull();
      expect(await stores.nodes.claimNodeId(mine, 60_000)).toBeNull();
      const holder = await stores.nodes.claimNodeId({ ...a, url: 'http://other', instance: 'p2' }, 60_000);
      expect(holder).toMatchObject({ id: 'node-a', url: a.url, status: 'up' });
      // Another process's heartbeat does not count as the holder's.
      expect(await stores.nodes.heartbeat('node-a', 'p2')).toBe(false);
      expect(await stores.nodes.heartbeat('node-a', 'p1')).toBe(true);
      await sleep(60);
      expect(await stores.nodes.claimNodeId({ ...a, instance: 'p2' }, 50)).toBeNull();
      expect(await stores.nodes.heartbeat('node-a', 'p1')).toBe(false);
      await stores.nodes.markStopped('node-a');
      expect(await stores.nodes.claimNodeId({ ...a, instance: 'p3' }, 60_000)).toBeNull();
    });

    it('markStopped given an instance stops only that process: a stalled old process stopping leaves the live one up', async () => {
      expect(await stores.nodes.claimNodeId({ ...a, instance: 'old' }, 60_000)).toBeNull();
      await sleep(60);
      // The old process stalled past the staleness bound; a new process took the id.
      expect(await stores.nodes.claimNodeId({ ...a, url: 'http://new', instance: 'new' }, 50)).toBeNull();
      await stores.nodes.markStopped('node-a', 'old');
      expect((await stores.nodes.listNodes()).map((n) => [n.id, n.url, n.status])).toEqual([
        ['node-a', 'http://new', 'up'],
      ]);
      expect(await stores.nodes.heartbeat('node-a', 'new')).toBe(true);
      await stores.nodes.markStopped('node-a', 'new');
      expect((await stores.nodes.listNodes()).map((n) => n.status)).toEqual(['stopped']);
    });

    it('a membership whose id another process took over meanwhile stops without marking that process stopped', async () => {
      const errors: unknown[] = [];
      const old = new ClusterMembership({
        store: stores.nodes,
        notifier: stores.notifier,
        node: a,
        heartbeatMs: 60_000,
        lostAfterMs: 50,
        onError: (err) => errors.push(err),
      });
      await old.start();
      await sleep(60);
      // Another process with the same id, after the old one's row went silent for the bound.
      expect(await stores.nodes.claimNodeId({ ...a, url: 'http://new', instance: 'live' }, 50)).toBeNull();
      await old.stop();
      expect((await stores.nodes.listNodes()).map((n) => [n.url, n.status])).toEqual([['http://new', 'up']]);
      expect(await stores.nodes.heartbeat('node-a', 'live')).toBe(true);
      expect(errors).toEqual([]);
    });

    it('a membership holds its id until another process takes it over, and again once it registers again', async () => {
      const errors: unknown[] = [];
      let returns = 0;
      const old = new ClusterMembership({
        store: stores.nodes,
        notifier: stores.notifier,
        node: a,
        heartbeatMs: 60_000,
        lostAfterMs: 50,
        onSelfLost: () => returns++,
        onError: (err) => errors.push(err),
      });
      expect(old.holdsId).toBe(false);
      await old.start();
      expect(old.holdsId).toBe(true);
      await sleep(60);
      // Another process took the id while this one was silent: its beats find it held.
      expect(await stores.nodes.claimNodeId({ ...a, url: 'http://new', instance: 'live' }, 50)).toBeNull();
      await old.beatNow();
      expect(errors).toMatchObject([{ code: 'node_id_in_use' }]);
      expect(old.holdsId).toBe(false);
      expect(returns).toBe(0);
      // That process stopped: the next beat registers this one again (a return).
      await stores.nodes.markStopped('node-a', 'live');
      await old.beatNow();
      expect(returns).toBe(1);
      expect(old.holdsId).toBe(true);
      await old.stop();
      expect(old.holdsId).toBe(false);
    });

    const newTask = (over: Partial<NewTask> = {}): NewTask => ({
      name: 'job',
      type: 'Continuous Run',
      orchestrationId: 'orch-1',
      workspaceId: 1,
      schedule: null,
      timezone: null,
      jsonArgs: {},
      timeout: null,
      ...over,
    });
    const nodeA: RunOwner = { nodeId: 'node-a', leaseMs: 60_000 };
    const nodeB: RunOwner = { nodeId: 'node-b', leaseMs: 60_000 };

    it('a run created for a node is held by it; one created for nobody waits and is claimed once', async () => {
      const held = await stores.tasks.createTask(newTask());
      const waiting = await stores.tasks.createTask(newTask({ type: 'Temporary Run' }));
      const run = await stores.tasks.createRun({ taskId: held.id, tick: null, owner: nodeA });
      expect(run?.nodeId).toBe('node-a');
      const queued = await stores.tasks.createRun({ taskId: waiting.id, tick: null, owner: null });
      expect(queued?.nodeId).toBeNull();
      const [claimB, claimA] = await Promise.all([
        stores.tasks.claimRuns(nodeB, 5),
        stores.tasks.claimRuns(nodeA, 5),
      ]);
      const claimed = [...claimA, ...claimB];
      expect(claimed.map((r) => r.id)).toEqual([queued?.id]);
      expect((await stores.tasks.getRun(queued?.id ?? ''))?.nodeId).toBe(claimed[0]?.nodeId);
      expect(await stores.tasks.claimRuns(nodeA, 5)).toEqual([]);
    });

    /** A waiting (unclaimed) run of a new run-once task of `workspaceId`. */
    async function waitingRun(workspaceId: number): Promise<string> {
      const task = await stores.tasks.createTask(newTask({ type: 'Temporary Run', workspaceId }));
      const run = await stores.tasks.createRun({ taskId: task.id, tick: null, owner: null });
      if (run === null) throw new Error('run not created');
      await sleep(2); // distinct creation times: the claim's order is by them
      return run.id;
    }

    it('a claim takes at most the per-workspace cap of one workspace per node, counting the runs the node holds', async () => {
      // Workspace 1 floods; workspace 2's runs come after all of its.
      const flood = [];
      for (let i = 0; i < 6; i++) flood.push(await waitingRun(1));
      const other = [await waitingRun(2), await waitingRun(2)];
      // Node A already runs one run of workspace 1 (created through its own API).
      const own = await stores.tasks.createTask(newTask({ workspaceId: 1 }));
      await stores.tasks.createRun({ taskId: own.id, tick: null, owner: nodeA });
      const claimedA = await stores.tasks.claimRuns(nodeA, 10, { workspaceLimit: 2 });
      // One more of workspace 1 (it holds one), two of workspace 2; oldest first within each.
      expect(claimedA.map((r) => r.id).sort()).toEqual([flood[0], ...other].sort());
      for (const r of claimedA) expect(r.nodeId).toBe('node-a');
      // At its cap in both workspaces: nothing more for node A, whatever its free slots.
      expect(await stores.tasks.claimRuns(nodeA, 10, { workspaceLimit: 2 })).toEqual([]);
      // The cap is per node: node B takes its own share of workspace 1.
      const claimedB = await stores.tasks.claimRuns(nodeB, 10, { workspaceLimit: 2 });
      expect(claimedB.map((r) => r.id)).toEqual([flood[1], flood[2]]);
      // Without a cap, everything left is claimed.
      const rest = await stores.tasks.claimRuns(nodeB, 10);
      expect(rest.map((r) => r.id)).toEqual([flood[3], flood[4], flood[5]]);
    });

    it('a claim gives free slots to the waiting workspaces in turn, not to the oldest flood', async () => {
      const flood = [];
      for (let i = 0; i < 4; i++) flood.push(await waitingRun(1));
      const second = await waitingRun(2);
      const third = [await waitingRun(3), await waitingRun(3)];
      const order: string[] = [];
      for (let i = 0; i < 6; i++) {
        const got = await stores.tasks.claimRuns(nodeA, 1, { workspaceLimit: 3 });
        expect(got).toHaveLength(1);
        order.push(got[0]?.id ?? '');
      }
      // Each round goes to a workspace holding the fewest runs here (ties: the oldest waiting run).
      expect(order).toEqual([flood[0], second, third[0], flood[1], third[1], flood[2]]);
      expect(await stores.tasks.claimRuns(nodeA, 1, { workspaceLimit: 3 })).toEqual([]);
    });

    it('nodes claiming at once with a cap each stay under it and never share a run', async () => {
      for (let i = 0; i < 8; i++) await waitingRun(1);
      for (let i = 0; i < 3; i++) await waitingRun(2);
      const [claimA, claimB] = await Promise.all([
        stores.tasks.claimRuns(nodeA, 10, { workspaceLimit: 3 }),
        stores.tasks.claimRuns(nodeB, 10, { workspaceLimit: 3 }),
      ]);
      const ids = [...claimA, ...claimB].map((r) => r.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const node of ['node-a', 'node-b']) {
        const held = (await stores.tasks.runningRuns()).filter((r) => r.nodeId === node);
        const byWorkspace = new Map<number, number>();
        for (const run of held) {
          const task = await stores.tasks.getTask(run.taskId);
          byWorkspace.set(task?.workspaceId ?? 0, (byWorkspace.get(task?.workspaceId ?? 0) ?? 0) + 1);
        }
        for (const n of byWorkspace.values()) expect(n).toBeLessThanOrEqual(3);
      }
    });

    it('closes an unclaimed run only while nobody has claimed it', async () => {
      const task = await stores.tasks.createTask(newTask({ type: 'Temporary Run' }));
      const waiting = await stores.tasks.createRun({ taskId: task.id, tick: null, owner: null });
      if (waiting === null) throw new Error('run not created');
      const killed = { status: 'killed' as const, exitCode: null, reason: 'killed before it started' };
      const [claimed] = await stores.tasks.claimRuns(nodeB, 5);
      expect(claimed?.id).toBe(waiting.id);
      // Claimed meanwhile: the claimer stops it, the run stays running and its node's.
      expect(await stores.tasks.closeUnclaimedRun(waiting.id, killed)).toBeNull();
      expect(await stores.tasks.getRun(waiting.id)).toMatchObject({ status: 'running', nodeId: 'node-b' });
      const other = await stores.tasks.createTask(newTask({ type: 'Temporary Run' }));
      const free = await stores.tasks.createRun({ taskId: other.id, tick: null, owner: null });
      if (free === null) throw new Error('run not created');
      expect(await stores.tasks.closeUnclaimedRun(free.id, killed)).toMatchObject({
        id: free.id,
        status: 'killed',
        reason: 'killed before it started',
      });
      // Closed runs never change, and nobody claims them.
      expect(await stores.tasks.closeUnclaimedRun(free.id, killed)).toBeNull();
      expect(await stores.tasks.claimRuns(nodeA, 5)).toEqual([]);
      expect(await stores.tasks.closeUnclaimedRun('missing', killed)).toBeNull();
    });

    it('a node releases a run it claimed back to waiting, only while it holds it and the run is running', async () => {
      const task = await stores.tasks.createTask(newTask({ type: 'Scheduled Run', schedule: '* * * * *' }));
      const [created] = await stores.tasks.createTickRuns([{ taskId: task.id, tick: 60_000 }], null);
      if (created?.outcome !== 'created') throw new Error('no run created');
      const [claimed] = await stores.tasks.claimRuns(nodeA, 1);
      expect(claimed?.id).toBe(created.run.id);
      // Another node cannot release node A's run.
      expect(await stores.tasks.releaseRun(created.run.id, nodeB)).toBeNull();
      expect((await stores.tasks.getRun(created.run.id))?.nodeId).toBe('node-a');
      // Node A stops before launching it: the run waits again, for any node, and holds no lease.
      expect(await stores.tasks.releaseRun(created.run.id, nodeA)).toMatchObject({
        id: created.run.id,
        status: 'running',
        nodeId: null,
      });
      expect((await stores.tasks.expiredRuns()).map((r) => r.id)).not.toContain(created.run.id);
      expect(await stores.tasks.releaseRun(created.run.id, nodeA)).toBeNull();
      const [again] = await stores.tasks.claimRuns(nodeB, 1);
      expect(again?.id).toBe(created.run.id);
      // A finished run is never released.
      await stores.tasks.finishRun(created.run.id, { status: 'success', exitCode: 0, reason: 'exit 0' });
      expect(await stores.tasks.releaseRun(created.run.id, nodeB)).toBeNull();
      expect(await stores.tasks.getRun(created.run.id)).toMatchObject({
        status: 'success',
        nodeId: 'node-b',
      });
      expect(await stores.tasks.releaseRun('missing', nodeA)).toBeNull();
    });

    it("a tick's runs created for nobody wait, each claimed by one node within its free slots; the (task, tick) key holds", async () => {
      const scheduled = () =>
        stores.tasks.createTask(newTask({ type: 'Scheduled Run', schedule: '* * * * *' }));
      const tasks = [await scheduled(), await scheduled(), await scheduled()];
      const items = tasks.map((t) => ({ taskId: t.id, tick: 60_000 }));
      // Nodes of a cluster create a tick's runs waiting: whichever node has a free slot runs each.
      const created = await stores.tasks.createTickRuns(items, null);
      expect(created.map((o) => o.outcome)).toEqual(['created', 'created', 'created']);
      for (const o of created) if (o.outcome === 'created') expect(o.run.nodeId).toBeNull();
      // Another node firing the same boundary creates nothing: one run per (task, tick).
      expect((await stores.tasks.createTickRuns(items, null)).map((o) => o.outcome)).toEqual([
        'duplicate',
        'duplicate',
        'duplicate',
      ]);
      // The creating node has one free slot, another node two: together they take all three, once each.
      const [claimA, claimB] = await Promise.all([
        stores.tasks.claimRuns(nodeA, 1),
        stores.tasks.claimRuns(nodeB, 2),
      ]);
      expect(claimA).toHaveLength(1);
      const ids = [...claimA, ...claimB].map((r) => r.id).sort();
      expect(ids).toEqual(created.flatMap((o) => (o.outcome === 'created' ? [o.run.id] : [])).sort());
      for (const id of ids) expect((await stores.tasks.getRun(id))?.nodeId).not.toBeNull();
      expect(await stores.tasks.claimRuns(nodeA, 5)).toEqual([]);
      // One node alone (embedded) creates a tick's runs as its own, for its runner's queue.
      const [own] = await stores.tasks.createTickRuns([{ taskId: tasks[0]!.id, tick: 120_000 }], nodeB);
      expect(own).toMatchObject({ outcome: 'skipped' });
      const solo = await scheduled();
      const [mine] = await stores.tasks.createTickRuns([{ taskId: solo.id, tick: 120_000 }], nodeB);
      if (mine?.outcome !== 'created') throw new Error('no run created');
      expect((await stores.tasks.getRun(mine.run.id))?.nodeId).toBe('node-b');
    });

    it('a holder renews its runs and sees kills; an expired lease is closed once, a renewed one never', async () => {
      const t1 = await stores.tasks.createTask(newTask());
      const t2 = await stores.tasks.createTask(newTask());
      const short: RunOwner = { nodeId: 'node-a', leaseMs: 100 };
      const r1 = await stores.tasks.createRun({ taskId: t1.id, tick: null, owner: short });
      const r2 = await stores.tasks.createRun({ taskId: t2.id, tick: null, owner: short });
      if (r1 === null || r2 === null) throw new Error('runs not created');
      await stores.tasks.setTaskStatus(t2.id, 'pending_kill');
      // Another node renews nothing of node A's.
      expect(await stores.tasks.renewRunLeases(nodeB, [r1.id, r2.id])).toEqual([]);
      const held = await stores.tasks.renewRunLeases(short, [r1.id, r2.id, 'missing']);
      expect(held.sort((a, b) => a.runId.localeCompare(b.runId))).toEqual(
        [
          { runId: r1.id, taskId: t1.id, taskStatus: 'pending' },
          { runId: r2.id, taskId: t2.id, taskStatus: 'pending_kill' },
        ].sort((a, b) => a.runId.localeCompare(b.runId)),
      );
      expect(await stores.tasks.expiredRuns()).toEqual([]);
      // r1 keeps being renewed for a minute; r2 is left to expire.
      await stores.tasks.renewRunLeases(nodeA, [r1.id]);
      await sleep(150);
      const expired = await stores.tasks.expiredRuns();
      expect(expired.map((r) => r.id)).toEqual([r2.id]);
      const result = { status: 'failure' as const, exitCode: null, reason: 'node lost: node-a' };
      expect(await stores.tasks.closeExpiredRun(r1.id, result)).toBeNull();
      const [first, second] = await Promise.all([
        stores.tasks.closeExpiredRun(r2.id, result),
        stores.tasks.closeExpiredRun(r2.id, result),
      ]);
      expect([first, second].filter((r) => r !== null)).toHaveLength(1);
      expect(await stores.tasks.getRun(r2.id)).toMatchObject({
        status: 'failure',
        reason: 'node lost: node-a',
      });
      // The holder's next renewal no longer lists the closed run: its process must stop.
      expect((await stores.tasks.renewRunLeases(nodeA, [r1.id, r2.id])).map((h) => h.runId)).toEqual([r1.id]);
      expect(await stores.tasks.expiredRuns()).toEqual([]);
    });
  });
}
