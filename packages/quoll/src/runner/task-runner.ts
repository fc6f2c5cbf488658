import { isAbsolute, join, normalize } from 'node:path';
import type { TaskRunLogLineDto } from '@quoll/client/wire';
import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import { signalGroup } from './process-group.js';
import type { LaunchedProcess, LaunchSpec } from './launch-spec.js';
import { DirectLauncher } from './launchers/direct-launcher.js';
import type { RunLauncher } from './launchers/run-launcher.js';
import { WarmLauncher } from './launchers/warm-launcher.js';
import { LineSplitter } from './line-splitter.js';
import { NanoTimestamper } from './nano-timestamper.js';
import { DiskWatcher } from './disk-watcher.js';
import { ensureRunsDir, fillRunDir, removeRunDir } from './run-directory.js';
import { NO_LIMITS, tighterLimits } from './resource-limits.js';
import type { ResourceLimits } from './resource-limits.js';
import { FileRunLogStore } from './file-run-log-store.js';
import type { RunEnded, RunLogStore, RunLogWriter } from './run-log-store.js';
import type { PackagedOrchestration, RunHandle, RunOutcome, RunRequest, RunToken } from './run-request.js';
import { NodeRuntime } from './runtimes/node-runtime.js';
import type { RunRuntime } from './runtimes/run-runtime.js';
import type { TaskUser } from './task-user.js';

/** Options of {@link TaskRunner}. */
export interface TaskRunnerOptions {
  /** Directory of the per-run log files (when `logs` is not given). */
  logsDir: string;
  /** Where run logs are written and read. @default new FileRunLogStore({ dir: logsDir }) */
  logs?: RunLogStore;
  /**
   * Directory under which each run gets a fresh working directory `<runsDir>/<runId>`.
   * Keep it outside the home (runs must not reach the credentials, key or database by a
   * relative path); it is created 0700 (0711 with a {@link TaskRunnerOptions.taskUser}) and
   * must not be a symlink or owned by another user.
   */
  runsDir: string;
  /**
   * The API URL given to runs as `QUOLL_URL`; a function is read at each spawn (the server
   * knows its URL only once it listens).
   */
  serverUrl: string | (() => string);
  /**
   * Issues the token a run gets as `QUOLL_TOKEN`, with the rights of `runsAs` (an admin
   * token, or one bounded to `workspaceId`), valid for `ttlMs`: the
   * run's timeout plus the kill grace and a margin, or {@link UNBOUNDED_RUN_TOKEN_TTL_MS}
   * (renewed while the run lives) for runs without a timeout.
   */
  issueRunToken(
    workspaceId: number,
    runId: string,
    ttlMs: number,
    runsAs: 'admin' | 'workspace',
  ): Promise<RunToken>;
  /**
   * Applied to every captured line of a run before it is stored (secret masking); gets the
   * run id so each run hides the values it read. @default identity
   */
  redact?: (line: string, runId: string) => string;
  /** Time source for timeouts, grace periods and log timestamps. @default systemClock */
  clock?: Clock;
  /**
   * Runs executing at once; further runs wait, each workspace's in FIFO order, and the
   * workspaces take turns (round-robin) for each free slot. @default 4
   */
  concurrency?: number;
  /**
   * Runs of one workspace executing at once (at most `concurrency`): with less than
   * `concurrency`, one workspace's long runs (continuous tasks) cannot hold every slot and
   * keep another's waiting. @default concurrency (no cap; the server sets concurrency − 1)
   */
  workspaceConcurrency?: number;
  /**
   * Pre-started Node processes kept waiting for a run (saves Node's start-up per run);
   * at most `concurrency`, 0 disables. @default min(2, concurrency)
   */
  warmProcesses?: number;
  /**
   * OS user and group the run processes run as (the server must be root to use this); the
   * run directory is chowned to it. @default null (the server's own user)
   */
  taskUser?: TaskUser | null;
  /** Time between SIGTERM and SIGKILL when stopping a run. @default 5000 */
  killGraceMs?: number;
  /**
   * Environment the run's environment is taken from; only the variables the run's runtime
   * allows (for Node: PATH, HOME, locale, TZ, temp dirs, proxies, CA certs) pass, so server
   * secrets do not leak into user code. @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /** Node executable of the default Node runtime. @default process.execPath */
  nodePath?: string;
  /**
   * The runtimes that run packages, by {@link PackagedOrchestration.runtime}.
   * @default [new NodeRuntime({ nodePath })]
   */
  runtimes?: readonly RunRuntime[];
  /** How run processes are started (warm processes are kept in front of it). @default new DirectLauncher() */
  launcher?: RunLauncher;
  /**
   * What each run may use; a run's own limits can only be tighter.
   * @default NO_LIMITS
   */
  limits?: ResourceLimits;
  /**
   * Least time between two looks at a run's directory when it has a disk limit
   * ({@link ResourceLimits.diskBytes}); see {@link DiskWatcher}. @default 500
   */
  diskCheckIntervalMs?: number;
  /** Most entries a run's directory may hold when it has a disk limit. @default 100000 */
  diskMaxEntries?: number;
  /** Keep `<runsDir>/<runId>` after the run (for debugging). @default false */
  keepRunDirs?: boolean;
  /** Called when a run's process has been spawned (e.g. to record its pid). @default none */
  onSpawn?: (runId: string, pid: number) => void;
  /** Where background failures (token revoke, cleanup, log writes) are reported. @default console.error */
  onError?: (err: unknown, context: string) => void;
}

/** The prefix of every line quoll writes into a run's log. */
export const FINAL_LINE_PREFIX = 'quoll: run finished: ';

/** The reason given to runs found running at startup whose process is gone. */
export const LOST_RUN_REASON = 'lost: the server stopped while the run was active';

/** The reason given to runs stopped because the server shuts down. */
export const STOPPED_RUN_REASON = 'stopped: the server shut down while the run was active';

/** How long to wait for a run's pipes to close after its process exits. */
const PIPE_CLOSE_CAP_MS = 2_000;

/** Token lifetime of a run without a timeout; renewed every quarter of it while the run lives. */
export const UNBOUNDED_RUN_TOKEN_TTL_MS = 24 * 3600 * 1000;

/** Extra token lifetime past a run's timeout and kill grace (log flush, revoke). */
const RUN_TOKEN_MARGIN_MS = 60_000;

type StopCause = 'killed' | 'timed_out' | 'stopped' | 'disk';

interface Job {
  req: RunRequest;
  log: RunLogWriter;
  stopCause: StopCause | null;
  stopDetail: string | null;
  proc: LaunchedProcess | null;
  startedAt: number | null;
  timers: TimerHandle[];
  /** Watches the run's directory while it runs, when it has a disk limit. */
  disk: DiskWatcher | null;
  resolveSpawned: (pid: number | null) => void;
  resolveDone: (o: RunOutcome) => void;
  finished: boolean;
  terminating: boolean;
  outcome: RunOutcome | null;
}

/**
 * Executes task runs as processes started by a {@link RunLauncher} (directly, or in a
 * sandbox; warm processes in front) for a {@link RunRuntime}, each in a fresh working
 * directory, with a concurrency limit (FIFO queue), timeouts, kill, and line-by-line output
 * capture into durable per-run log files that end with a final status line.
 *
 * A run ends when its entry process exits; anything it left behind (its process group, or
 * its whole sandbox) is killed then.
 *
 * @example
 * const runner = new TaskRunner({ logsDir, runsDir, serverUrl, issueRunToken });
 * const { done } = runner.start({ runId, taskId, workspaceId, jsonArgs: {}, timeoutSeconds: 900, package: pkg });
 * const outcome = await done; // { status: 'success', exitCode: 0, reason: 'exit 0', ... }
 */
export class TaskRunner {
  /** The run log files; also used for reading and following. */
  readonly logs: RunLogStore;
  private readonly clock: Clock;
  private readonly stamper: NanoTimestamper;
  private readonly concurrency: number;
  private readonly killGraceMs: number;
  private readonly redact: (line: string, runId: string) => string;
  private readonly onError: (err: unknown, context: string) => void;
  private readonly workspaceConcurrency: number;
  /** Waiting runs, per workspace, in FIFO order; a workspace's entry goes when it empties. */
  private readonly queues = new Map<number, Job[]>();
  /** Runs executing per workspace. */
  private readonly activeIn = new Map<number, number>();
  /** The workspace served last: the next free slot goes to the first waiting one after it. */
  private lastServed: number | null = null;
  private readonly jobs = new Map<string, Job>();
  private readonly dones = new Map<string, Promise<RunOutcome>>();
  private readonly launcher: WarmLauncher;
  private readonly runtimes = new Map<string, RunRuntime>();
  private readonly taskUser: TaskUser | null;
  private runsDirReady: Promise<void> | null = null;
  private active = 0;
  private stopping = false;

  constructor(private readonly options: TaskRunnerOptions) {
    this.clock = options.clock ?? systemClock;
    this.stamper = new NanoTimestamper(this.clock);
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
    this.workspaceConcurrency = Math.min(
      this.concurrency,
      Math.max(1, Math.floor(options.workspaceConcurrency ?? this.concurrency)),
    );
    this.killGraceMs = Math.max(0, options.killGraceMs ?? 5_000);
    this.redact = options.redact ?? ((line) => line);
    this.onError =
      options.onError ?? ((err, context) => console.error(`quoll: task runner (${context}):`, err));
    this.logs = options.logs ?? new FileRunLogStore({ dir: options.logsDir, onError: this.onError });
    this.taskUser = options.taskUser ?? null;
    for (const runtime of options.runtimes ?? [new NodeRuntime({ nodePath: options.nodePath })])
      this.runtimes.set(runtime.name, runtime);
    this.launcher = new WarmLauncher({
      inner: options.launcher ?? new DirectLauncher(),
      size: Math.max(0, Math.min(this.concurrency, Math.floor(options.warmProcesses ?? 2))),
      dir: options.runsDir,
      onError: this.onError,
    });
  }

  /** The launcher runs go through (its name and whether it sandboxes). */
  get launcherInfo(): { name: string; sandboxed: boolean } {
    return { name: this.launcher.name, sandboxed: this.launcher.sandboxed };
  }

  /**
   * Starts the warm processes (runs also start them on first use). Resolves once they are
   * spawned; {@link TaskRunner.stop} kills them.
   */
  async warm(): Promise<void> {
    if (this.stopping) return;
    await this.ensureRunsDir();
    // Waiting processes for the commonest run: a Node package without dependencies.
    const runtime = this.runtimes.get('node') ?? [...this.runtimes.values()][0];
    if (runtime === undefined) return;
    const spec = await this.launchSpec(
      runtime,
      { dir: this.options.runsDir, entry: 'main.mjs', runtime: runtime.name },
      join(this.options.runsDir, 'warm'),
      {},
      {},
    );
    await this.launcher.fill(spec);
  }

  /** Process ids of the idle warm processes (diagnostics and tests). */
  get warmPids(): number[] {
    return this.launcher.idlePids;
  }

  /** Most runs executing at once (more wait in the queue). */
  get concurrencyLimit(): number {
    return this.concurrency;
  }

  /** Runs executing now (preparing or with a live process). */
  get activeCount(): number {
    return this.active;
  }

  /** Most runs of one workspace executing at once. */
  get workspaceConcurrencyLimit(): number {
    return this.workspaceConcurrency;
  }

  /** Runs waiting for a slot. */
  get queuedCount(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Whether the runner holds this run (queued or executing). */
  has(runId: string): boolean {
    return this.jobs.has(runId);
  }

  /**
   * Queues a run; it starts when a slot is free. After {@link TaskRunner.stop} the run is
   * ended at once as `failure` (server stopping).
   */
  start(req: RunRequest): RunHandle {
    if (this.jobs.has(req.runId)) throw new Error(`Run ${req.runId} is already in the runner`);
    let resolveSpawned!: (pid: number | null) => void;
    let resolveDone!: (o: RunOutcome) => void;
    const spawned = new Promise<number | null>((r) => (resolveSpawned = r));
    const done = new Promise<RunOutcome>((r) => (resolveDone = r));
    const job: Job = {
      req,
      log: this.logs.openWriter(req.runId),
      stopCause: null,
      stopDetail: null,
      proc: null,
      startedAt: null,
      timers: [],
      disk: null,
      resolveSpawned,
      resolveDone,
      finished: false,
      terminating: false,
      outcome: null,
    };
    this.jobs.set(req.runId, job);
    this.dones.set(req.runId, done);
    if (this.stopping) {
      job.stopCause = 'stopped';
      this.finishUnstarted(job, { status: 'failure', exitCode: null, reason: STOPPED_RUN_REASON });
    } else {
      const queue = this.queues.get(req.workspaceId);
      if (queue === undefined) this.queues.set(req.workspaceId, [job]);
      else queue.push(job);
      this.pump();
    }
    return { runId: req.runId, spawned, done };
  }

  /**
   * Stops a run as `killed`: a queued run is dropped, a running one gets SIGTERM on its
   * process group and SIGKILL after the grace period. Returns false when the runner does not
   * hold the run.
   */
  kill(runId: string): boolean {
    const job = this.jobs.get(runId);
    if (job === undefined) return false;
    this.requestStop(job, 'killed', 'the task was killed');
    return true;
  }

  /** The last `limit` lines of a run's log (all when omitted), oldest first. */
  readRunLog(runId: string, options: { limit?: number } = {}): Promise<TaskRunLogLineDto[]> {
    return this.logs.read(runId, options);
  }

  /** {@link TaskRunner.readRunLog}, streamed in constant memory. */
  runLogLines(runId: string, options: { limit?: number } = {}): AsyncIterable<TaskRunLogLineDto> {
    return this.logs.lines(runId, options);
  }

  /**
   * A run's lines, existing then live, ending after the final status line (then `onFinal`
   * is called) or on abort.
   */
  followRunLog(
    runId: string,
    signal?: AbortSignal,
    onFinal?: () => void,
    ended?: RunEnded,
  ): AsyncIterable<TaskRunLogLineDto> {
    return this.logs.follow(runId, signal, onFinal, ended);
  }

  /**
   * Closes the log of a run that a previous server process left `running`: if its process
   * group is verifiably still alive (Linux: the process runs this run's entry) it is killed,
   * then the final line `failure (<reason>)` is appended.
   */
  async closeLostRun(runId: string, pid: number | null, reason: string = LOST_RUN_REASON): Promise<void> {
    if (pid !== null && this.launcher.owns(pid, join(this.options.runsDir, runId)))
      signalGroup(pid, 'SIGKILL');
    await this.writeFinalLine(runId, 'failure', reason);
  }

  /**
   * Appends the final status line to the log of a run this runner never executed (lost, or
   * killed before it was launched).
   */
  async writeFinalLine(runId: string, status: RunOutcome['status'], reason: string): Promise<void> {
    await this.logs.appendFinal(runId, this.stamper.stamp(), `${FINAL_LINE_PREFIX}${status} (${reason})`);
  }

  /**
   * Stops taking work, ends queued runs and stops running ones (SIGTERM, then SIGKILL after
   * the grace period), all as `failure` with the server-stopping reason. Resolves when every
   * run has ended and its log is closed.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const job of [...this.jobs.values()]) this.requestStop(job, 'stopped', STOPPED_RUN_REASON);
    await Promise.all([this.launcher.stop(), ...this.dones.values()]);
  }

  private requestStop(job: Job, cause: StopCause, detail: string): void {
    if (job.finished || job.stopCause !== null) return;
    job.stopCause = cause;
    job.stopDetail = detail;
    const queue = this.queues.get(job.req.workspaceId) ?? [];
    const queued = queue.indexOf(job);
    if (queued >= 0) {
      queue.splice(queued, 1);
      if (queue.length === 0) this.queues.delete(job.req.workspaceId);
      this.finishUnstarted(job, this.stoppedOutcome(job, null));
      return;
    }
    // A run still preparing is stopped right after preparation (see execute()).
    if (job.proc !== null) this.terminate(job);
  }

  private terminate(job: Job): void {
    const proc = job.proc;
    if (proc === null || job.terminating) return;
    job.terminating = true;
    proc.signal('SIGTERM');
    job.timers.push(this.clock.setTimeout(() => proc.signal('SIGKILL'), this.killGraceMs));
  }

  private pump(): void {
    for (let job = this.next(); job !== null; job = this.next()) {
      const workspaceId = job.req.workspaceId;
      this.active++;
      this.activeIn.set(workspaceId, (this.activeIn.get(workspaceId) ?? 0) + 1);
      this.execute(job)
        .catch((err: unknown) => {
          this.onError(err, `run ${job.req.runId}`);
          return this.finish(job, {
            status: 'failure',
            exitCode: null,
            reason: `internal error: ${errorText(err)}`,
          });
        })
        .catch((err: unknown) => this.onError(err, `closing run ${job.req.runId}`))
        .finally(() => {
          // The slot is free and the run directory gone before anyone hears the outcome.
          this.active--;
          const left = (this.activeIn.get(workspaceId) ?? 1) - 1;
          if (left > 0) this.activeIn.set(workspaceId, left);
          else this.activeIn.delete(workspaceId);
          this.release(job);
          this.pump();
        });
    }
  }

  /**
   * Takes the run a free slot goes to, or null (no free slot, or every waiting workspace at
   * its cap): the first waiting run of the first workspace after the one served last (in
   * the order they started waiting) that is under its cap.
   */
  private next(): Job | null {
    if (this.active >= this.concurrency) return null;
    const ids = [...this.queues.keys()];
    const after = this.lastServed === null ? -1 : ids.indexOf(this.lastServed);
    for (let i = 1; i <= ids.length; i++) {
      const id = ids[(after + i + ids.length) % ids.length] as number;
      if ((this.activeIn.get(id) ?? 0) >= this.workspaceConcurrency) continue;
      const queue = this.queues.get(id) as Job[];
      const job = queue.shift() as Job;
      if (queue.length === 0) this.queues.delete(id);
      this.lastServed = id;
      return job;
    }
    return null;
  }

  private async execute(job: Job): Promise<void> {
    const { req } = job;
    // The directory the launcher hands over (a warm process's) may differ from this one.
    let runDir = join(this.options.runsDir, req.runId);
    let token: RunToken | null = null;
    try {
      let spec: LaunchSpec;
      let prepared = false;
      try {
        // The package and the token side by side (each may be a database round trip); a token
        // issued for a run whose package failed is still revoked below.
        const [pkgResult, tokenResult, dirResult] = await Promise.allSettled([
          typeof req.package === 'function' ? req.package() : req.package,
          this.options.issueRunToken(
            req.workspaceId,
            req.runId,
            this.tokenTtlMs(req),
            req.runsAs ?? 'workspace',
          ),
          this.ensureRunsDir(),
        ]);
        if (tokenResult.status === 'fulfilled') token = tokenResult.value;
        if (pkgResult.status === 'rejected') throw pkgResult.reason;
        if (tokenResult.status === 'rejected') throw tokenResult.reason;
        if (dirResult.status === 'rejected') throw dirResult.reason;
        const pkg = pkgResult.value;
        const runToken = tokenResult.value;
        const runtime = this.runtimeFor(pkg);
        if (req.timeoutSeconds === null) this.scheduleRenewal(job, runToken);
        spec = await this.launchSpec(
          runtime,
          pkg,
          runDir,
          {
            QUOLL_URL:
              typeof this.options.serverUrl === 'function'
                ? this.options.serverUrl()
                : this.options.serverUrl,
            QUOLL_TOKEN: runToken.token,
            QUOLL_TASK_ID: req.taskId,
            QUOLL_TASK_RUN_ID: req.runId,
            QUOLL_TASK_ARGS: JSON.stringify(req.jsonArgs),
          },
          req.limits ?? {},
        );
        const given = await this.launcher.prepare(spec);
        prepared = true;
        if (given !== runDir) {
          runDir = given;
          spec = { ...spec, runDir };
          spec = await this.launchSpec(runtime, pkg, runDir, spec.runEnv, req.limits ?? {});
          await this.launcher.prepare(spec);
        }
        await fillRunDir(pkg, runDir, this.taskUser);
      } catch (err) {
        if (prepared) this.launcher.abandon(spec!);
        if (job.stopCause !== null) return await this.finish(job, this.stoppedOutcome(job, null));
        return await this.finish(job, {
          status: 'failure',
          exitCode: null,
          reason: `could not start: ${errorText(err)}`,
        });
      }
      if (job.stopCause !== null) {
        this.launcher.abandon(spec);
        return await this.finish(job, this.stoppedOutcome(job, null));
      }
      const outcome = await this.spawnAndWait(job, spec);
      await this.finish(job, await this.checkDisk(job, outcome));
    } finally {
      if (token !== null)
        await token
          .revoke()
          .catch((err: unknown) => this.onError(err, `revoking the token of run ${req.runId}`));
      if (this.options.keepRunDirs !== true) {
        await removeRunDir(runDir).catch((err: unknown) => this.onError(err, `removing ${runDir}`));
      }
    }
  }

  /** The runtime a package names (Node by default). */
  private runtimeFor(pkg: PackagedOrchestration): RunRuntime {
    const name = pkg.runtime ?? 'node';
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) throw new Error(`no runtime "${name}" on this server`);
    return runtime;
  }

  /** Everything a launcher needs to start `pkg` in `runDir` with the per-run variables `runEnv`. */
  private async launchSpec(
    runtime: RunRuntime,
    pkg: PackagedOrchestration,
    runDir: string,
    runEnv: Record<string, string>,
    limits: Partial<ResourceLimits>,
  ): Promise<LaunchSpec> {
    const entry = normalize(pkg.entry);
    if (isAbsolute(entry) || entry.startsWith('..'))
      throw new Error(`entry ${pkg.entry} is outside the package`);
    const workDir = this.launcher.workDir(runDir);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.options.env ?? process.env))
      if (v !== undefined && runtime.envAllow.test(k)) env[k] = v;
    const entryInside = join(workDir, entry);
    const paths = {
      workDir,
      sandboxed: this.launcher.sandboxed,
      insidePath: (host: string, name: string) => this.launcher.insidePath(host, name),
      scratchDir: join(this.options.runsDir, '.quoll'),
    };
    let argv = runtime.argv(entryInside);
    if (runtime.runCommand !== undefined) {
      const command = await runtime.runCommand(entryInside, pkg, paths);
      argv = command.argv;
      Object.assign(env, command.env);
    }
    return {
      runtime: runtime.name,
      warm: runtime.warm,
      argv,
      entry: entryInside,
      args: [],
      runDir,
      env,
      runEnv,
      user: this.taskUser,
      binds: [...runtime.installBinds(env), ...(await runtime.dependencyBinds(pkg, paths))],
      limits: tighterLimits(this.options.limits ?? NO_LIMITS, limits),
    };
  }

  /** The token lifetime of a run: its timeout plus the kill grace and a margin. */
  private tokenTtlMs(req: RunRequest): number {
    if (req.timeoutSeconds === null) return UNBOUNDED_RUN_TOKEN_TTL_MS;
    return req.timeoutSeconds * 1000 + this.killGraceMs + PIPE_CLOSE_CAP_MS + RUN_TOKEN_MARGIN_MS;
  }

  /** Keeps the token of a run without a timeout alive: renewed every quarter of its TTL. */
  private scheduleRenewal(job: Job, token: RunToken): void {
    const renew = token.renew;
    if (renew === undefined) return;
    const every = UNBOUNDED_RUN_TOKEN_TTL_MS / 4;
    const arm = (): void => {
      job.timers.push(
        this.clock.setTimeout(() => {
          if (job.finished) return;
          renew(UNBOUNDED_RUN_TOKEN_TTL_MS).catch((err: unknown) =>
            this.onError(err, `renewing the token of run ${job.req.runId}`),
          );
          arm();
        }, every),
      );
    };
    arm();
  }

  /** Creates the runs directory once (a failure, e.g. a full disk, is retried by the next run). */
  private ensureRunsDir(): Promise<void> {
    this.runsDirReady ??= ensureRunsDir(this.options.runsDir, this.taskUser);
    this.runsDirReady.catch(() => (this.runsDirReady = null));
    return this.runsDirReady;
  }

  private spawnAndWait(
    job: Job,
    spec: LaunchSpec,
  ): Promise<Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'>> {
    const { req } = job;
    return new Promise((resolvePromise) => {
      let launched: LaunchedProcess;
      try {
        launched = this.launcher.launch(spec);
      } catch (err) {
        resolvePromise({ status: 'failure', exitCode: null, reason: `could not start: ${errorText(err)}` });
        return;
      }
      job.proc = launched;
      const proc = launched.child;
      const capture = (stream: 'stdout' | 'stderr'): LineSplitter => {
        let full = false;
        // Redaction sees whole lines, before long ones are cut, so no secret is split.
        const splitter = new LineSplitter(
          (line) => {
            if (!job.log.write(this.stamper.stamp(), stream, line)) full = true;
          },
          { redact: (text) => this.redact(text, req.runId) },
        );
        const pipe = proc[stream];
        pipe?.on('data', (chunk: Buffer) => {
          splitter.push(chunk);
          if (!full) return;
          // The log is behind: let the run's pipe fill (and the run wait) until it catches up.
          full = false;
          pipe.pause();
          job.log.onDrain(() => pipe.resume());
        });
        return splitter;
      };
      const out = capture('stdout');
      const err = capture('stderr');
      let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      let spawnError: Error | null = null;
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        out.end();
        err.end();
        if (spawnError !== null && exit === null) {
          resolvePromise({
            status: 'failure',
            exitCode: null,
            reason: `could not start: ${spawnError.message}`,
          });
          return;
        }
        const { code, signal } = exit ?? { code: null, signal: null };
        if (job.stopCause !== null) {
          const o = this.stoppedOutcome(job, code);
          resolvePromise({ status: o.status, exitCode: o.exitCode, reason: o.reason });
        } else if (code === 0) {
          resolvePromise({ status: 'success', exitCode: 0, reason: 'exit 0' });
        } else if (code !== null) {
          resolvePromise({ status: 'failure', exitCode: code, reason: `exit ${code}` });
        } else {
          resolvePromise({ status: 'failure', exitCode: null, reason: `signal ${signal ?? 'unknown'}` });
        }
      };
      proc.once('error', (e) => {
        spawnError = e;
        // No process came to be: there will be no 'close' to wait for.
        if (proc.pid === undefined) settle();
      });
      const onSpawned = (): void => {
        job.startedAt = this.clock.now();
        const pid = proc.pid as number;
        job.resolveSpawned(pid);
        this.options.onSpawn?.(req.runId, pid);
        this.watchDisk(job, spec, launched);
        if (req.timeoutSeconds !== null) {
          const seconds = req.timeoutSeconds;
          job.timers.push(
            this.clock.setTimeout(
              () => this.requestStop(job, 'timed_out', `killed after ${seconds} s`),
              seconds * 1000,
            ),
          );
        }
        // kill() may have arrived between spawn() and now.
        if (job.stopCause !== null) this.terminate(job);
      };
      // A warm process is already running (its 'spawn' is past); a cold one is started now.
      if (launched.alreadyRunning) onSpawned();
      else proc.once('spawn', onSpawned);
      proc.once('exit', (code, signal) => {
        exit = { code, signal };
        // The run's last look at its directory comes once it has ended (see checkDisk).
        void job.disk?.stop();
        // The run is its entry process: reap whatever it left (its group, or its sandbox).
        launched.signal('SIGKILL');
        // A process that escaped the group (setsid) could hold the pipes open forever.
        job.timers.push(
          this.clock.setTimeout(() => {
            proc.stdout?.destroy();
            proc.stderr?.destroy();
            settle();
          }, PIPE_CLOSE_CAP_MS),
        );
      });
      proc.once('close', settle);
    });
  }

  /**
   * The outcome of a run with a disk limit: a last look at its directory once it has ended
   * (it may have gone past the limit since the watcher's last walk, then exited), so a run
   * over its limit ends `failure` whatever its exit code, unless it was stopped otherwise.
   */
  private async checkDisk(
    job: Job,
    outcome: Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'>,
  ): Promise<Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'>> {
    const disk = job.disk;
    if (disk === null) return outcome;
    await disk.stop();
    if (job.stopCause !== null && job.stopCause !== 'disk') return outcome;
    if (job.stopCause === null && !(await disk.check())) return outcome;
    return { status: 'failure', exitCode: outcome.exitCode, reason: job.stopDetail ?? 'disk limit exceeded' };
  }

  /** Starts watching the run's directory when it has a disk limit: past it, the run is killed at once. */
  private watchDisk(job: Job, spec: LaunchSpec, proc: LaunchedProcess): void {
    const limit = spec.limits.diskBytes;
    if (limit === null) return;
    job.disk = new DiskWatcher({
      dirs: [spec.runDir],
      limitBytes: limit,
      clock: this.clock,
      ...(this.options.diskCheckIntervalMs !== undefined
        ? { intervalMs: this.options.diskCheckIntervalMs }
        : {}),
      ...(this.options.diskMaxEntries !== undefined ? { maxEntries: this.options.diskMaxEntries } : {}),
      onExceeded: (reason) => {
        if (job.finished || job.stopCause !== null) return;
        job.stopCause = 'disk';
        job.stopDetail = reason;
        // No grace period: every second of it is more written.
        job.terminating = true;
        proc.signal('SIGKILL');
      },
    });
    job.disk.start();
  }

  private stoppedOutcome(
    job: Job,
    code: number | null,
  ): Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'> {
    switch (job.stopCause) {
      case 'killed':
        return { status: 'killed', exitCode: code, reason: job.stopDetail ?? 'killed' };
      case 'timed_out':
        return { status: 'timed_out', exitCode: code, reason: job.stopDetail ?? 'timed out' };
      case 'disk':
        return { status: 'failure', exitCode: code, reason: job.stopDetail ?? 'disk limit exceeded' };
      case 'stopped':
      case null:
        return { status: 'failure', exitCode: code, reason: STOPPED_RUN_REASON };
    }
  }

  /** Records the outcome and writes the final line; {@link TaskRunner.release} then announces it. */
  private async finish(job: Job, o: Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'>): Promise<void> {
    if (job.finished) return;
    job.finished = true;
    for (const t of job.timers) this.clock.clearTimeout(t);
    job.timers = [];
    job.resolveSpawned(null);
    job.outcome = { runId: job.req.runId, ...o, startedAt: job.startedAt, finishedAt: this.clock.now() };
    // The final line reaches the disk before anyone learns the outcome.
    await job.log.finish(
      this.stamper.stamp(),
      `${FINAL_LINE_PREFIX}${job.outcome.status} (${job.outcome.reason})`,
    );
  }

  /** Ends a run that never got a slot. */
  private finishUnstarted(job: Job, o: Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'>): void {
    this.finish(job, o)
      .catch((err: unknown) => this.onError(err, `closing run ${job.req.runId}`))
      .finally(() => this.release(job));
  }

  private release(job: Job): void {
    this.jobs.delete(job.req.runId);
    this.dones.delete(job.req.runId);
    job.resolveDone(
      job.outcome ?? {
        runId: job.req.runId,
        status: 'failure',
        exitCode: null,
        reason: 'internal error',
        startedAt: job.startedAt,
        finishedAt: this.clock.now(),
      },
    );
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
