// What a node needs to be one of several on a shared database.
export { NODE_ID_FILE, resolveNodeId } from './node-id.js';
export { CLUSTER_CHANNELS } from './notifier.js';
export type { ClusterChannel, Notifier, SubscribeOptions } from './notifier.js';
export { LocalNotifier } from './local-notifier.js';
export type { NodeRecord, NodeRegistration, NodeRole, NodeStore } from './node-store.js';
export { PeriodicLoop } from './periodic-loop.js';
export type { PeriodicLoopOptions } from './periodic-loop.js';
export { ClusterMembership } from './cluster-membership.js';
export type { ClusterMembershipOptions } from './cluster-membership.js';
