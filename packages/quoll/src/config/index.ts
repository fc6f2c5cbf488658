export {
  resolveServerConfig,
  parseByteSize,
  DEFAULT_PORT,
  DEFAULT_LOG_MAX_BYTES_PER_PIPELINE,
  DEFAULT_LOG_MAX_BYTES_TOTAL,
  DEFAULT_LOG_SEGMENT_MAX_BYTES,
} from './server-config.js';
export type { ServerConfig, ServerConfigInput } from './server-config.js';
