export { inspectOnnxModel } from './inspect-onnx-model.js';
export type { OnnxModelInfo } from './inspect-onnx-model.js';
export { boundModelWork, NODE_WORK } from './bound-model-work.js';
export type { ModelWork, TensorBound, WorkLimits } from './bound-model-work.js';
export { checkTreeDepths, MAX_TREE_DEPTH } from './check-tree-depths.js';
