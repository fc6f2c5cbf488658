// The storage contract every backend passes: `store/<dialect>/<dialect>-stores.test.ts`
// runs each suite on a fresh database of that backend.
export type { MakeStores, OpenPeer } from './make-stores.js';
export { keyCheckStoreSuite, sharedBlobStorageSuite } from './artefacts.suite.js';
export { clusterSuite } from './cluster.suite.js';
export { concurrencySuite } from './concurrency.suite.js';
export { runLogStoreSuite } from './run-log-store.suite.js';
export type { MakeRunLogStore } from './run-log-store.suite.js';
export { connectionStoreSuite } from './connection-store.suite.js';
export { logSegmentIndexSuite } from './log-segment-index.suite.js';
export { modelStoreSuite } from './model-store.suite.js';
export { orchestrationStoreSuite } from './orchestration-store.suite.js';
export { pipelineStoreSuite } from './pipeline-store.suite.js';
export { taskStoreSuite } from './task-store.suite.js';
export { tokenStoreSuite } from './token-store.suite.js';
export { workspaceStoreSuite } from './workspace-store.suite.js';
export { inferenceLogsSuite } from './inference-logs.suite.js';
export type { MakeInferenceLogs } from './inference-logs.suite.js';
export {
  LOG_T0,
  appendLogRows,
  idRange,
  inferenceLogRows,
  logPageIds,
  pageAllLogIds,
} from './inference-log-rows.js';
export type { LogRowStyle } from './inference-log-rows.js';
