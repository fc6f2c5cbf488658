export { recordBatchOf } from './record-batch-of.js';
