export { Packager } from './packager.js';
export type { PackageLocation, PackagerOptions, SubmitOrchestration } from './packager.js';
export type {
  NewOrchestration,
  OrchestrationRecord,
  OrchestrationStatusUpdate,
  OrchestrationStore,
  PackagingClaim,
  PackagingLogLine,
  PackagingLogSource,
} from './orchestration-store.js';
export { DEFAULT_ARCHIVE_LIMITS, extractArchive, inspectArchive } from './zip-archive.js';
export type { ArchiveLimits, ArchiveManifest } from './zip-archive.js';
export { MAIN_NAMES, selectEntrypoint } from './select-entrypoint.js';
export { hashDependencySet, readDependencySet } from './dependency-set.js';
export type { DependencySet } from './dependency-set.js';
export { EnvCache } from './env-cache.js';
export type { EnvCacheOptions, InstalledEnv } from './env-cache.js';
export { InstallError } from './install-error.js';
export type { InstallLogSink } from './install-error.js';
export { COMPILED_ENTRY, CompileError, compileEntrypoint } from './compile-entrypoint.js';
export type { CompileResult } from './compile-entrypoint.js';
export { orchestrationPaths } from './orchestration-paths.js';
export type { OrchestrationPaths } from './orchestration-paths.js';
export { resolveClientPackageDir } from './resolve-client-package.js';
export { PythonEnvCache } from './python-env-cache.js';
export type { PythonEnv, PythonEnvCacheOptions } from './python-env-cache.js';
export { hashPythonEnv, normaliseRequirements, readPythonRequirements } from './python-requirements.js';
export type { PythonRequirements } from './python-requirements.js';
export { entrypointRuntime, PYTHON_MAIN } from './select-entrypoint.js';
export type { OrchestrationRuntime } from './select-entrypoint.js';
