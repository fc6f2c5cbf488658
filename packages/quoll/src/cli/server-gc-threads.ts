import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { isServerCommand } from './server-heap-growth.js';

/**
 * The V8 flags `quoll server` sets when the process may run on one core only: a scavenge (the
 * young generation's collection) copies its survivors, and a full collection evacuates and then
 * updates pointers, on the thread that allocates instead of splitting that work with V8's helper
 * threads and waiting inside the pause for them. (`--single-threaded-gc` and
 * `--no-parallel-marking`, which would also stop the helpers' marking, cannot be set once V8
 * runs: the process aborts, at start or at the next full collection.)
 */
export const SERVER_ONE_CORE_GC_FLAGS: readonly string[] = [
  '--no-parallel-scavenge',
  '--no-parallel-compaction',
  '--no-parallel-pointer-update',
];

/**
 * For `quoll server` on one core (its CPU affinity: `taskset -c 0`, a container's
 * `--cpuset-cpus=0`; not a CPU quota, whatever the Node.js version), sets
 * {@link SERVER_ONE_CORE_GC_FLAGS} for the whole process. V8 reads them at each collection, so
 * they apply from the next one on.
 *
 * Why: with one core V8's helper threads cannot run beside the HTTP thread, only instead of it.
 * A scavenge of the HTTP thread hands parts of its copying to them and then waits until each
 * has been scheduled and done its part: at JSON batch 1 × 16 (≈ 120 KB of survivors a
 * scavenge) that copying phase took 0.56–4.8 ms at its p90 (5–62 ms at its max) with the
 * helpers, 0.23–0.29 ms without, and every request in flight waits for it (docs/benchmarks.md,
 * p99 lane of 5 December). A full collection's evacuation and pointer update waited for them
 * the same way (1.2–3.8 ms of helper time in 16.7 ms pauses; the review of that lane). With two
 * cores or more the helpers run in parallel and are kept.
 *
 * Returns whether any flag was set: none for other commands, nor with two cores or more. A
 * flag given to node itself wins over each: the same flag (`--parallel-scavenge`,
 * `--no-parallel-compaction`, …) over that one, `--single-threaded-gc` or `--single-threaded`
 * over all three.
 */
export function setServerGcThreads(
  args: readonly string[],
  nodeFlags: readonly string[] = process.execArgv,
  cores: number = affinityCores(),
): boolean {
  if (!isServerCommand(args) || cores > 1) return false;
  const given = new Set<string>();
  for (const flag of nodeFlags) {
    const name = GC_THREADING_FLAG.exec(flag.replaceAll('_', '-'))?.[2];
    if (name !== undefined) given.add(name);
  }
  if (given.has('single-threaded-gc') || given.has('single-threaded')) return false;
  let set = false;
  for (const flag of SERVER_ONE_CORE_GC_FLAGS) {
    if (given.has(flag.slice('--no-'.length))) continue;
    setFlagsFromString(flag);
    set = true;
  }
  return set;
}

/**
 * The node / V8 flags that decide whether the collections of {@link SERVER_ONE_CORE_GC_FLAGS}
 * use helper threads (`_` read as `-`; V8 takes `--no-flag` and `--noflag`); group 2 is the name.
 */
const GC_THREADING_FLAG =
  /^--(no-?)?(parallel-scavenge|parallel-compaction|parallel-pointer-update|single-threaded-gc|single-threaded)(=|$)/;

/**
 * How many CPUs this process may run on: the online CPUs of its affinity (Linux:
 * `Cpus_allowed_list`, which also lists possible CPUs that are offline, against
 * `/sys/devices/system/cpu/online`), not a cgroup CPU quota, which `os.availableParallelism()`
 * also counts from Node.js 22.12 (libuv 1.49). Where either file cannot be read,
 * `availableParallelism()`.
 */
export function affinityCores(): number {
  try {
    const allowed = /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    const mine = allowed === undefined ? undefined : cpuListIds(allowed);
    const online = cpuListIds(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
    if (mine !== undefined && online !== undefined) {
      const count = [...mine].filter((cpu) => online.has(cpu)).length;
      if (count > 0) return count;
    }
  } catch {
    // Not Linux.
  }
  return availableParallelism();
}

/** The CPUs of a kernel CPU list such as `0,2-3,7`, or undefined if it is not one. */
export function cpuListIds(list: string): Set<number> | undefined {
  const ids = new Set<number>();
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) return undefined;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    // A list wider than any machine is not one this reads (and would cost memory to expand).
    if (last < first || last - first > 65_535) return undefined;
    for (let cpu = first; cpu <= last; cpu++) ids.add(cpu);
  }
  return ids;
}
