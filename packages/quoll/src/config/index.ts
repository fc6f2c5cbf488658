export {
  resolveServerConfig,
  parseByteSize,
  redactDatabaseUrl,
  DEFAULT_PORT,
  DEFAULT_LOG_MAX_BYTES_PER_PIPELINE,
  DEFAULT_LOG_MAX_BYTES_TOTAL,
  DEFAULT_LOG_SEGMENT_MAX_BYTES,
  DEFAULT_TASK_MEMORY_BYTES,
  DEFAULT_TASK_DISK_BYTES,
} from './server-config.js';
export type { DatabaseConfig, ServerConfig, ServerConfigInput } from './server-config.js';
