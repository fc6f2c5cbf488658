import { lchown, mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
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
}

/**
 * Runs one install command (npm, `python -m venv`, pip) through the runs' launcher, in its own
 * process group or sandbox, so an abort stops everything the installer started (build
 * backends, install scripts, git), not only the installer. Writable binds are made (and given
 * to the install's user) before they are mounted.
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
  await new Promise<void>((resolve, reject) => {
    const proc = launcher.launch(spec);
    const child = proc.child;
    const killAll = (): void => proc.signal('SIGKILL');
    signal?.addEventListener('abort', killAll, { once: true });
    const errors: string[] = [];
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
      void outputs.then(() => {
        if (code === 0) return resolve();
        if (signal?.aborted === true) return reject(abortReason(signal));
        const reason = (step.reasonOf ?? ((e) => e.slice(0, 5)))(errors);
        const firstLines = reason.length > 0 ? reason.join('\n') : `${step.what} exited with ${code ?? sig}`;
        reject(new InstallError(`${step.what} failed (exit ${code ?? sig}):\n${firstLines}`, firstLines));
      });
    });
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
