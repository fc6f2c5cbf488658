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
 * For `quoll server` on one core (its CPU affinity: `taskset -c 0`, a container's `--cpuset-cpus=0`;
 * not a CPU quota), sets {@link SERVER_ONE_CORE_GC_FLAG} for the whole process. V8 reads the flags it implies
 * at each collection, so it applies from the next one on.
 *
 * Why: with one core V8's helper threads cannot run beside the HTTP thread, only instead of it.
 * A scavenge of the HTTP thread hands parts of its copying to them and then waits until each
 * has been scheduled and done its part; at JSON batch 1 × 16 that wait made a scavenge of
 * ≈ 120 KB of survivors last 3–14 ms at its p90–max instead of ≈ 1 ms, holding every request in
 * flight (docs/benchmarks.md, p99 lane of 5 December). With two cores or more the helpers run in
 * parallel and are kept.
 *
 * Returns whether the flag was set: not for other commands, not with two cores or more, nor
 * when the node command line already says how V8 collects, which then wins.
 */
export function setServerGcThreads(
  args: readonly string[],
  nodeFlags: readonly string[] = process.execArgv,
  cores: number = availableParallelism(),
): boolean {
  if (!isServerCommand(args) || cores > 1) return false;
  if (nodeFlags.some((flag) => GC_THREADING_FLAG.test(flag))) return false;
  setFlagsFromString(SERVER_ONE_CORE_GC_FLAG);
  return true;
}

/** The node / V8 flags that choose how garbage collection uses threads (with or without `no-`). */
const GC_THREADING_FLAG = /^--(no[-_])?(single[-_]threaded([-_]gc)?|parallel[-_]\w+|concurrent[-_]\w+)(=|$)/;
