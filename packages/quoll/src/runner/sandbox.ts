import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { API_PROXY_SOURCE } from './api-proxy-source.js';
import { BwrapLauncher } from './launchers/bwrap-launcher.js';
import { DirectLauncher } from './launchers/direct-launcher.js';
import type { RunLauncher } from './launchers/run-launcher.js';
import { findExecutable } from './find-executable.js';
import type { ProcessRecorder } from './process-ledger.js';
import type { ResourceLimits } from './resource-limits.js';
import { NodeRuntime } from './runtimes/node-runtime.js';
import type { TaskUser } from './task-user.js';

/** `auto`: bubblewrap when it works here, else none; `bubblewrap`: required; `off`: never. */
export type SandboxMode = 'auto' | 'bubblewrap' | 'off';

/** A run's network: the host's, or its own with only the Quoll API reachable. */
export type TaskNetwork = 'host' | 'server-only';

/** The user a root server's sandboxes drop to when no task user is set: `nobody`. */
export const DEFAULT_SANDBOX_USER: TaskUser = Object.freeze({ uid: 65534, gid: 65534 });

/** What the server says about run isolation (at start and on `/v1/health`). */
export interface SandboxStatus {
  /** The launcher runs go through: `bubblewrap` (sandboxed) or `direct`. */
  launcher: 'bubblewrap' | 'direct';
  /** Whether runs are sandboxed. */
  sandboxed: boolean;
  /** Why they are not (tool missing, not Linux, turned off, the probe's error); null when sandboxed. */
  reason: string | null;
  network: TaskNetwork;
}

/** Options of {@link setUpSandbox}. */
export interface SandboxOptions {
  mode: SandboxMode;
  network: TaskNetwork;
  /** The configured task user (null: the server's own, or {@link DEFAULT_SANDBOX_USER} in a root server's sandbox). */
  taskUser: TaskUser | null;
  /** Server-wide limits, used for the probe. */
  limits: ResourceLimits;
  /** Where the API proxy's socket and script go (the runs directory's `.quoll`). */
  scratchDir: string;
  /** The API port runs reach (read when a run starts). */
  apiPort: () => number;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default process.execPath */
  nodePath?: string;
  /** @default process.platform */
  platform?: NodeJS.Platform;
  /** Size of each run's private /tmp. @default 1 GiB */
  tmpBytes?: number;
  /** Notes every process group and sandbox started (the server's ledger). @default none */
  recorder?: ProcessRecorder | null;
}

/** The launcher chosen, its status and the user runs execute as. */
export interface SandboxSetup {
  launcher: RunLauncher;
  status: SandboxStatus;
  taskUser: TaskUser | null;
  /** The API proxy's socket path (a forwarder must listen there) when the network is `server-only`. */
  apiSocket: string | null;
}

/**
 * Chooses how runs are isolated: a bubblewrap sandbox when the mode allows it and a probe
 * run in one succeeds, else direct processes (with the reason). Mode `bubblewrap` throws
 * when no sandbox works.
 */
export async function setUpSandbox(options: SandboxOptions): Promise<SandboxSetup> {
  const env = options.env ?? process.env;
  const nodePath = options.nodePath ?? process.execPath;
  const prlimitPath = findExecutable('prlimit', env.PATH);
  const direct = (reason: string): SandboxSetup => {
    if (options.mode === 'bubblewrap')
      throw new Error(`QUOLL_SANDBOX=bubblewrap, but runs cannot be sandboxed here: ${reason}`);
    if (options.network !== 'host')
      throw new Error(
        `QUOLL_TASK_NETWORK=${options.network} needs a sandbox, but runs cannot be sandboxed here: ${reason}`,
      );
    return {
      launcher: new DirectLauncher({ prlimitPath, recorder: options.recorder ?? null }),
      status: { launcher: 'direct', sandboxed: false, reason, network: 'host' },
      taskUser: options.taskUser,
      apiSocket: null,
    };
  };
  if (options.mode === 'off') return direct('turned off (QUOLL_SANDBOX=off)');
  if ((options.platform ?? process.platform) !== 'linux') return direct('bubblewrap sandboxes need Linux');
  const bwrapPath = findExecutable('bwrap', env.PATH);
  if (bwrapPath === null)
    return direct('bwrap is not installed (install the bubblewrap package, e.g. apt-get install bubblewrap)');
  const privileged = process.getuid?.() === 0;
  const setprivPath = privileged ? findExecutable('setpriv', env.PATH) : null;
  if (privileged && setprivPath === null)
    return direct('the server runs as root and setpriv (util-linux) is not installed to drop privileges');
  const taskUser = options.taskUser ?? (privileged ? DEFAULT_SANDBOX_USER : null);
  const unsharePath = privileged ? findUnshareWithMapCurrentUser(env.PATH) : null;
  let apiProxy: { socket: string; script: string; nodePath: string; port: () => number } | null = null;
  if (options.network === 'server-only') {
    await mkdir(options.scratchDir, { recursive: true, mode: 0o711 });
    const script = join(options.scratchDir, 'api-proxy.mjs');
    await writeFile(script, API_PROXY_SOURCE, { mode: 0o644 });
    apiProxy = { socket: join(options.scratchDir, 'api.sock'), script, nodePath, port: options.apiPort };
  }
  const launcher = new BwrapLauncher({
    bwrapPath,
    prlimitPath,
    setprivPath,
    unsharePath,
    network: options.network,
    apiProxy,
    privileged,
    recorder: options.recorder ?? null,
    ...(options.tmpBytes !== undefined ? { tmpBytes: options.tmpBytes } : {}),
  });
  const runtime = new NodeRuntime({ nodePath });
  const probeEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && runtime.envAllow.test(k)) probeEnv[k] = v;
  const reason = launcher.probe({
    runtime: 'node',
    warm: null,
    argv: [nodePath, '-e', ''],
    entry: '',
    args: [],
    runDir: '/nonexistent',
    env: probeEnv,
    runEnv: {},
    user: taskUser,
    binds: runtime.installBinds(probeEnv),
    limits: options.limits,
  });
  if (reason !== null) return direct(`a probe run in a bubblewrap sandbox failed: ${reason}`);
  return {
    launcher,
    status: { launcher: 'bubblewrap', sandboxed: true, reason: null, network: options.network },
    taskUser,
    apiSocket: apiProxy?.socket ?? null,
  };
}

/** util-linux `unshare` when it can map the current user into a new user namespace (2.38+). */
function findUnshareWithMapCurrentUser(path: string | undefined): string | null {
  const unshare = findExecutable('unshare', path);
  if (unshare === null) return null;
  const help = spawnSync(unshare, ['--help'], { encoding: 'utf8', timeout: 5_000 });
  return typeof help.stdout === 'string' && help.stdout.includes('--map-current-user') ? unshare : null;
}
