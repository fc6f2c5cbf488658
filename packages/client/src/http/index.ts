export { HttpTransport } from './http-transport.js';
export type { HttpTransportOptions, RequestBody, RequestOptions } from './http-transport.js';
export type { ClientOptions } from './client-options.js';
export { withUploadProgress } from './upload-progress.js';
export type { UploadProgress } from './upload-progress.js';
