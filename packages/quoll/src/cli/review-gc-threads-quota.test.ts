// Review of lane p99: docs/operations.md says a CPU quota (`--cpus=1`) does not count as one
// core, only the CPU affinity does. The code asks os.availableParallelism(), which on Node
// 22.12+ (libuv >= 1.49.1; package.json allows node >= 20.9) also folds in the cgroup CPU quota
// (and on some cgroup v2 / Kubernetes set-ups answered 1 on 4-core pods: nodejs/node#58428,
// libuv/libuv#4740). Here availableParallelism() answers 1 as it does there, while this
// process's affinity has two cores or more: the flag must not be set.
import { readFileSync } from 'node:fs';
import type * as Os from 'node:os';
import { describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
vi.mock('node:os', async (importOriginal) => ({
  ...(await importOriginal<typeof Os>()),
  availableParallelism: () => 1,
}));
const { setServerGcThreads } = await import('./server-gc-threads.js');

/** CPUs in this process's affinity (sched_getaffinity), from /proc/self/status. */
function affinityCpus(): number {
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  let n = 0;
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

describe('review: one core means the CPU affinity, not a CPU quota', () => {
  it.runIf(process.platform === 'linux' && affinityCpus() >= 2)(
    'does not set the flag when only a quota makes availableParallelism() say 1',
    () => {
      expect(setServerGcThreads(['server'], [])).toBe(false);
      expect(setFlagsFromString).not.toHaveBeenCalled();
    },
  );
});
