import { lchown, mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { DiskWatcher } from '../runner/index.js';
import type { LaunchSpec, RunLauncher } from '../runner/index.js';
import { InstallError } from './install-error.js';
import type { InstallLogSink } from './install-error.js';

/** How one install step runs and says why it failed. */
export interface InstallStep {
  /** Receives every output line. */
  print: InstallLogSink;
  /** Stops the step (and everything it started). */
  signal: AbortSignal | undefined;
  /** What the step is called in its error (`npm install`, `pip install`). */
  what: string;
  /** Which stderr lines are worth keeping as the reason (at most ten are kept). */
  isErrorLine: (line: string) => boolean;
  /** The reason's lines, from the kept stderr lines (the first five by default). */
  reasonOf?: (errors: readonly string[]) => readonly string[];
  /**
   * The folders the step's disk limit (`spec.limits.diskBytes`) bounds together: its build
   * folder and any cache of its own; a cache shared between installs is left out (it holds
   * what every install fetched). @default [spec.runDir]
   */
  diskDirs?: readonly string[];
}

/**
 * Runs one install command (npm, `python -m venv`, pip) through the runs' launcher, in its own
 * process group or sandbox, so an abort stops everything the installer started (build
 * backends, install scripts, git), not only the installer. Writable binds are made (and given
 * to the install's user) before they are mounted. With a disk limit, each file the step
 * writes stops at it (RLIMIT_FSIZE) and its folders are watched: past the limit the step is
 * killed and fails `disk limit exceeded (N bytes)`.
 *
 * @throws InstallError with the first error lines when the command fails; the signal's
 * reason when `signal` stopped it.
 */
export async function runInstallStep(
  launcher: RunLauncher,
  spec: LaunchSpec,
  step: InstallStep,
): Promise<void> {
  const { print, signal } = step;
  if (signal?.aborted === true) throw abortReason(signal);
  for (const bind of spec.binds) {
    if (bind.readOnly) continue;
    await mkdir(bind.host, { recursive: true, mode: 0o700 });
    if (spec.user !== null) await lchown(bind.host, spec.user.uid, spec.user.gid);
  }
  const limit = spec.limits.diskBytes;
  let overDisk: string | null = null;
  let disk: DiskWatcher | null = null;
  const errors: string[] = [];
  let ended: { code: number | null; sig: NodeJS.Signals | null };
  try {
    ended = await new Promise((resolve, reject) => {
      const proc = launcher.launch(spec);
      const child = proc.child;
      const killAll = (): void => proc.signal('SIGKILL');
      signal?.addEventListener('abort', killAll, { once: true });
      if (limit !== null) {
        disk = new DiskWatcher({
          dirs: step.diskDirs ?? [spec.runDir],
          limitBytes: limit,
          onExceeded: (reason) => {
            overDisk ??= reason;
            killAll();
          },
        });
        disk.start();
      }
      const collect = (stream: NodeJS.ReadableStream | null, isErr: boolean): Promise<void> =>
        new Promise((done) => {
          if (stream === null) return done();
          const rl = createInterface({ input: stream });
          rl.on('line', (line) => {
            print(line);
            if (isErr && errors.length < 10 && step.isErrorLine(line)) errors.push(line.trim());
          });
          rl.on('close', done);
        });
      const outputs = Promise.all([collect(child.stdout, false), collect(child.stderr, true)]);
      child.on('error', (err) => reject(err));
      child.on('close', (code, sig) => {
        signal?.removeEventListener('abort', killAll);
        // Whatever the installer left running (a stuck script) goes with it.
        killAll();
        void outputs.then(() => resolve({ code, sig }));
      });
    });
    // A last look: the step may have gone past the limit since the watcher's last walk.
    const watcher = disk as DiskWatcher | null;
    if (watcher !== null) {
      await watcher.stop();
      await watcher.check();
    }
  } finally {
    await (disk as DiskWatcher | null)?.stop();
  }
  // Read again: the abort may have come while the step ran (TypeScript keeps the first check's narrowing).
  if (isAborted(signal)) throw abortReason(signal as AbortSignal);
  const over = overDisk as string | null;
  if (over !== null) throw new InstallError(`${step.what} failed: ${over}`, over);
  const { code, sig } = ended;
  if (code === 0) return;
  const reason = (step.reasonOf ?? ((e) => e.slice(0, 5)))(errors);
  const firstLines = reason.length > 0 ? reason.join('\n') : `${step.what} exited with ${code ?? sig}`;
  throw new InstallError(`${step.what} failed (exit ${code ?? sig}):\n${firstLines}`, firstLines);
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
