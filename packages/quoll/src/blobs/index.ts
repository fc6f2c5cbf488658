export { BlobStore } from './blob-store.js';
export type { ReceivedFile } from './blob-store.js';
