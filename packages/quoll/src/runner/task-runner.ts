import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, cp, lchown, lstat, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import type { TaskRunLogLineDto } from '@quoll/client/wire';
import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import { LineSplitter } from './line-splitter.js';
import { NanoTimestamper } from './nano-timestamper.js';
import { RunLogStore } from './run-log-store.js';
import type { RunLogWriter } from './run-log-store.js';
import type { TaskUser } from './task-user.js';
import { WarmPool } from './warm-pool.js';
import type { WarmSpawnSpec } from './warm-pool.js';

/** A packaged orchestration, ready to run: what the orchestrations domain hands the runner. */
export interface PackagedOrchestration {
  /** Directory with the orchestration's files (the zip root after packaging). */
  dir: string;
  /** The ES module to run, relative to `dir` (`.mjs` or `.js`). */
  entry: string;
  /** Installed dependencies, linked (not copied) as `node_modules` in the run directory. @default `<dir>/node_modules` when present */
  nodeModulesDir?: string;
}

/** A token a run uses to call the API; issued with a time to live, revoked when the run ends. */
export interface RunToken {
  token: string;
  revoke(): Promise<void>;
  /**
   * Pushes the expiry to `ttlMs` from now; called periodically for runs without a timeout.
   * @default none (such a run's token then lives for the TTL it was issued with)
   */
  renew?: (ttlMs: number) => Promise<void>;
}

/** What to run. */
export interface RunRequest {
  runId: string;
  taskId: string;
  workspaceId: number;
  /** Passed to the run as `QUOLL_TASK_ARGS` (JSON). */
  jsonArgs: Record<string, unknown>;
  /** Seconds before the run is stopped as `timed_out`; null = no limit. */
  timeoutSeconds: number | null;
  /** The package, or a function that finds it when the run gets a slot. */
  package: PackagedOrchestration | (() => Promise<PackagedOrchestration>);
}

/** How a run ended: a serialisable outcome, never a host exception. */
export interface RunOutcome {
  runId: string;
  status: 'success' | 'failure' | 'timed_out' | 'killed';
  exitCode: number | null;
  /** Short cause, also the parenthesised part of the final log line (e.g. `exit 0`). */
  reason: string;
  /** When the process was spawned (clock ms), or null when it never started. */
  startedAt: number | null;
  finishedAt: number;
}

/** A run handed to the runner. */
export interface RunHandle {
  runId: string;
  /** Resolves with the process id once spawned, or null if the run ended before spawning. */
  spawned: Promise<number | null>;
  /** Resolves when the run has ended and its final log line is on disk. */
  done: Promise<RunOutcome>;
}

/** Options of {@link TaskRunner}. */
export interface TaskRunnerOptions {
  /** Directory of the per-run log files. */
  logsDir: string;
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
   * Issues the workspace-scoped token a run gets as `QUOLL_TOKEN`, valid for `ttlMs`: the
   * run's timeout plus the kill grace and a margin, or {@link UNBOUNDED_RUN_TOKEN_TTL_MS}
   * (renewed while the run lives) for runs without a timeout.
   */
  issueRunToken(workspaceId: number, runId: string, ttlMs: number): Promise<RunToken>;
  /**
   * Applied to every captured line of a run before it is stored (secret masking); gets the
   * run id so each run hides the values it read. @default identity
   */
  redact?: (line: string, runId: string) => string;
  /** Time source for timeouts, grace periods and log timestamps. @default systemClock */
  clock?: Clock;
  /** Runs executing at once; further runs wait in FIFO order. @default 4 */
  concurrency?: number;
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
   * Environment the run's environment is taken from; only the allow-listed variables
   * (PATH, HOME, locale, TZ, temp dirs, proxies, CA certs) pass, so server secrets do not
   * leak into user code. @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /** Node executable. @default process.execPath */
  nodePath?: string;
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

/** Environment variables passed from the server to runs. */
const ENV_ALLOW =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR|TEMP|TMP|SYSTEMROOT|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy)$/;

/** How long to wait for a run's pipes to close after its process exits. */
const PIPE_CLOSE_CAP_MS = 2_000;

/** Token lifetime of a run without a timeout; renewed every quarter of it while the run lives. */
export const UNBOUNDED_RUN_TOKEN_TTL_MS = 24 * 3600 * 1000;

/** Extra token lifetime past a run's timeout and kill grace (log flush, revoke). */
const RUN_TOKEN_MARGIN_MS = 60_000;

/** Node flags of every run process: stack traces of compiled TypeScript point at the user's lines. */
const NODE_FLAGS = ['--enable-source-maps'] as const;

type StopCause = 'killed' | 'timed_out' | 'stopped';

interface Job {
  req: RunRequest;
  log: RunLogWriter;
  stopCause: StopCause | null;
  stopDetail: string | null;
  child: ChildProcess | null;
  startedAt: number | null;
  timers: TimerHandle[];
  resolveSpawned: (pid: number | null) => void;
  resolveDone: (o: RunOutcome) => void;
  finished: boolean;
  terminating: boolean;
  outcome: RunOutcome | null;
}

/**
 * Executes task runs as child processes, each in its own process group and fresh working
 * directory, with a concurrency limit (FIFO queue), timeouts, kill, and line-by-line output
 * capture into durable per-run log files that end with a final status line.
 *
 * A run ends when its entry process exits; anything it left behind in its process group
 * is killed then.
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
  private readonly queue: Job[] = [];
  private readonly jobs = new Map<string, Job>();
  private readonly dones = new Map<string, Promise<RunOutcome>>();
  private readonly pool: WarmPool;
  private readonly taskUser: TaskUser | null;
  private runsDirReady: Promise<void> | null = null;
  private active = 0;
  private stopping = false;

  constructor(private readonly options: TaskRunnerOptions) {
    this.clock = options.clock ?? systemClock;
    this.stamper = new NanoTimestamper(this.clock);
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
    this.killGraceMs = Math.max(0, options.killGraceMs ?? 5_000);
    this.redact = options.redact ?? ((line) => line);
    this.onError =
      options.onError ?? ((err, context) => console.error(`quoll: task runner (${context}):`, err));
    this.logs = new RunLogStore(options.logsDir, this.onError);
    this.taskUser = options.taskUser ?? null;
    this.pool = new WarmPool({
      size: Math.max(0, Math.min(this.concurrency, Math.floor(options.warmProcesses ?? 2))),
      nodePath: options.nodePath ?? process.execPath,
      nodeFlags: NODE_FLAGS,
      dir: options.runsDir,
      onError: this.onError,
    });
  }

  /**
   * Starts the warm processes (runs also start them on first use). Resolves once they are
   * spawned; {@link TaskRunner.stop} kills them.
   */
  async warm(): Promise<void> {
    if (this.stopping) return;
    await this.ensureRunsDir();
    await this.pool.fill(this.spawnSpec());
  }

  /** Process ids of the idle warm processes (diagnostics and tests). */
  get warmPids(): number[] {
    return this.pool.idlePids;
  }

  /** Runs executing now (preparing or with a live process). */
  get activeCount(): number {
    return this.active;
  }

  /** Runs waiting for a slot. */
  get queuedCount(): number {
    return this.queue.length;
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
      child: null,
      startedAt: null,
      timers: [],
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
      this.queue.push(job);
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

  /**
   * A run's lines, existing then live, ending after the final status line (then `onFinal`
   * is called) or on abort.
   */
  followRunLog(runId: string, signal?: AbortSignal, onFinal?: () => void): AsyncIterable<TaskRunLogLineDto> {
    return this.logs.follow(runId, signal, onFinal);
  }

  /**
   * Closes the log of a run that a previous server process left `running`: if its process
   * group is verifiably still alive (Linux: the process runs this run's entry) it is killed,
   * then the final line `failure (<reason>)` is appended.
   */
  async closeLostRun(runId: string, pid: number | null, reason: string = LOST_RUN_REASON): Promise<void> {
    if (pid !== null && this.ownsProcess(runId, pid)) signalGroup(pid, 'SIGKILL');
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
    await Promise.all([this.pool.stop(), ...this.dones.values()]);
  }

  private requestStop(job: Job, cause: StopCause, detail: string): void {
    if (job.finished || job.stopCause !== null) return;
    job.stopCause = cause;
    job.stopDetail = detail;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.finishUnstarted(job, this.stoppedOutcome(job, null));
      return;
    }
    // A run still preparing is stopped right after preparation (see execute()).
    if (job.child !== null) this.terminate(job);
  }

  private terminate(job: Job): void {
    const pid = job.child?.pid;
    if (pid === undefined || job.terminating) return;
    job.terminating = true;
    signalGroup(pid, 'SIGTERM');
    job.timers.push(this.clock.setTimeout(() => signalGroup(pid, 'SIGKILL'), this.killGraceMs));
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const job = this.queue.shift() as Job;
      this.active++;
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
          this.release(job);
          this.pump();
        });
    }
  }

  private async execute(job: Job): Promise<void> {
    const { req } = job;
    const runDir = join(this.options.runsDir, req.runId);
    let token: RunToken | null = null;
    try {
      let entryPath: string;
      try {
        const pkg = typeof req.package === 'function' ? await req.package() : req.package;
        await this.ensureRunsDir();
        entryPath = await prepareRunDir(pkg, runDir, this.taskUser);
        token = await this.options.issueRunToken(req.workspaceId, req.runId, this.tokenTtlMs(req));
        if (req.timeoutSeconds === null) this.scheduleRenewal(job, token);
      } catch (err) {
        if (job.stopCause !== null) return await this.finish(job, this.stoppedOutcome(job, null));
        return await this.finish(job, {
          status: 'failure',
          exitCode: null,
          reason: `could not start: ${errorText(err)}`,
        });
      }
      if (job.stopCause !== null) return await this.finish(job, this.stoppedOutcome(job, null));
      const outcome = await this.spawnAndWait(job, entryPath, runDir, token.token);
      await this.finish(job, outcome);
    } finally {
      if (token !== null)
        await token
          .revoke()
          .catch((err: unknown) => this.onError(err, `revoking the token of run ${req.runId}`));
      if (this.options.keepRunDirs !== true) {
        await rm(runDir, { recursive: true, force: true }).catch((err: unknown) =>
          this.onError(err, `removing ${runDir}`),
        );
      }
    }
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

  /** Creates the runs directory once: private, not a symlink, owned by this process's user. */
  private ensureRunsDir(): Promise<void> {
    this.runsDirReady ??= (async () => {
      const dir = this.options.runsDir;
      // A task user must be able to enter its own run directory, but not list the others.
      const mode = this.taskUser === null ? 0o700 : 0o711;
      await mkdir(dir, { recursive: true, mode });
      const st = await lstat(dir);
      const uid = process.getuid?.();
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) {
        throw new Error(
          `The runs directory ${dir} is not a directory owned by this user; remove it or set QUOLL_RUNS_DIR elsewhere.`,
        );
      }
      await chmod(dir, mode);
    })();
    // A failure (e.g. a full disk) is retried by the next run.
    this.runsDirReady.catch(() => (this.runsDirReady = null));
    return this.runsDirReady;
  }

  /** How run processes are started: the allow-listed environment and the task user. */
  private spawnSpec(): WarmSpawnSpec {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(this.options.env ?? process.env)) if (ENV_ALLOW.test(k)) env[k] = v;
    return { env, uid: this.taskUser?.uid ?? null, gid: this.taskUser?.gid ?? null };
  }

  private spawnAndWait(
    job: Job,
    entryPath: string,
    runDir: string,
    token: string,
  ): Promise<Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'>> {
    const { req } = job;
    const spec = this.spawnSpec();
    const runEnv: Record<string, string> = {
      QUOLL_URL:
        typeof this.options.serverUrl === 'function' ? this.options.serverUrl() : this.options.serverUrl,
      QUOLL_TOKEN: token,
      QUOLL_TASK_ID: req.taskId,
      QUOLL_TASK_RUN_ID: req.runId,
      QUOLL_TASK_ARGS: JSON.stringify(req.jsonArgs),
    };
    return new Promise((resolvePromise) => {
      // A warm process is already running (its 'spawn' is past); a cold one is started here.
      let child: ChildProcess | null = this.pool.take(spec);
      const warm = child !== null;
      if (child !== null) {
        WarmPool.assign(child, { cwd: runDir, env: runEnv, entry: entryPath, argv: [] });
      } else {
        try {
          // Own process group (detached) so a kill reaches everything the run started.
          child = spawn(this.options.nodePath ?? process.execPath, [...NODE_FLAGS, entryPath], {
            cwd: runDir,
            detached: true,
            env: { ...spec.env, ...runEnv },
            stdio: ['ignore', 'pipe', 'pipe'],
            ...(spec.uid !== null ? { uid: spec.uid } : {}),
            ...(spec.gid !== null ? { gid: spec.gid } : {}),
          });
        } catch (err) {
          resolvePromise({ status: 'failure', exitCode: null, reason: `could not start: ${errorText(err)}` });
          return;
        }
      }
      const proc = child;
      job.child = proc;
      const capture = (stream: 'stdout' | 'stderr'): LineSplitter => {
        // Redaction sees whole lines, before long ones are cut, so no secret is split.
        const splitter = new LineSplitter((line) => job.log.write(this.stamper.stamp(), stream, line), {
          redact: (text) => this.redact(text, req.runId),
        });
        proc[stream]?.on('data', (chunk: Buffer) => splitter.push(chunk));
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
      if (warm) onSpawned();
      else proc.once('spawn', onSpawned);
      proc.once('exit', (code, signal) => {
        exit = { code, signal };
        // The run is its entry process: reap whatever it left in its group.
        if (proc.pid !== undefined) signalGroup(proc.pid, 'SIGKILL');
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

  private stoppedOutcome(
    job: Job,
    code: number | null,
  ): Omit<RunOutcome, 'runId' | 'startedAt' | 'finishedAt'> {
    switch (job.stopCause) {
      case 'killed':
        return { status: 'killed', exitCode: code, reason: job.stopDetail ?? 'killed' };
      case 'timed_out':
        return { status: 'timed_out', exitCode: code, reason: job.stopDetail ?? 'timed out' };
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

  /**
   * Whether `pid` is (Linux, /proc) this run's process: a cold one names the run directory
   * on its command line; a warm one runs this runner's launcher with the run directory as
   * its working directory.
   */
  private ownsProcess(runId: string, pid: number): boolean {
    const runDir = join(resolve(this.options.runsDir), runId);
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(runDir)) return true;
      if (!cmdline.includes(resolve(this.pool.launcherPath))) return false;
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      return cwd === runDir || cwd.startsWith(runDir + sep);
    } catch {
      return false;
    }
  }
}

/**
 * Copies the package into a fresh private run directory (0700, owned by the task user when
 * one is set) and links its dependencies; returns the entry's absolute path.
 */
async function prepareRunDir(
  pkg: PackagedOrchestration,
  runDir: string,
  user: TaskUser | null,
): Promise<string> {
  const entry = normalize(pkg.entry);
  if (isAbsolute(entry) || entry.startsWith('..'))
    throw new Error(`entry ${pkg.entry} is outside the package`);
  const source = resolve(pkg.dir);
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  await chmod(runDir, 0o700);
  const topModules = join(source, 'node_modules');
  await cp(source, runDir, { recursive: true, filter: (src) => resolve(src) !== topModules });
  const modules = pkg.nodeModulesDir ?? (existsSync(topModules) ? topModules : undefined);
  if (modules !== undefined) await symlink(resolve(modules), join(runDir, 'node_modules'), 'dir');
  const entryPath = join(resolve(runDir), entry);
  if (!existsSync(entryPath)) throw new Error(`entry ${pkg.entry} not found in the package`);
  if (user !== null) await chownTree(runDir, user);
  return entryPath;
}

/** Gives a directory tree (links themselves, not their targets) to the task user. */
async function chownTree(dir: string, user: TaskUser): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  for (const name of await readdir(dir, { recursive: true })) {
    await lchown(join(dir, name), user.uid, user.gid);
  }
}

/** Sends a signal to a whole process group; a group that is already gone is fine. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group has exited already.
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
