export { BlobStore } from './blob-store.js';
export type { ReceivedFile } from './blob-store.js';
export { BlobNotFoundError } from './shared-blob-storage.js';
export type { SharedBlobStorage } from './shared-blob-storage.js';
export { copySharedBlob, sha256OfFile } from './copy-shared-blob.js';
