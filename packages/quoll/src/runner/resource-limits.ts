/**
 * What one run may use. Enforced per process with resource limits (setrlimit, through
 * util-linux `prlimit` in front of the run's command), so they hold with and without the
 * sandbox: see docs/security.md for what each covers.
 */
export interface ResourceLimits {
  /** Private writable memory of each process, bytes (RLIMIT_DATA); null = none. */
  memoryBytes: number | null;
  /**
   * Processes and threads of the run's user (RLIMIT_NPROC): in a sandbox run by a server
   * that is not root, those of the run alone; for a shared task user, all of its processes;
   * not enforced for root. null = none.
   */
  processes: number | null;
  /** Open files of each process (RLIMIT_NOFILE); null = the system's. */
  openFiles: number | null;
  /** CPU seconds of each process (RLIMIT_CPU: SIGXCPU, then SIGKILL); null = none. */
  cpuSeconds: number | null;
  /**
   * Disk the run may fill, bytes; null = none. Its directory's allocated size is watched (the
   * run fails past it, see `DiskWatcher`), and each file any of its processes writes is
   * bounded by it exactly (RLIMIT_FSIZE: a write past it fails with EFBIG).
   */
  diskBytes: number | null;
}

/** No limits at all. */
export const NO_LIMITS: ResourceLimits = Object.freeze({
  memoryBytes: null,
  processes: null,
  openFiles: null,
  cpuSeconds: null,
  diskBytes: null,
});

/** The tighter of two limits for each resource (null = none). */
export function tighterLimits(a: ResourceLimits, b: Partial<ResourceLimits>): ResourceLimits {
  const pick = (x: number | null, y: number | null | undefined): number | null =>
    y === undefined || y === null ? x : x === null ? y : Math.min(x, y);
  return {
    memoryBytes: pick(a.memoryBytes, b.memoryBytes),
    processes: pick(a.processes, b.processes),
    openFiles: pick(a.openFiles, b.openFiles),
    cpuSeconds: pick(a.cpuSeconds, b.cpuSeconds),
    diskBytes: pick(a.diskBytes, b.diskBytes),
  };
}

/**
 * The `prlimit` arguments that apply `limits` to the command that follows them (soft and hard
 * limit equal, so the run cannot raise them), or [] when there is nothing to limit.
 */
export function prlimitArgs(prlimitPath: string, limits: ResourceLimits): string[] {
  const args: string[] = [];
  const add = (flag: string, value: number | null): void => {
    if (value !== null) args.push(`--${flag}=${value}:${value}`);
  };
  add('data', limits.memoryBytes);
  add('nproc', limits.processes);
  add('nofile', limits.openFiles);
  add('cpu', limits.cpuSeconds);
  add('fsize', limits.diskBytes);
  return args.length === 0 ? [] : [prlimitPath, ...args, '--'];
}
