import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { isServerCommand } from './server-heap-growth.js';

/**
 * The V8 flag `quoll server` sets when the process may run on one core only: a scavenge (the
 * young generation's collection) copies its survivors on the thread that allocates instead of
 * splitting the copying with V8's helper threads. (`--single-threaded-gc`, which would also stop
 * concurrent marking and sweeping, cannot be set once V8 runs: the process aborts at start, a
 * marker's job still valid.)
 */
export const SERVER_ONE_CORE_GC_FLAG = '--no-parallel-scavenge';

/**
 * For `quoll server` on one core (its CPU affinity: `taskset -c 0`, a container's
 * `--cpuset-cpus=0`; not a CPU quota, whatever the Node.js version), sets
 * {@link SERVER_ONE_CORE_GC_FLAG} for the whole process. V8 reads it at each scavenge, so it
 * applies from the next one on.
 *
 * Why: with one core V8's helper threads cannot run beside the HTTP thread, only instead of it.
 * A scavenge of the HTTP thread hands parts of its copying to them and then waits until each
 * has been scheduled and done its part: at JSON batch 1 × 16 (≈ 120 KB of survivors a
 * scavenge) that copying phase took 0.56–4.8 ms at its p90 (5–62 ms at its max) with the
 * helpers, 0.23–0.29 ms without, and every request in flight waits for it (docs/benchmarks.md,
 * p99 lane of 5 December). With two cores or more the helpers run in parallel and are kept.
 *
 * Returns whether the flag was set: not for other commands, not with two cores or more, nor
 * when the node command line already says how scavenges use threads, which then wins.
 */
export function setServerGcThreads(
  args: readonly string[],
  nodeFlags: readonly string[] = process.execArgv,
  cores: number = affinityCores(),
): boolean {
  if (!isServerCommand(args) || cores > 1) return false;
  if (nodeFlags.some((flag) => SCAVENGE_THREADING_FLAG.test(flag.replaceAll('_', '-')))) return false;
  setFlagsFromString(SERVER_ONE_CORE_GC_FLAG);
  return true;
}

/**
 * The node / V8 flags that decide whether scavenges use helper threads (`_` read as `-`; V8
 * takes `--no-flag` and `--noflag`).
 */
const SCAVENGE_THREADING_FLAG = /^--(no-?)?(parallel-scavenge|single-threaded-gc|single-threaded)(=|$)/;

/**
 * How many CPUs this process may run on: its affinity (Linux: `Cpus_allowed_list`), not a
 * cgroup CPU quota, which `os.availableParallelism()` also counts from Node.js 22.12 (libuv
 * 1.49). Elsewhere, `availableParallelism()`.
 */
export function affinityCores(): number {
  try {
    const list = /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    const count = list === undefined ? undefined : countCpuList(list);
    if (count !== undefined) return count;
  } catch {
    // Not Linux.
  }
  return availableParallelism();
}

/** The number of CPUs in a kernel CPU list such as `0,2-3,7`, or undefined if it is not one. */
export function countCpuList(list: string): number | undefined {
  let count = 0;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) return undefined;
    count += m[2] === undefined ? 1 : Number(m[2]) - Number(m[1]) + 1;
  }
  return count;
}
