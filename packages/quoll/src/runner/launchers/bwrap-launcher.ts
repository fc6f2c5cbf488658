import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { LaunchedProcess, LaunchSpec } from '../launch-spec.js';
import type { ProcessRecorder } from '../process-ledger.js';
import { signalGroup } from '../process-group.js';
import { stdioWithoutInherited } from '../inherited-fds.js';
import { prlimitArgs } from '../resource-limits.js';
import { createRunDir } from '../run-directory.js';
import type { RunLauncher } from './run-launcher.js';

/** Where a run's directory appears inside the sandbox: its working directory. */
export const SANDBOX_WORK_DIR = '/quoll/run';

/** Parent of every other path the server shows a sandboxed run (the SDK, launcher files). */
export const SANDBOX_ROOT = '/quoll';

/** System directories shown read-only (merged-/usr systems link the top-level ones into /usr). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * Files and folders of /etc a run needs (name resolution, users, TLS roots, time zones,
 * the dynamic linker) — and nothing else of /etc: no shadow, no host keys, no machine id.
 */
const ETC_ENTRIES = [
  'resolv.conf',
  'hosts',
  'host.conf',
  'nsswitch.conf',
  'gai.conf',
  'services',
  'protocols',
  'passwd',
  'group',
  'localtime',
  'timezone',
  'ssl',
  'ca-certificates',
  'ca-certificates.conf',
  'pki',
  'crypto-policies',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'alternatives',
  'mime.types',
  'os-release',
];

/** Options of {@link BwrapLauncher}. */
export interface BwrapLauncherOptions {
  /** The `bwrap` executable. */
  bwrapPath: string;
  /** util-linux `prlimit`, which applies a run's resource limits; null = limits are not applied. */
  prlimitPath: string | null;
  /**
   * util-linux `setpriv`, which drops from root to the task user inside the sandbox; needed
   * when the server runs as root. @default null
   */
  setprivPath?: string | null;
  /**
   * util-linux `unshare` with `--map-current-user` (2.38+): after dropping to the task user, a
   * root server's run enters a user namespace of its own, so its process limit counts its own
   * processes rather than every process of that user on the machine. @default null (not used)
   */
  unsharePath?: string | null;
  /**
   * Network of a run: `host` shares the server's; `server-only` gives the run a network of
   * its own (loopback only) where the Quoll API is reachable at the server's loopback port,
   * through `apiSocket`. @default 'host'
   */
  network?: 'host' | 'server-only';
  /** `server-only`: a Unix socket on the host that forwards to the API, and the proxy script that serves it inside. */
  apiProxy?: { socket: string; script: string; nodePath: string; port: () => number } | null;
  /** Size of the run's private /tmp (a tmpfs, counted in memory). @default 1 GiB */
  tmpBytes?: number;
  /** Whether the server is root (bwrap then needs no user namespace, and setpriv drops to the task user). @default process.getuid() === 0 */
  privileged?: boolean;
  /**
   * Notes each sandbox (bwrap and the sandbox's init) while it lives: the server's
   * {@link ProcessLedger}, so a later server stops what a killed one left. @default none
   */
  recorder?: ProcessRecorder | null;
}

/**
 * Starts every run in a bubblewrap sandbox (https://github.com/containers/bubblewrap, the
 * tool Flatpak uses): its own mount namespace — the run directory read-write at
 * `/quoll/run`, the system directories, a few files of /etc, the runtime, the dependencies
 * and the SDK read-only, a private /tmp and /dev, its own /proc — so the home, other runs and
 * other workspaces' files do not exist for it; its own PID namespace, so everything it starts
 * dies with it (`--die-with-parent` ties that to the server too); its own IPC and UTS
 * namespaces; no capabilities and no new privileges; and its resource limits. A server
 * running as root drops to the task user inside (setpriv); an unprivileged server's sandbox
 * gets a user namespace of its own.
 *
 * @example
 * const launcher = new BwrapLauncher({ bwrapPath: '/usr/bin/bwrap', prlimitPath: '/usr/bin/prlimit', setprivPath: '/usr/bin/setpriv' });
 */
export class BwrapLauncher implements RunLauncher {
  readonly name = 'bubblewrap';
  readonly sandboxed = true;
  readonly bindsAtSpawn = true;
  private readonly privileged: boolean;
  private readonly network: 'host' | 'server-only';
  private readonly tmpBytes: number;
  private readonly systemArgs: string[];

  constructor(private readonly options: BwrapLauncherOptions) {
    this.privileged = options.privileged ?? process.getuid?.() === 0;
    this.network = options.network ?? 'host';
    this.tmpBytes = options.tmpBytes ?? 1024 ** 3;
    if (this.network === 'server-only' && (options.apiProxy ?? null) === null)
      throw new Error('a server-only network needs the API proxy (socket and script)');
    this.systemArgs = systemBinds();
  }

  workDir(): string {
    return SANDBOX_WORK_DIR;
  }

  insidePath(_host: string, name: string): string {
    return `${SANDBOX_ROOT}/${name}`;
  }

  async prepare(spec: LaunchSpec): Promise<string> {
    await createRunDir(spec.runDir, spec.user);
    // Mount points of binds inside the run directory must exist before bwrap mounts them.
    for (const bind of spec.binds) {
      const rel = relative(SANDBOX_WORK_DIR, bind.inside);
      if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel))
        await mkdir(resolve(spec.runDir, rel), { recursive: true });
    }
    return spec.runDir;
  }

  launch(spec: LaunchSpec): LaunchedProcess {
    const child = spawn(this.options.bwrapPath, this.args(spec), {
      // Own process group, so SIGKILL to it also reaches bwrap itself.
      detached: true,
      env: { ...spec.env, ...spec.runEnv },
      // Nothing the server inherited reaches bwrap, and so the sandbox.
      stdio: stdioWithoutInherited([spec.stdin ?? 'ignore', 'pipe', 'pipe', 'pipe']),
    });
    const recorder = this.options.recorder ?? null;
    const recorded: number[] = [];
    const record = (pid: number): void => {
      if (recorder === null) return;
      recorder.record(pid, spec.runDir);
      recorded.push(pid);
    };
    if (child.pid !== undefined) record(child.pid);
    child.once('close', () => {
      for (const pid of recorded.splice(0)) recorder?.forget(pid);
    });
    // bwrap reports the host pid of the sandbox's init on fd 3: the run's process group.
    let sandboxPid: number | null = null;
    let pendingTerm = false;
    readInfo(child.stdio[3] as Readable | null, (pid) => {
      sandboxPid = pid;
      if (child.exitCode === null && child.signalCode === null) record(pid);
      if (pendingTerm) signalGroup(pid, 'SIGTERM');
    });
    return {
      child,
      alreadyRunning: false,
      signal: (signal) => {
        if (signal === 'SIGKILL') {
          // The sandbox's init dies, and with it its whole PID namespace; bwrap follows.
          if (sandboxPid !== null) signalGroup(sandboxPid, 'SIGKILL');
          if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
          return;
        }
        // Other signals go to the run's process group inside (init ignores them).
        if (sandboxPid !== null) signalGroup(sandboxPid, signal);
        else pendingTerm = true;
      },
    };
  }

  abandon(): void {
    // Nothing was started.
  }

  /** Linux: bwrap names the run directory it binds on its command line. */
  owns(pid: number, runDir: string): boolean {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(resolve(runDir));
    } catch {
      return false;
    }
  }

  /**
   * Runs `spec`'s command in a sandbox built like a run's (with an empty run directory);
   * returns why sandboxes cannot be used here, or null when they work.
   */
  probe(spec: LaunchSpec): string | null {
    let args: string[];
    try {
      args = this.args(spec, { apiProxy: false });
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
    const bind = args.indexOf('--bind');
    args.splice(bind, 3, '--tmpfs', SANDBOX_WORK_DIR);
    const r = spawnSync(this.options.bwrapPath, args, {
      env: { ...spec.env, ...spec.runEnv },
      // --info-fd 3 needs an fd 3.
      stdio: stdioWithoutInherited(['ignore', 'pipe', 'pipe', 'pipe']),
      timeout: 10_000,
      encoding: 'utf8',
    });
    if (r.error) return r.error.message;
    if (r.status !== 0) return (r.stderr || `bwrap exited with ${String(r.status ?? r.signal)}`).trim();
    return null;
  }

  /**
   * The bwrap command line for `spec` (without the executable); `apiProxy: false` leaves the
   * API proxy out of a `server-only` sandbox (the probe runs before the API listens).
   */
  args(spec: LaunchSpec, options: { apiProxy: boolean } = { apiProxy: true }): string[] {
    const args = [
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      ...(this.privileged ? [] : ['--unshare-user', '--disable-userns']),
      ...(this.network === 'host' ? [] : ['--unshare-net']),
      '--die-with-parent',
      '--new-session',
      '--hostname',
      'quoll-run',
      ...this.systemArgs,
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--perms',
      '1777',
      '--size',
      String(this.tmpBytes),
      '--tmpfs',
      '/tmp',
      '--bind',
      resolve(spec.runDir),
      SANDBOX_WORK_DIR,
    ];
    for (const bind of spec.binds) {
      args.push(bind.readOnly ? '--ro-bind' : '--bind', resolve(bind.host), bind.inside);
    }
    let command = [...spec.argv];
    const proxy = this.options.apiProxy ?? null;
    if (this.network === 'server-only' && proxy !== null && options.apiProxy) {
      args.push('--ro-bind', proxy.socket, `${SANDBOX_ROOT}/api.sock`);
      args.push('--ro-bind', proxy.script, `${SANDBOX_ROOT}/lib/api-proxy.mjs`);
      command = [
        proxy.nodePath,
        `${SANDBOX_ROOT}/lib/api-proxy.mjs`,
        String(proxy.port()),
        `${SANDBOX_ROOT}/api.sock`,
        '--',
        ...command,
      ];
    }
    if (this.options.prlimitPath !== null)
      command = [...prlimitArgs(this.options.prlimitPath, spec.limits), ...command];
    if (this.privileged) {
      const user = spec.user;
      if (user === null || this.options.setprivPath === undefined || this.options.setprivPath === null)
        throw new Error('a sandbox started by root needs a task user and setpriv to drop to it');
      // A user namespace of the run's own: RLIMIT_NPROC then counts this run's processes,
      // not those of every run (and daemon) sharing the task user.
      const unshare = this.options.unsharePath ?? null;
      if (unshare !== null) command = [unshare, '--user', '--map-current-user', '--', ...command];
      // setuid from root clears the permitted and effective capabilities; the bounding and
      // inheritable sets go too, so nothing the run executes can regain any.
      command = [
        this.options.setprivPath,
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--',
        ...command,
      ];
    }
    args.push('--chdir', SANDBOX_WORK_DIR, '--info-fd', '3', '--', ...command);
    return withParentDirs(args);
  }
}

/** Options whose last argument is a path created in the sandbox. */
const TARGET_OPTIONS: Record<string, number> = {
  '--bind': 2,
  '--ro-bind': 2,
  '--symlink': 2,
  '--tmpfs': 1,
  '--proc': 1,
  '--dev': 1,
  '--dir': 1,
};

/**
 * Precedes each mount with `--perms 0755 --dir` for every parent folder it needs: bwrap would
 * create those with the server's umask (often 0700 for a root service), and a task user
 * could then not reach `/etc/ssl` or `/quoll/run`. Each mount gets its parents right before
 * it, so a bind below a tmpfs mounted earlier (`/tmp/wheels` after `--tmpfs /tmp`) finds them
 * in that tmpfs rather than hidden beneath it.
 */
function withParentDirs(args: string[]): string[] {
  const out: string[] = [];
  // Parents made so far, and still visible (a later tmpfs hides the ones below it).
  let made: string[] = [];
  let pending: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      out.push(...pending, ...args.slice(i));
      break;
    }
    if (arg === '--perms' || arg === '--size') {
      // Modifiers of the next operation: they go after that operation's parents.
      pending.push(arg, args[i + 1] as string);
      i += 1;
      continue;
    }
    const n = TARGET_OPTIONS[arg];
    if (n === undefined) {
      out.push(...pending, arg);
      pending = [];
      continue;
    }
    const target = args[i + n] as string;
    const parents: string[] = [];
    for (let dir = posixDirname(target); dir !== '/' && !made.includes(dir); dir = posixDirname(dir))
      parents.push(dir);
    // Shallowest first; an existing one is fine for bwrap.
    for (const dir of parents.reverse()) out.push('--perms', '0755', '--dir', dir);
    made.push(...parents);
    if (arg === '--tmpfs' || arg === '--proc' || arg === '--dev')
      made = made.filter((dir) => !`${dir}/`.startsWith(`${target}/`));
    out.push(...pending, ...args.slice(i, i + n + 1));
    pending = [];
    i += n;
  }
  return out;
}

function posixDirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** --ro-bind / --symlink arguments for the system directories and the /etc entries that exist. */
function systemBinds(): string[] {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    let st;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else if (st.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  for (const name of ETC_ENTRIES) {
    const path = `/etc/${name}`;
    if (existsSync(path)) args.push('--ro-bind', path, path);
  }
  return args;
}

/** Reads bwrap's `--info-fd` JSON and reports the sandbox init's host pid. */
function readInfo(stream: Readable | null, onPid: (pid: number) => void): void {
  if (stream === null) return;
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
    try {
      const info = JSON.parse(text) as { 'child-pid'?: unknown };
      if (typeof info['child-pid'] === 'number') onPid(info['child-pid']);
      stream.destroy();
    } catch {
      // Not complete yet.
    }
  });
  stream.on('error', () => undefined);
}
