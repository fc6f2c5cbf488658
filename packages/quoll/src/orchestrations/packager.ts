import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { copySharedBlob } from '../blobs/index.js';
import type { ReceivedFile, SharedBlobStorage } from '../blobs/index.js';
import { ApiError } from '../errors/index.js';
import { pathExists } from '../files/index.js';
import { COMPILED_ENTRY, CompileError, compileEntrypoint } from './compile-entrypoint.js';
import { readDependencySet } from './dependency-set.js';
import { EnvCache } from './env-cache.js';
import { InstallError } from './install-error.js';
import { linkNodeModules } from './link-node-modules.js';
import { orchestrationPaths } from './orchestration-paths.js';
import { restorePackage, sharePackage } from './package-archive.js';
import type { PackageTrees } from './package-archive.js';
import type { OrchestrationRecord, OrchestrationStore, PackagingLogSource } from './orchestration-store.js';
import { PythonInterpreter } from '../runner/index.js';
import { PythonEnvCache } from './python-env-cache.js';
import { readPythonRequirements } from './python-requirements.js';
import { resolveClientPackageDir } from './resolve-client-package.js';
import { entrypointRuntime } from './select-entrypoint.js';
import type { OrchestrationRuntime } from './select-entrypoint.js';
import { DEFAULT_ARCHIVE_LIMITS, extractArchive, inspectArchive } from './zip-archive.js';
import type { ArchiveLimits } from './zip-archive.js';

/** Options of a {@link Packager}. */
export interface PackagerOptions {
  store: OrchestrationStore;
  /** The instance's home directory; files go to `<home>/orchestrations/<id>/`. */
  home: string;
  /** Installed dependency sets. @default new EnvCache({ envsDir: `<home>/envs` }) */
  envCache?: EnvCache;
  /**
   * Python environments (virtual environments per requirement set). @default new
   * PythonEnvCache({ envsDir: `<home>/envs`, python: new PythonInterpreter('python3') })
   */
  pythonEnvs?: PythonEnvCache;
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
  /**
   * Who this packager is in the store's leases: stable across restarts of one node (so a
   * restart takes back its own unfinished jobs at once) and unique among nodes.
   * @default 'local'
   */
  owner?: string;
  /**
   * How long a claimed job is leased; the packager renews it every third of that while it
   * works. A job whose packager died is taken over by another once its lease ends.
   * @default 60000
   */
  leaseMs?: number;
  /** Node.js major version the dependency hash is keyed by. @default the running Node's */
  nodeMajor?: number;
  /** Reports failures of the packaging loop itself (not of a user's zip). @default console.error */
  onError?: (err: unknown) => void;
  /**
   * Where uploaded zips live for every node of a cluster (by SHA-256): a node asked to run
   * an orchestration another node packaged builds its own copy from the stored zip, once.
   * @default null (the embedded home: packages are where they were built)
   */
  shared?: SharedBlobStorage | null;
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
  /** The file to run, relative to `dir`: `.quoll/entry.mjs` for Node, the `.py` entrypoint for Python. */
  entry: string;
  /** Which runtime runs `entry`. */
  runtime: OrchestrationRuntime;
  /** Python: the orchestration's virtual environment (host path). */
  pythonEnvDir?: string;
  /**
   * Links to the dependencies and `@quoll/client`. A run started from a copy of `dir` must
   * see it as `node_modules` in the copy (or a parent folder); the entry is compiled with an
   * inline source map, so run it with `--enable-source-maps` for TypeScript line numbers.
   */
  nodeModulesDir: string;
  /**
   * The installed dependency environment's own `node_modules` (null: no dependencies): what a
   * sandboxed run mounts read-only as its `node_modules`.
   */
  envNodeModulesDir: string | null;
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
  /** The Python environments this packager uses. */
  readonly pythonEnvs: PythonEnvCache;
  private readonly store: OrchestrationStore;
  private readonly home: string;
  private readonly limits: ArchiveLimits;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly now: () => Date;
  private readonly newId: () => string;
  private readonly nodeMajor: number;
  private readonly owner: string;
  private readonly leaseMs: number;
  private readonly onError: (err: unknown) => void;
  private clientDir: string | undefined;
  private abort = new AbortController();
  private workers: Promise<void>[] = [];
  private readonly sleepers = new Set<() => void>();
  private state: 'new' | 'running' | 'stopped' = 'new';
  private shared: SharedBlobStorage | null = null;
  /** Local builds of packages made by other nodes, by orchestration id. */
  private readonly localBuilds = new Map<string, Promise<void>>();

  constructor(options: PackagerOptions) {
    this.store = options.store;
    this.home = options.home;
    this.envCache = options.envCache ?? new EnvCache({ envsDir: join(options.home, 'envs') });
    this.pythonEnvs =
      options.pythonEnvs ??
      new PythonEnvCache({ envsDir: join(options.home, 'envs'), python: new PythonInterpreter('python3') });
    this.clientDir = options.clientPackageDir;
    this.limits = options.limits ?? DEFAULT_ARCHIVE_LIMITS;
    this.concurrency = options.concurrency ?? 2;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.now = options.now ?? (() => new Date());
    this.newId = options.newId ?? randomUUID;
    this.nodeMajor = options.nodeMajor ?? Number(process.versions.node.split('.')[0]);
    this.owner = options.owner ?? 'local';
    this.leaseMs = options.leaseMs ?? 60_000;
    this.shared = options.shared ?? null;
    this.onError = options.onError ?? ((err) => console.error('quoll: packaging loop error:', err));
  }

  /**
   * Validates an uploaded zip and records it as `pending_packaging`. A refused zip leaves
   * nothing behind: the upload file is deleted and no row is written.
   *
   * @throws ApiError `invalid_archive`, `archive_unsafe_entry`, `archive_no_entrypoint`,
   * `archive_two_entrypoints`, `archive_too_large`, or `python_unavailable` (a Python zip on a
   * server without a usable Python).
   */
  async submit(input: SubmitOrchestration): Promise<OrchestrationRecord> {
    let entrypoint: string;
    try {
      entrypoint = (await inspectArchive(input.upload.path, this.limits)).entrypoint;
      if (entrypointRuntime(entrypoint) === 'python') await this.pythonEnvs.requirePython();
    } catch (err) {
      await rm(input.upload.path, { force: true });
      throw err;
    }
    const id = this.newId();
    const paths = orchestrationPaths(this.home, id);
    try {
      // Every node of a cluster can build the package from the stored zip.
      if (this.shared !== null && !(await this.shared.has(input.upload.sha256))) {
        const path = input.upload.path;
        await this.shared.put(input.upload.sha256, input.upload.size, () => createReadStream(path));
      }
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
    const record = await this.checkReady(orchestrationId);
    if (this.shared !== null) await this.ensureLocalBuild(record);
    return this.locationOf(record);
  }

  /**
   * The orchestration, if it is `ready` (without building anything on this node).
   *
   * @throws ApiError `orchestration_not_found`, or `orchestration_not_ready` unless it is `ready`.
   */
  async checkReady(orchestrationId: string): Promise<OrchestrationRecord> {
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
    return record;
  }

  /**
   * Puts in place, once per process, this node's copy of a package another node of the cluster
   * made: its archived output (files and environment) when it shared one, else the zip, fetched
   * from the shared storage (SHA-256 checked) and packaged again here.
   */
  private ensureLocalBuild(record: OrchestrationRecord): Promise<void> {
    let pending = this.localBuilds.get(record.id);
    if (pending === undefined) {
      pending = this.buildLocally(record);
      this.localBuilds.set(record.id, pending);
      // A failed build is tried again by the next run.
      pending.catch(() => this.localBuilds.delete(record.id));
    }
    return pending;
  }

  private async buildLocally(record: OrchestrationRecord): Promise<void> {
    const paths = orchestrationPaths(this.home, record.id);
    if (await pathExists(join(paths.dir, BUILT_MARKER))) return;
    if (record.packageSha !== null && this.shared !== null) {
      try {
        await restorePackage(this.shared, record.packageSha, this.packageTrees(record), this.tmpDir);
        if (record.entrypoint === null || entrypointRuntime(record.entrypoint) !== 'python') {
          await linkNodeModules(
            paths.nodeModulesDir,
            record.depHash === null ? null : this.envCache.nodeModulesDirOf(record.depHash),
            this.clientDir ?? resolveClientPackageDir(),
          );
        }
        await writeFile(join(paths.dir, BUILT_MARKER), '');
        return;
      } catch (err) {
        // The archive is a shortcut: without it this node builds its copy from the zip.
        this.onError(err);
      }
    }
    await this.fetchZip(record);
    await this.packageOne(record, this.abort.signal, true);
  }

  /** Copies an orchestration's zip from the shared storage to this node (SHA-256 checked). */
  private async fetchZip(record: OrchestrationRecord): Promise<void> {
    const paths = orchestrationPaths(this.home, record.id);
    const shared = this.shared;
    if (shared === null) throw new Error('no shared storage to fetch the orchestration from');
    await mkdir(paths.dir, { recursive: true });
    await copySharedBlob(shared, record.sha, paths.sourceZip);
  }

  /** Where a ready orchestration's package is on this node. */
  private locationOf(record: OrchestrationRecord): PackageLocation {
    const orchestrationId = record.id;
    const paths = orchestrationPaths(this.home, orchestrationId);
    if (record.entrypoint !== null && entrypointRuntime(record.entrypoint) === 'python') {
      if (record.depHash === null)
        throw new Error(`Python orchestration ${orchestrationId} has no environment`);
      return {
        dir: paths.filesDir,
        entry: record.entrypoint,
        runtime: 'python',
        nodeModulesDir: paths.nodeModulesDir,
        envNodeModulesDir: null,
        pythonEnvDir: this.pythonEnvs.dirOf(record.depHash),
      };
    }
    return {
      dir: paths.filesDir,
      entry: COMPILED_ENTRY,
      runtime: 'node',
      nodeModulesDir: paths.nodeModulesDir,
      envNodeModulesDir: record.depHash === null ? null : this.envCache.nodeModulesDirOf(record.depHash),
    };
  }

  /**
   * Starts the packaging workers after re-queueing the orchestrations this packager (its
   * `owner`) left in `packaging` when it last stopped, and removing half-built dependency
   * environments.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`Packager.start(): already ${this.state}`);
    this.state = 'running';
    this.clientDir ??= resolveClientPackageDir();
    await this.envCache.removeStaleBuilds();
    await this.prunePythonEnvs();
    await this.store.requeueOrchestrationPackaging(this.owner, this.now().toISOString());
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

  /**
   * Removes the Python environments no orchestration uses (the cache holds only what some
   * orchestration runs with). A failure is reported, never fatal.
   */
  private async prunePythonEnvs(): Promise<void> {
    try {
      const inUse = new Set<string>();
      for (const record of await this.store.listOrchestrations())
        if (record.depHash !== null && entrypointRuntime(record.entrypoint ?? '') === 'python')
          inUse.add(record.depHash);
      await this.pythonEnvs.prune(inUse);
    } catch (err) {
      this.onError(err);
    }
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
        // The lease is stamped and expired by the store's clock, not this node's.
        const record = await this.store.claimOrchestrationForPackaging({
          owner: this.owner,
          at: this.now().toISOString(),
          leaseMs: this.leaseMs,
        });
        if (record === null) {
          await this.sleep();
          continue;
        }
        await this.underLease(record.id, () => this.packageOne(record, signal));
      } catch (err) {
        // A store failure: report it and back off instead of spinning.
        this.onError(err);
        await this.sleep();
      }
    }
  }

  /** Runs `job` while renewing the lease on orchestration `id` every third of the lease. */
  private async underLease(id: string, job: () => Promise<void>): Promise<void> {
    const timer = setInterval(
      () => {
        this.store.renewPackagingLease(id, this.owner, this.leaseMs).then(
          (held) => {
            if (!held) this.onError(new Error(`lost the packaging lease of orchestration ${id}`));
          },
          (err: unknown) => this.onError(err),
        );
      },
      Math.max(1, Math.floor(this.leaseMs / 3)),
    );
    try {
      await job();
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Packages one orchestration. `local`: this node's copy of a package another node made (no
   * log, no status change; a failure is thrown to the run that needed it).
   */
  private async packageOne(record: OrchestrationRecord, signal: AbortSignal, local = false): Promise<void> {
    const paths = orchestrationPaths(this.home, record.id);
    const log = new LogWriter(local ? null : this.store, record.id, this.now, this.onError);
    // Uploaded through another node of the cluster: its zip comes from the shared storage.
    if (this.shared !== null && !(await pathExists(paths.sourceZip))) await this.fetchZip(record);
    const earlier = local ? [] : await this.store.getPackagingLog(record.id);
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
      if (manifest.entrypoint.includes('/')) {
        const folder = manifest.entrypoint.slice(0, manifest.entrypoint.lastIndexOf('/'));
        log.write(
          'quoll',
          `the entrypoint is in the folder ${folder}/: runs start in the zip root, so relative paths resolve from ` +
            `there (write ${folder}/data.csv, not data.csv)`,
        );
      }
      if (entrypointRuntime(manifest.entrypoint) === 'python') {
        await this.packagePython(record, manifest.entrypoint, paths.filesDir, log, signal, local);
        return;
      }

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
      const depHash = deps?.hash ?? null;
      await this.markReady(record, local, log, {
        entrypoint: manifest.entrypoint,
        depHash,
        packageSha: local ? undefined : await this.share(record, manifest.entrypoint, depHash, log),
        error: null,
        updatedAt: this.now().toISOString(),
      });
    } catch (err) {
      if (signal.aborted) {
        log.write('quoll', 'packaging interrupted by a server stop; it resumes when the server starts again');
        return;
      }
      const reason = describeFailure(err);
      log.write('quoll', `packaging failed: ${reason}`);
      // Stored before the status, as with `ready`: a reader who sees `error` sees why.
      await log.flush();
      if (local) throw new Error(`building this node's copy of orchestration ${record.id} failed: ${reason}`);
      await this.store.setOrchestrationStatus(record.id, 'error', {
        error: reason,
        updatedAt: this.now().toISOString(),
      });
    } finally {
      await log.flush();
    }
  }

  /**
   * The Python half of a packaging job: reads `requirements.txt`, checks the entrypoint
   * compiles, and builds (or reuses) the virtual environment for the requirement set.
   * Throws what the caller records as the orchestration's error.
   */
  private async packagePython(
    record: OrchestrationRecord,
    entrypoint: string,
    filesDir: string,
    log: LogWriter,
    signal: AbortSignal,
    local = false,
  ): Promise<void> {
    const python = await this.pythonEnvs.requirePython();
    const reqs = await readPythonRequirements(filesDir, entrypoint);
    for (const line of reqs.provided)
      log.write(
        'quoll',
        `${reqs.source ?? 'requirements.txt'}: "${line}" skipped: the quoll client comes with the server`,
      );
    const hash = await this.pythonEnvs.hashOf(reqs.lines);
    log.write(
      'quoll',
      reqs.lines.length === 0
        ? `Python ${python.version.join('.')} (${python.executable}); no requirements (environment ${hash})`
        : `Python ${python.version.join('.')} (${python.executable}); requirements from ${reqs.source ?? ''}: ` +
            `${reqs.lines.join(', ')} (environment ${hash})`,
    );
    await checkPythonSyntax(python.executable, filesDir, entrypoint);
    const env = await this.pythonEnvs.ensure(reqs.lines, { signal, log: (line) => log.write('pip', line) });
    log.write(
      'quoll',
      env.reused ? `reusing Python environment ${env.hash}` : `built Python environment ${env.hash}`,
    );
    if (signal.aborted) {
      log.write('quoll', 'packaging interrupted by a server stop; it resumes when the server starts again');
      return;
    }
    await this.markReady(record, local, log, {
      entrypoint,
      depHash: env.hash,
      packageSha: local ? undefined : await this.share(record, entrypoint, env.hash, log),
      error: null,
      updatedAt: this.now().toISOString(),
    });
  }

  /**
   * In a cluster, stores the packaged output (files and environment) as one archive in the
   * shared storage so other nodes unpack it instead of building their own; its SHA-256, or null
   * (embedded home, or the archive failed: other nodes then build from the zip).
   */
  private async share(
    record: OrchestrationRecord,
    entrypoint: string,
    depHash: string | null,
    log: LogWriter,
  ): Promise<string | null> {
    if (this.shared === null) return null;
    try {
      const sha = await sharePackage(
        this.shared,
        this.packageTrees({ ...record, entrypoint, depHash }),
        this.tmpDir,
      );
      log.write('quoll', `packaged output shared with the cluster (archive ${sha.slice(0, 12)})`);
      return sha;
    } catch (err) {
      log.write(
        'quoll',
        `the packaged output could not be shared (${err instanceof Error ? err.message : String(err)}); ` +
          'other nodes build their own copy from the zip',
      );
      return null;
    }
  }

  /** The trees a package archive holds: the files as built and the dependency environment. */
  private packageTrees(record: Pick<OrchestrationRecord, 'id' | 'entrypoint' | 'depHash'>): PackageTrees {
    const { filesDir } = orchestrationPaths(this.home, record.id);
    if (record.depHash === null) return { filesDir, envDir: null };
    const python = record.entrypoint !== null && entrypointRuntime(record.entrypoint) === 'python';
    return {
      filesDir,
      envDir: python
        ? this.pythonEnvs.dirOf(record.depHash)
        : dirname(this.envCache.nodeModulesDirOf(record.depHash)),
    };
  }

  /** Scratch space on the home's file system (archives are renamed into place). */
  private get tmpDir(): string {
    return join(this.home, 'orchestrations', '.tmp');
  }

  /**
   * Records a finished package: `ready` in the store (a packaging job), and on this node a
   * marker that its copy is complete (so a run here does not build it again). The log's last
   * line, `ready`, is stored first: whoever sees the status `ready` reads the whole log.
   */
  private async markReady(
    record: OrchestrationRecord,
    local: boolean,
    log: LogWriter,
    fields: {
      entrypoint: string;
      depHash: string | null;
      packageSha: string | null | undefined;
      error: null;
      updatedAt: string;
    },
  ): Promise<void> {
    log.write('quoll', 'ready');
    await log.flush();
    if (!local) await this.store.setOrchestrationStatus(record.id, 'ready', fields);
    await writeFile(join(orchestrationPaths(this.home, record.id).dir, BUILT_MARKER), '');
  }
}

/** The file in an orchestration's folder that says this node's copy of the package is complete. */
const BUILT_MARKER = '.built';

/** The user-facing reason a packaging failed: the first error lines, not a stack. */
function describeFailure(err: unknown): string {
  if (err instanceof ApiError || err instanceof CompileError) return err.message;
  if (err instanceof InstallError)
    return /^(pip install|python -m venv)/.test(err.message)
      ? err.message
      : `npm install failed:\n${err.firstLines}`;
  return `packaging failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`;
}

/** Appends log lines to the store in order without making each step wait for the write. */
class LogWriter {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    /** null: lines are dropped (a node's own copy of a package logged elsewhere). */
    private readonly store: OrchestrationStore | null,
    private readonly id: string,
    private readonly now: () => Date,
    private readonly onError: (err: unknown) => void,
  ) {}

  write(source: PackagingLogSource, line: string): void {
    const store = this.store;
    if (store === null) return;
    const entry = { time: this.now().toISOString(), source, line };
    this.tail = this.tail.then(() => store.appendPackagingLog(this.id, [entry])).catch(this.onError);
  }

  flush(): Promise<void> {
    return this.tail;
  }
}

/**
 * Compiles the Python entrypoint without running it (`compile()` of its source), so a syntax
 * error fails the packaging with Python's message instead of the first run.
 */
function checkPythonSyntax(python: string, filesDir: string, entrypoint: string): Promise<void> {
  const script =
    'import sys\nsrc = open(sys.argv[1], "rb").read()\n' +
    'try:\n    compile(src, sys.argv[2], "exec", dont_inherit=True)\n' +
    'except SyntaxError as e:\n    print(f"{e.filename}, line {e.lineno}: {e.msg}\\n    {(e.text or \'\').rstrip()}"); sys.exit(1)\n';
  return new Promise((resolve, reject) => {
    execFile(
      python,
      ['-I', '-c', script, join(filesDir, entrypoint), entrypoint],
      { timeout: 60_000 },
      (err, stdout) => {
        if (err === null) return resolve();
        const text = String(stdout).trim();
        reject(
          new ApiError(
            'invalid_archive',
            text !== ''
              ? `Python cannot compile ${entrypoint}: ${text}`
              : `Checking ${entrypoint} failed: ${err.message}`,
            { file: entrypoint },
          ),
        );
      },
    );
  });
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
