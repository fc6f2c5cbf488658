import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { encodeLaunchMessage } from '../launch-protocol.js';
import type { LaunchedProcess, LaunchSpec, WarmRuntime } from '../launch-spec.js';
import type { RunLauncher } from './run-launcher.js';

/** Options of {@link WarmLauncher}. */
export interface WarmLauncherOptions {
  /** The launcher that starts the waiting processes (and runs no warm process can serve). */
  inner: RunLauncher;
  /** Idle processes kept ready; 0 disables warm processes. */
  size: number;
  /**
   * Directory of the launcher files and of the waiting processes' directories: the runs
   * directory, so a waiting process's directory becomes a run directory by a rename.
   */
  dir: string;
  /** Where failures to start waiting processes are reported. */
  onError: (err: unknown, context: string) => void;
}

interface Idle {
  proc: LaunchedProcess;
  key: string;
  /** The directory the process was started in; it becomes the run's directory when taken. */
  slotDir: string;
  exited: boolean;
  onExit: () => void;
}

/**
 * Keeps pre-started processes waiting for a run, in front of another launcher: each runs
 * its runtime's launcher file (see `launch-protocol.ts`) in its own, still empty directory.
 * A run whose runtime, user, environment and — for a sandbox, whose mounts are fixed at
 * spawn — binds match a waiting process takes it: the process's directory becomes the run's
 * directory, the runner fills it, and the process is sent the launch message. Every
 * other run goes to the inner launcher. Taking one skips the runtime's start-up (the larger
 * part of a trivial run's latency); the pool refills in the background after each run, for
 * the most recent kind of run, evicting waiting processes of other kinds beyond `size`.
 * A process that died while waiting is dropped, never handed out.
 *
 * @example
 * const launcher = new WarmLauncher({ inner: new DirectLauncher(), size: 2, dir: runsDir, onError });
 * await launcher.fill(spec); // optional: start the waiting processes now
 * const runDir = await launcher.prepare(spec); // a waiting process's directory, or spec.runDir
 * const proc = launcher.launch(spec);
 * await launcher.stop();
 */
export class WarmLauncher implements RunLauncher {
  private readonly inner: RunLauncher;
  private readonly idle: Idle[] = [];
  /** Every waiting process (starting, idle or reserved), so stop() can end all of them. */
  private readonly owned = new Set<Idle>();
  /** Processes taken for a run being prepared, by run directory. */
  private readonly reserved = new Map<string, Idle>();
  private readonly launcherFiles = new Map<string, Promise<string>>();
  private filling = false;
  private stopped = false;
  private lastSpec: LaunchSpec | null = null;

  constructor(private readonly options: WarmLauncherOptions) {
    this.inner = options.inner;
  }

  get name(): string {
    return this.inner.name;
  }

  get sandboxed(): boolean {
    return this.inner.sandboxed;
  }

  get bindsAtSpawn(): boolean {
    return this.inner.bindsAtSpawn;
  }

  /** Idle processes ready to take. */
  get idleCount(): number {
    return this.idle.filter((i) => !i.exited).length;
  }

  /** Process ids of the idle processes (for tests and diagnostics). */
  get idlePids(): number[] {
    return this.idle.filter((i) => !i.exited).map((i) => i.proc.child.pid as number);
  }

  workDir(runDir: string): string {
    return this.inner.workDir(runDir);
  }

  insidePath(host: string, name: string): string {
    return this.inner.insidePath(host, name);
  }

  /** The host path of a runtime's launcher file. */
  launcherPath(warm: WarmRuntime): string {
    return join(this.options.dir, warm.fileName);
  }

  /**
   * Hands over a waiting process's directory (the runner then calls `prepare` again with a
   * spec for that directory, which prepares it in place), or prepares `spec.runDir` through
   * the inner launcher when no waiting process fits.
   */
  async prepare(spec: LaunchSpec): Promise<string> {
    // The second call, for a handed-over directory: links and ownership, in place.
    if (this.reserved.has(spec.runDir)) return this.inner.prepare(spec);
    const found = this.take(spec);
    if (found === null) return this.inner.prepare(spec);
    // The run gets the waiting process's directory as it is: a sandbox may still be reading
    // its path to mount it, so it is never renamed.
    this.reserved.set(found.slotDir, found);
    return Promise.resolve(found.slotDir);
  }

  launch(spec: LaunchSpec): LaunchedProcess {
    const taken = this.reserved.get(spec.runDir);
    if (taken === undefined) return this.inner.launch(spec);
    this.reserved.delete(spec.runDir);
    this.owned.delete(taken);
    const child = taken.proc.child;
    child.off('exit', taken.onExit);
    // It died while the run was being prepared: start the run cold in the same directory.
    if (taken.exited || child.exitCode !== null || child.signalCode !== null) return this.inner.launch(spec);
    child.stdin?.on('error', () => {
      // The process died before reading its message: its exit is reported like any other.
    });
    child.stdin?.end(
      encodeLaunchMessage({
        v: 1,
        kind: 'run',
        cwd: this.inner.workDir(spec.runDir),
        env: { ...spec.runEnv },
        entry: spec.entry,
        argv: [...spec.args],
      }),
    );
    return { child, alreadyRunning: true, signal: taken.proc.signal };
  }

  abandon(spec: LaunchSpec): void {
    const taken = this.reserved.get(spec.runDir);
    if (taken === undefined) return this.inner.abandon(spec);
    this.reserved.delete(spec.runDir);
    // Its directory is now the run's: the runner removes it.
    taken.slotDir = '';
    void this.discard(taken);
  }

  /**
   * A cold run by its command line; a warm one is a process of this launcher's runs
   * directory (it runs a launcher file there, or mounts one of its `warm-` folders).
   */
  owns(pid: number, runDir: string): boolean {
    if (this.inner.owns(pid, runDir)) return true;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${resolve(this.options.dir)}${sep}`);
    } catch {
      return false;
    }
  }

  /** Starts processes for runs like `spec` until `size` are idle. Resolves once they are spawned. */
  async fill(spec: LaunchSpec | null = this.lastSpec): Promise<void> {
    if (spec === null || spec.warm === null) return;
    if (this.filling || this.stopped || this.options.size <= 0) return;
    this.filling = true;
    try {
      const warm = spec.warm;
      const launcher = await this.ensureLauncherFile(warm);
      const key = this.keyOf(spec);
      while (!this.stopped && this.idle.filter((i) => i.key === key).length < this.options.size) {
        // Room for this kind of run: the oldest waiting process of another kind goes.
        if (this.idle.length >= this.options.size) {
          const other = this.idle.find((i) => i.key !== key);
          if (other !== undefined) {
            this.idle.splice(this.idle.indexOf(other), 1);
            void this.discard(other);
          }
        }
        const ok = await this.startOne(spec, warm, launcher, key);
        // A process that cannot start now will not start on a retry in a tight loop.
        if (!ok) break;
      }
    } catch (err) {
      this.options.onError(err, 'starting warm processes');
    } finally {
      this.filling = false;
    }
  }

  /** Kills every waiting process and waits until they have exited; their directories go too. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.idle.splice(0);
    const all = [...this.owned, ...this.reserved.values()];
    this.reserved.clear();
    await Promise.all(all.map((e) => this.discard(e)));
    this.owned.clear();
  }

  /** A live idle process for `spec` taken out of the pool (null: none); starts a refill. */
  private take(spec: LaunchSpec): Idle | null {
    if (this.stopped || this.options.size <= 0 || spec.warm === null) return null;
    this.lastSpec = spec;
    const key = this.keyOf(spec);
    let found: Idle | null = null;
    for (let i = 0; i < this.idle.length && found === null;) {
      const entry = this.idle[i] as Idle;
      const alive =
        !entry.exited && entry.proc.child.exitCode === null && entry.proc.child.signalCode === null;
      if (!alive) {
        this.idle.splice(i, 1);
        continue;
      }
      if (entry.key === key) {
        this.idle.splice(i, 1);
        found = entry;
      } else i++;
    }
    // Refill after the current tick, so the taken process gets its run first.
    setImmediate(() => void this.fill(spec));
    return found;
  }

  private keyOf(spec: LaunchSpec): string {
    const env = Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const binds = this.inner.bindsAtSpawn ? spec.binds : [];
    return JSON.stringify([
      spec.runtime,
      // The program: a Python run's interpreter is its package's environment's.
      spec.argv[0] ?? null,
      spec.user?.uid ?? null,
      spec.user?.gid ?? null,
      env,
      binds,
      spec.limits,
    ]);
  }

  private ensureLauncherFile(warm: WarmRuntime): Promise<string> {
    let file = this.launcherFiles.get(warm.fileName);
    if (file === undefined) {
      file = (async () => {
        const path = this.launcherPath(warm);
        await writeFile(path, warm.source, { mode: 0o644 });
        // Readable by a task user other than the server's (the umask may have removed it).
        await chmod(path, 0o644);
        return path;
      })();
      this.launcherFiles.set(warm.fileName, file);
      file.catch(() => this.launcherFiles.delete(warm.fileName));
    }
    return file;
  }

  private async startOne(
    spec: LaunchSpec,
    warm: WarmRuntime,
    launcher: string,
    key: string,
  ): Promise<boolean> {
    const slotDir = join(this.options.dir, `warm-${randomUUID()}`);
    const inside = this.inner.insidePath(launcher, `lib/${warm.fileName}`);
    const own: LaunchSpec = {
      runtime: spec.runtime,
      warm,
      argv: warm.argv(inside, spec.argv),
      entry: inside,
      args: [],
      runDir: slotDir,
      env: spec.env,
      runEnv: {},
      user: spec.user,
      binds: [...(this.inner.bindsAtSpawn ? spec.binds : []), { host: launcher, inside, readOnly: true }],
      limits: spec.limits,
      stdin: 'pipe',
    };
    let proc: LaunchedProcess;
    try {
      await this.inner.prepare(own);
      if (this.stopped) {
        await rm(slotDir, { recursive: true, force: true });
        return false;
      }
      proc = this.inner.launch(own);
    } catch (err) {
      await rm(slotDir, { recursive: true, force: true }).catch(() => undefined);
      this.options.onError(err, 'starting a warm process');
      return false;
    }
    return new Promise((resolvePromise) => {
      const entry: Idle = {
        proc,
        key,
        slotDir,
        exited: false,
        onExit: () => {
          entry.exited = true;
          this.owned.delete(entry);
          const i = this.idle.indexOf(entry);
          if (i >= 0) this.idle.splice(i, 1);
          this.removeSlot(entry);
        },
      };
      this.owned.add(entry);
      proc.child.on('exit', entry.onExit);
      proc.child.once('error', (err) => {
        entry.onExit();
        this.options.onError(err, 'starting a warm process');
        resolvePromise(false);
      });
      proc.child.once('spawn', () => {
        if (this.stopped) {
          proc.signal('SIGKILL');
          resolvePromise(false);
          return;
        }
        this.idle.push(entry);
        resolvePromise(true);
      });
    });
  }

  /** Kills a waiting process (its whole group or sandbox); resolves once it has exited. */
  private discard(e: Idle): Promise<void> {
    return new Promise<void>((resolvePromise) => {
      const child = e.proc.child;
      if (e.exited || child.exitCode !== null || child.signalCode !== null) {
        this.removeSlot(e);
        return resolvePromise();
      }
      child.once('exit', () => {
        this.owned.delete(e);
        this.removeSlot(e);
        resolvePromise();
      });
      // Not spawned at all: there will be no exit.
      child.once('error', () => resolvePromise());
      e.proc.signal('SIGKILL');
    });
  }

  private removeSlot(e: Idle): void {
    // A directory handed to a run belongs to the runner, which removes it.
    if (e.slotDir === '' || [...this.reserved.values()].includes(e)) return;
    const dir = e.slotDir;
    e.slotDir = '';
    void rm(dir, { recursive: true, force: true }).catch((err: unknown) =>
      this.options.onError(err, `removing ${dir}`),
    );
  }
}
