import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { dirname, relative, resolve, isAbsolute } from 'node:path';
import type { LaunchedProcess, LaunchSpec } from '../launch-spec.js';
import type { ProcessRecorder } from '../process-ledger.js';
import { signalGroup } from '../process-group.js';
import { stdioWithoutInherited } from '../inherited-fds.js';
import { prlimitArgs } from '../resource-limits.js';
import { createRunDir } from '../run-directory.js';
import type { RunLauncher } from './run-launcher.js';

/**
 * Starts runs as plain child processes of the server, each in its own process group
 * (detached), so a kill reaches everything the run started — except what escaped the group
 * with `setsid`, which only a sandbox's PID namespace stops. No file-system isolation: a
 * bind inside the run directory becomes a link there; any other bind must already be at
 * its inside path.
 */
export class DirectLauncher implements RunLauncher {
  readonly name = 'direct';
  readonly sandboxed = false;
  readonly bindsAtSpawn = false;

  /**
   * @param options.prlimitPath util-linux `prlimit`, which applies a run's resource limits
   * (RLIMIT_NPROC is not enforced for root); null = limits are not applied. @default null
   * @param options.recorder notes each process group while it lives (the server's
   * {@link ProcessLedger}, so a later server stops what a killed one left). @default none
   */
  constructor(
    private readonly options: { prlimitPath?: string | null; recorder?: ProcessRecorder | null } = {},
  ) {}

  workDir(runDir: string): string {
    return runDir;
  }

  insidePath(host: string): string {
    return host;
  }

  async prepare(spec: LaunchSpec): Promise<string> {
    await createRunDir(spec.runDir, spec.user);
    for (const bind of spec.binds) {
      const rel = relative(resolve(spec.runDir), resolve(bind.inside));
      if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) {
        const link = resolve(spec.runDir, rel);
        await mkdir(dirname(link), { recursive: true });
        await rm(link, { recursive: true, force: true });
        await symlink(resolve(bind.host), link, 'dir');
      } else if (resolve(bind.host) !== resolve(bind.inside)) {
        throw new Error(
          `the direct launcher cannot show ${bind.host} at ${bind.inside}; only a sandbox moves paths`,
        );
      }
    }
    return spec.runDir;
  }

  launch(spec: LaunchSpec): LaunchedProcess {
    const limit = this.options.prlimitPath ? prlimitArgs(this.options.prlimitPath, spec.limits) : [];
    const [program, ...args] = [...limit, ...spec.argv];
    if (program === undefined) throw new Error('empty argv');
    // Own process group (detached) so a kill reaches everything the run started.
    const child = spawn(program, args, {
      cwd: spec.runDir,
      detached: true,
      env: { ...spec.env, ...spec.runEnv },
      // Nothing the server inherited (a host file, a lock, a socket) reaches the run.
      stdio: stdioWithoutInherited([spec.stdin ?? 'ignore', 'pipe', 'pipe']),
      ...(spec.user !== null ? { uid: spec.user.uid, gid: spec.user.gid } : {}),
    });
    const recorder = this.options.recorder ?? null;
    const pid = child.pid;
    if (recorder !== null && pid !== undefined) {
      recorder.record(pid, spec.runDir);
      // By then the runner (or the install) has killed what the group left.
      child.once('close', () => recorder.forget(pid));
    }
    return {
      child,
      alreadyRunning: false,
      signal: (signal) => {
        if (child.pid !== undefined) signalGroup(child.pid, signal);
      },
    };
  }

  abandon(): void {
    // Nothing was started.
  }

  /** Linux: a cold run names its run directory on its command line (the entry's path). */
  owns(pid: number, runDir: string): boolean {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(resolve(runDir));
    } catch {
      return false;
    }
  }
}
