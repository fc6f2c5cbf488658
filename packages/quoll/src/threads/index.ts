export { spawnModuleWorker } from './spawn-module-worker.js';
export { BufferLease, leaseOf } from './buffer-lease.js';
