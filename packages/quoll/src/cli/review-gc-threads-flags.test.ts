// Review of lane p99: a node flag that has nothing to do with how a scavenge uses threads must
// not switch off the one-core scavenge flag. GC_THREADING_FLAG matches every `--parallel-*` and
// `--concurrent-*` V8 flag, compiler ones included, and GC flags about other collections.
import { describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
const { setServerGcThreads } = await import('./server-gc-threads.js');

describe('review: setServerGcThreads and unrelated node flags', () => {
  it.each([
    // Compiler threads, not GC.
    '--no-concurrent-recompilation',
    '--concurrent-sparkplug',
    '--no-concurrent-osr',
    // V8 takes `_` for `-`; the regex's `\w+` then swallows the rest of the name.
    '--parallel_compile_tasks_for_lazy',
    // Full-collection (mark-compact) threading: says nothing about scavenges. A user on one core
    // turning concurrent marking off for the same reason loses the scavenge fix silently.
    '--no-concurrent-marking',
    '--concurrent_marking_max_worker_num=1',
    '--no-parallel-compaction',
  ])('still sets the one-core scavenge flag with %s on the node command line', (flag) => {
    setFlagsFromString.mockClear();
    expect(setServerGcThreads(['server'], [flag], 1)).toBe(true);
    expect(setFlagsFromString).toHaveBeenCalledWith('--no-parallel-scavenge');
  });
});
