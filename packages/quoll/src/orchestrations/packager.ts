import { randomUUID } from 'node:crypto';
import { access, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReceivedFile } from '../blobs/index.js';
import { ApiError } from '../server/api-error.js';
import { COMPILED_ENTRY, CompileError, compileEntrypoint } from './compile-entrypoint.js';
import { readDependencySet } from './dependency-set.js';
import { EnvCache, InstallError } from './env-cache.js';
import { linkNodeModules } from './link-node-modules.js';
import { orchestrationPaths } from './orchestration-paths.js';
import type { OrchestrationRecord, OrchestrationStore, PackagingLogSource } from './orchestration-store.js';
import { resolveClientPackageDir } from './resolve-client-package.js';
import { DEFAULT_ARCHIVE_LIMITS, extractArchive, inspectArchive } from './zip-archive.js';
import type { ArchiveLimits } from './zip-archive.js';

/** Options of a {@link Packager}. */
export interface PackagerOptions {
  store: OrchestrationStore;
  /** The instance's home directory; files go to `<home>/orchestrations/<id>/`. */
  home: string;
  /** Installed dependency sets. @default new EnvCache({ envsDir: `<home>/envs` }) */
  envCache?: EnvCache;
  /** The `@quoll/client` package linked into every orchestration. @default resolveClientPackageDir() */
  clientPackageDir?: string;
  /** Zip-bomb and size guards. @default DEFAULT_ARCHIVE_LIMITS */
  limits?: ArchiveLimits;
  /** Orchestrations packaged at the same time. @default 2 */
  concurrency?: number;
  /**
   * How often an idle worker looks for work it was not told about (a `submit` wakes it
   * at once). @default 2000
   */
  pollIntervalMs?: number;
  /** Clock. @default () => new Date() */
  now?: () => Date;
  /** Id generator for new orchestrations. @default crypto.randomUUID */
  newId?: () => string;
  /** Node.js major version the dependency hash is keyed by. @default the running Node's */
  nodeMajor?: number;
  /** Reports failures of the packaging loop itself (not of a user's zip). @default console.error */
  onError?: (err: unknown) => void;
}

/** An accepted upload. */
export interface SubmitOrchestration {
  workspaceId: number;
  /** May be empty. */
  name: string;
  fileName: string;
  /** The zip as received (e.g. by `BlobStore.receive`); the packager takes ownership of the file. */
  upload: ReceivedFile;
}

/** What the runner needs to start a packaged orchestration. */
export interface PackageLocation {
  /** The extracted zip root: copy it to make a run's working directory. */
  dir: string;
  /** The file to run, relative to `dir`: always `.quoll/entry.mjs`. */
  entry: string;
  /**
   * Links to the dependencies and `@quoll/client`. A run started from a copy of `dir` must
   * see it as `node_modules` in the copy (or a parent folder); the entry is compiled with an
   * inline source map, so run it with `--enable-source-maps` for TypeScript line numbers.
   */
  nodeModulesDir: string;
}

/**
 * Packages orchestrations in the background: `pending_packaging` → `packaging` → `ready`
 * or `error`. Each job extracts the zip, compiles the entrypoint with esbuild, installs its
 * npm dependencies (shared per dependency set) and links `@quoll/client`.
 *
 * Work survives restarts: `start()` re-queues what a stopped server left in `packaging`.
 * `stop()` interrupts a running npm install and leaves that job in `packaging`.
 *
 * @example
 * const packager = new Packager({ store, home });
 * await packager.start();
 * const record = await packager.submit({ workspaceId, name: 'job', fileName: 'job.zip', upload });
 * // ... later
 * await packager.stop();
 */
export class Packager {
  /** The dependency environments this packager uses. */
  readonly envCache: EnvCache;
  private readonly store: OrchestrationStore;
  private readonly home: string;
  private readonly limits: ArchiveLimits;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly now: () => Date;
  private readonly newId: () => string;
  private readonly nodeMajor: number;
  private readonly onError: (err: unknown) => void;
  private clientDir: string | undefined;
  private abort = new AbortController();
  private workers: Promise<void>[] = [];
  private readonly sleepers = new Set<() => void>();
  private state: 'new' | 'running' | 'stopped' = 'new';

  constructor(options: PackagerOptions) {
    this.store = options.store;
    this.home = options.home;
    this.envCache = options.envCache ?? new EnvCache({ envsDir: join(options.home, 'envs') });
    this.clientDir = options.clientPackageDir;
    this.limits = options.limits ?? DEFAULT_ARCHIVE_LIMITS;
    this.concurrency = options.concurrency ?? 2;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.now = options.now ?? (() => new Date());
    this.newId = options.newId ?? randomUUID;
    this.nodeMajor = options.nodeMajor ?? Number(process.versions.node.split('.')[0]);
    this.onError = options.onError ?? ((err) => console.error('quoll: packaging loop error:', err));
  }

  /**
   * Validates an uploaded zip and records it as `pending_packaging`. A refused zip leaves
   * nothing behind: the upload file is deleted and no row is written.
   *
   * @throws ApiError `invalid_archive`, `archive_unsafe_entry`, `archive_no_entrypoint` or `archive_too_large`.
   */
  async submit(input: SubmitOrchestration): Promise<OrchestrationRecord> {
    let entrypoint: string;
    try {
      entrypoint = (await inspectArchive(input.upload.path, this.limits)).entrypoint;
    } catch (err) {
      await rm(input.upload.path, { force: true });
      throw err;
    }
    const id = this.newId();
    const paths = orchestrationPaths(this.home, id);
    try {
      await mkdir(paths.dir, { recursive: true });
      await moveFile(input.upload.path, paths.sourceZip);
      const record = await this.store.createOrchestration({
        id,
        workspaceId: input.workspaceId,
        name: input.name,
        fileName: input.fileName,
        sha: input.upload.sha256,
        entrypoint,
        createdAt: this.now().toISOString(),
      });
      this.wake();
      return record;
    } catch (err) {
      await rm(paths.dir, { recursive: true, force: true });
      await rm(input.upload.path, { force: true });
      throw err;
    }
  }

  /**
   * Where a `ready` orchestration's package is.
   *
   * @throws ApiError `orchestration_not_found`, or `orchestration_not_ready` unless it is `ready`.
   */
  async resolvePackage(orchestrationId: string): Promise<PackageLocation> {
    const record = await this.store.getOrchestration(orchestrationId);
    if (record === null) {
      throw new ApiError(
        'orchestration_not_found',
        `No orchestration has id "${orchestrationId}"; list them to find the id.`,
      );
    }
    if (record.status !== 'ready') {
      throw new ApiError(
        'orchestration_not_ready',
        `Orchestration "${orchestrationId}" is ${record.status}, not ready` +
          (record.status === 'error'
            ? ` (${record.error ?? 'packaging failed'}); upload a fixed zip.`
            : '; wait until status() is ready.'),
        { status: record.status },
      );
    }
    const paths = orchestrationPaths(this.home, orchestrationId);
    return { dir: paths.filesDir, entry: COMPILED_ENTRY, nodeModulesDir: paths.nodeModulesDir };
  }

  /**
   * Starts the packaging workers after re-queueing orchestrations a stopped server left in
   * `packaging` and removing half-built dependency environments.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`Packager.start(): already ${this.state}`);
    this.state = 'running';
    this.clientDir ??= resolveClientPackageDir();
    await this.envCache.removeStaleBuilds();
    await this.store.requeueOrchestrationPackaging(this.now().toISOString());
    for (let i = 0; i < this.concurrency; i++) this.workers.push(this.work());
  }

  /**
   * Stops the workers: a running npm install is killed (its job stays `packaging` and is
   * re-queued by the next `start()`), a compile finishes, and the call resolves when every
   * worker has ended.
   */
  async stop(): Promise<void> {
    if (this.state !== 'running') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopped';
    this.abort.abort(new Error('the packager is stopping'));
    this.wake();
    await Promise.all(this.workers);
    this.workers = [];
  }

  /** Wakes idle workers to look for new work now. */
  private wake(): void {
    for (const resolve of this.sleepers) resolve();
    this.sleepers.clear();
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, this.pollIntervalMs);
      this.sleepers.add(done);
      if (this.abort.signal.aborted) done();
    });
  }

  private async work(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        const record = await this.store.claimOrchestrationForPackaging(this.now().toISOString());
        if (record === null) {
          await this.sleep();
          continue;
        }
        await this.packageOne(record, signal);
      } catch (err) {
        // A store failure: report it and back off instead of spinning.
        this.onError(err);
        await this.sleep();
      }
    }
  }

  private async packageOne(record: OrchestrationRecord, signal: AbortSignal): Promise<void> {
    const paths = orchestrationPaths(this.home, record.id);
    const log = new LogWriter(this.store, record.id, this.now, this.onError);
    const earlier = await this.store.getPackagingLog(record.id);
    log.write(
      'quoll',
      earlier.length > 0 ? 'packaging again (the previous attempt was cut short)' : 'packaging started',
    );
    try {
      // A previous attempt may have left a partial tree; start from the zip every time.
      await rm(paths.filesDir, { recursive: true, force: true });
      await rm(paths.nodeModulesDir, { recursive: true, force: true });
      const manifest = await extractArchive(paths.sourceZip, paths.filesDir, this.limits);
      log.write(
        'quoll',
        `extracted ${manifest.files.length} files (${manifest.totalBytes} bytes); entrypoint ${manifest.entrypoint}`,
      );

      // package.json first: esbuild reads it too, and our message for a broken one is clearer.
      const deps = await readDependencySet(paths.filesDir, manifest.entrypoint, this.nodeMajor);
      // Compile before installing: a syntax error is reported without waiting for npm.
      const compiled = await compileEntrypoint(paths.filesDir, manifest.entrypoint);
      for (const line of compiled.warnings) log.write('esbuild', line);
      log.write('esbuild', `compiled ${manifest.entrypoint} → ${COMPILED_ENTRY}`);

      let envNodeModules: string | null = null;
      if (deps !== null) {
        const list = Object.entries(deps.dependencies).map(([n, r]) => `${n}@${r}`);
        log.write('quoll', `dependencies from ${deps.source}: ${list.join(', ')} (environment ${deps.hash})`);
        const env = await this.envCache.ensure(deps, { signal, log: (line) => log.write('npm', line) });
        log.write(
          'quoll',
          env.reused ? `reusing installed environment ${env.hash}` : `installed environment ${env.hash}`,
        );
        envNodeModules = env.nodeModulesDir;
      }
      await linkNodeModules(
        paths.nodeModulesDir,
        envNodeModules,
        this.clientDir ?? resolveClientPackageDir(),
      );
      // Safe point: a stop that came during the steps above leaves the job for the next start.
      if (signal.aborted) {
        log.write('quoll', 'packaging interrupted by a server stop; it resumes when the server starts again');
        return;
      }
      await this.store.setOrchestrationStatus(record.id, 'ready', {
        entrypoint: manifest.entrypoint,
        depHash: deps?.hash ?? null,
        error: null,
        updatedAt: this.now().toISOString(),
      });
      log.write('quoll', 'ready');
    } catch (err) {
      if (signal.aborted) {
        log.write('quoll', 'packaging interrupted by a server stop; it resumes when the server starts again');
        return;
      }
      const reason = describeFailure(err);
      log.write('quoll', `packaging failed: ${reason}`);
      await this.store.setOrchestrationStatus(record.id, 'error', {
        error: reason,
        updatedAt: this.now().toISOString(),
      });
    } finally {
      await log.flush();
    }
  }
}

/** The user-facing reason a packaging failed: the first error lines, not a stack. */
function describeFailure(err: unknown): string {
  if (err instanceof ApiError || err instanceof CompileError) return err.message;
  if (err instanceof InstallError) return `npm install failed:\n${err.firstLines}`;
  return `packaging failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`;
}

/** Appends log lines to the store in order without making each step wait for the write. */
class LogWriter {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: OrchestrationStore,
    private readonly id: string,
    private readonly now: () => Date,
    private readonly onError: (err: unknown) => void,
  ) {}

  write(source: PackagingLogSource, line: string): void {
    const entry = { time: this.now().toISOString(), source, line };
    this.tail = this.tail.then(() => this.store.appendPackagingLog(this.id, [entry])).catch(this.onError);
  }

  flush(): Promise<void> {
    return this.tail;
  }
}

/** Renames, falling back to copy + delete across file systems (a tmp dir elsewhere). */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
  await access(to);
}
