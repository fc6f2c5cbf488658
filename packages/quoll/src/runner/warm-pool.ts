import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The launcher a warm process runs: it waits for one JSON line on stdin
 * (`{ cwd, env, entry, argv }`), then becomes that run — working directory, environment
 * and `process.argv` as a cold `node <entry>` would have them — and imports the entry.
 * Stdin ending before a job arrives (the server went away) ends the process quietly.
 */
export const LAUNCHER_SOURCE = `// quoll warm-process launcher (generated; see runner/warm-pool.ts)
import { pathToFileURL } from 'node:url';
const job = await new Promise((resolve) => {
  let buffered = '';
  const onEnd = () => process.exit(0);
  const onData = (chunk) => {
    buffered += chunk;
    const nl = buffered.indexOf('\\n');
    if (nl < 0) return;
    process.stdin.off('data', onData);
    process.stdin.off('end', onEnd);
    resolve(JSON.parse(buffered.slice(0, nl)));
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', onData);
  process.stdin.on('end', onEnd);
});
// A cold run has no stdin either; and an open pipe would keep the process alive.
process.stdin.destroy();
process.chdir(job.cwd);
for (const [key, value] of Object.entries(job.env)) process.env[key] = value;
process.argv.splice(1, process.argv.length - 1, job.entry, ...job.argv);
await import(pathToFileURL(job.entry).href);
`;

/** What a warm process must be started with to be usable for a run. */
export interface WarmSpawnSpec {
  /** Environment the process starts with (the run's base environment, no per-run values). */
  env: NodeJS.ProcessEnv;
  /** OS user and group to run as; null = the server's. */
  uid: number | null;
  gid: number | null;
}

/** The job a warm process is given: what makes it a particular run. */
export interface WarmJob {
  cwd: string;
  /** Per-run variables set before the entry is imported. */
  env: Record<string, string>;
  /** Absolute path of the entry module. */
  entry: string;
  argv: string[];
}

/** Options of {@link WarmPool}. */
export interface WarmPoolOptions {
  /** Idle processes kept ready; 0 disables the pool. */
  size: number;
  /** Node executable. */
  nodePath: string;
  /** Flags before the launcher path, e.g. `--enable-source-maps`. */
  nodeFlags: readonly string[];
  /** Directory the launcher file is written to (must be readable by the run user). */
  dir: string;
  /** Where spawn failures of pool processes are reported. */
  onError: (err: unknown, context: string) => void;
}

interface Idle {
  child: ChildProcess;
  key: string;
  exited: boolean;
  onExit: () => void;
}

/**
 * Pre-started `node <launcher>` processes, each detached in its own process group with
 * stdio pipes, waiting for a run on stdin. Taking one skips Node's start-up (the larger
 * part of a trivial run's latency); the pool refills in the background after each take.
 * A process that died while idle is dropped, never handed out.
 *
 * @example
 * const pool = new WarmPool({ size: 2, nodePath: process.execPath, nodeFlags: [], dir, onError });
 * await pool.fill(spec);
 * const child = pool.take(spec); // null → spawn cold
 * if (child) WarmPool.assign(child, { cwd, env, entry, argv: [] });
 * await pool.stop();
 */
export class WarmPool {
  private readonly idle: Idle[] = [];
  /** Every process the pool owns (starting or idle), so stop() can wait for all of them. */
  private readonly owned = new Set<Idle>();
  private launcher: Promise<string> | null = null;
  private filling = false;
  private stopped = false;
  private lastSpec: WarmSpawnSpec | null = null;

  constructor(private readonly options: WarmPoolOptions) {}

  /** The launcher file's path (written on first use). */
  get launcherPath(): string {
    return join(this.options.dir, '.quoll-launcher.mjs');
  }

  /** Idle processes ready to take. */
  get idleCount(): number {
    return this.idle.filter((i) => !i.exited).length;
  }

  /** Process ids of the idle processes (for tests and diagnostics). */
  get idlePids(): number[] {
    return this.idle.filter((i) => !i.exited).map((i) => i.child.pid as number);
  }

  /**
   * A live idle process started with `spec`, detached from the pool (its 'exit' listener
   * removed), or null when none is ready. Synchronous, so the caller can attach its own
   * listeners before any event of the process is emitted. Starts a refill.
   */
  take(spec: WarmSpawnSpec): ChildProcess | null {
    if (this.stopped || this.options.size <= 0) return null;
    const key = specKey(spec);
    let found: ChildProcess | null = null;
    while (found === null && this.idle.length > 0) {
      const entry = this.idle.shift() as Idle;
      entry.child.off('exit', entry.onExit);
      this.owned.delete(entry);
      const alive = !entry.exited && entry.child.exitCode === null && entry.child.signalCode === null;
      if (alive && entry.key === key) found = entry.child;
      // A process for another user or environment is of no use any more.
      else if (alive) killGroup(entry.child);
    }
    this.lastSpec = spec;
    // Refill after the current tick, so the taken process gets its job first.
    setImmediate(() => void this.fill(spec));
    return found;
  }

  /** Hands a taken process its run. */
  static assign(child: ChildProcess, job: WarmJob): void {
    child.stdin?.on('error', () => {
      // The process died before reading its job: its exit is reported like any other.
    });
    child.stdin?.end(`${JSON.stringify(job)}\n`);
  }

  /** Starts processes until `size` are idle. Resolves once they are spawned. */
  async fill(
    spec: WarmSpawnSpec = this.lastSpec ?? { env: process.env, uid: null, gid: null },
  ): Promise<void> {
    if (this.filling || this.stopped || this.options.size <= 0) return;
    this.filling = true;
    try {
      const launcher = await this.ensureLauncher();
      const key = specKey(spec);
      while (!this.stopped && this.idle.length < this.options.size) {
        const ok = await this.startOne(launcher, spec, key);
        // A process that cannot start now will not start on a retry in a tight loop.
        if (!ok) break;
      }
    } catch (err) {
      this.options.onError(err, 'starting warm processes');
    } finally {
      this.filling = false;
    }
  }

  /** Kills every idle process (its whole group) and waits until they have exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.idle.splice(0);
    await Promise.all(
      [...this.owned].map(
        (e) =>
          new Promise<void>((resolve) => {
            if (e.exited || e.child.exitCode !== null || e.child.signalCode !== null) return resolve();
            e.child.once('exit', () => resolve());
            // Not spawned at all: there will be no exit.
            e.child.once('error', () => resolve());
            killGroup(e.child);
          }),
      ),
    );
    this.owned.clear();
  }

  private ensureLauncher(): Promise<string> {
    this.launcher ??= (async () => {
      const path = this.launcherPath;
      await writeFile(path, LAUNCHER_SOURCE, { mode: 0o644 });
      // Readable by a task user other than the server's (the umask may have removed it).
      await chmod(path, 0o644);
      return path;
    })();
    return this.launcher;
  }

  private startOne(launcher: string, spec: WarmSpawnSpec, key: string): Promise<boolean> {
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn(this.options.nodePath, [...this.options.nodeFlags, launcher], {
          detached: true,
          env: spec.env,
          stdio: ['pipe', 'pipe', 'pipe'],
          ...(spec.uid !== null ? { uid: spec.uid } : {}),
          ...(spec.gid !== null ? { gid: spec.gid } : {}),
        });
      } catch (err) {
        this.options.onError(err, 'starting a warm process');
        resolve(false);
        return;
      }
      const entry: Idle = {
        child,
        key,
        exited: false,
        onExit: () => {
          entry.exited = true;
          this.owned.delete(entry);
          const i = this.idle.indexOf(entry);
          if (i >= 0) this.idle.splice(i, 1);
        },
      };
      this.owned.add(entry);
      child.on('exit', entry.onExit);
      child.once('error', (err) => {
        entry.onExit();
        this.options.onError(err, 'starting a warm process');
        resolve(false);
      });
      child.once('spawn', () => {
        if (this.stopped) {
          killGroup(child);
          resolve(false);
          return;
        }
        this.idle.push(entry);
        resolve(true);
      });
    });
  }
}

function specKey(spec: WarmSpawnSpec): string {
  const env = Object.entries(spec.env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([spec.uid, spec.gid, env]);
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: already gone.
  }
}
