export { inspectOnnxModel } from './inspect-onnx-model.js';
export type { OnnxModelInfo } from './inspect-onnx-model.js';
export { readModelOperators } from './read-model-interface.js';
