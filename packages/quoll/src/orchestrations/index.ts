export { Packager } from './packager.js';
export type { PackageLocation, PackagerOptions, SubmitOrchestration } from './packager.js';
export type {
  NewOrchestration,
  OrchestrationRecord,
  OrchestrationStatusUpdate,
  OrchestrationStore,
  PackagingLogLine,
  PackagingLogSource,
} from './orchestration-store.js';
export { DEFAULT_ARCHIVE_LIMITS, extractArchive, inspectArchive } from './zip-archive.js';
export type { ArchiveLimits, ArchiveManifest } from './zip-archive.js';
export { MAIN_NAMES, selectEntrypoint } from './select-entrypoint.js';
export { hashDependencySet, readDependencySet } from './dependency-set.js';
export type { DependencySet } from './dependency-set.js';
export { EnvCache, InstallError } from './env-cache.js';
export type { EnvCacheOptions, InstallLogSink, InstalledEnv } from './env-cache.js';
export { COMPILED_ENTRY, CompileError, compileEntrypoint } from './compile-entrypoint.js';
export type { CompileResult } from './compile-entrypoint.js';
export { orchestrationPaths } from './orchestration-paths.js';
export type { OrchestrationPaths } from './orchestration-paths.js';
export { resolveClientPackageDir } from './resolve-client-package.js';
