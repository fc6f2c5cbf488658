export { spawnModuleWorker } from './spawn-module-worker.js';
export { BufferLease, leaseOf } from './buffer-lease.js';
export { callingThreadClock, threadClock } from './thread-clock.js';
export type { ThreadClock } from './thread-clock.js';
