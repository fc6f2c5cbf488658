export { browserPlatform } from './browser-platform.js';
export type {
  ClientPlatform,
  ClientTarget,
  FileSink,
  FileUse,
  SinkFile,
  UploadSource,
} from './client-platform.js';
