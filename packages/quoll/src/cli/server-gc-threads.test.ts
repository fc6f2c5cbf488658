import { beforeEach, describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
const { SERVER_ONE_CORE_GC_FLAGS, cpuListIds, setServerGcThreads } = await import('./server-gc-threads.js');

describe('setServerGcThreads', () => {
  beforeEach(() => setFlagsFromString.mockClear());

  it('collects on the thread that allocates when `quoll server` has one core', () => {
    expect(setServerGcThreads(['server', '--home', '/tmp/q', '--port', '0'], [], 1)).toBe(true);
    expect(setFlagsFromString.mock.calls.map(([flag]) => flag as string)).toEqual([
      '--no-parallel-scavenge',
      '--no-parallel-compaction',
      '--no-parallel-pointer-update',
    ]);
    expect(SERVER_ONE_CORE_GC_FLAGS).toHaveLength(3);
  });

  it('keeps V8 parallel scavenges with two cores or more', () => {
    expect(setServerGcThreads(['server'], [], 2)).toBe(false);
    expect(setServerGcThreads(['server'], [], 16)).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
  });

  it('leaves V8 alone for every other command', () => {
    for (const args of [[], ['pipeline', 'list'], ['--json', 'model', 'upload', 'server'], ['--', 'server']])
      expect(setServerGcThreads(args, [], 1)).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
  });

  it('lets a collection threading flag on the node command line win', () => {
    for (const flag of [
      '--single-threaded-gc',
      '--no-single-threaded-gc',
      '--single_threaded_gc',
      '--parallel-scavenge',
      '--no-parallel-scavenge',
      '--no_parallel_scavenge',
      '--noparallel-scavenge',
      '--single-threaded',
      '--parallel-scavenge=false',
    ])
      expect(
        setServerGcThreads(['server'], [flag, '--parallel-compaction', '--no_parallel_pointer_update'], 1),
        flag,
      ).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
  });

  it('sets each one-core flag the node command line does not name', () => {
    expect(setServerGcThreads(['server'], ['--parallel-compaction'], 1)).toBe(true);
    expect(setFlagsFromString.mock.calls.map(([flag]) => flag as string)).toEqual([
      '--no-parallel-scavenge',
      '--no-parallel-pointer-update',
    ]);
  });

  it('is not stopped by node flags that do not decide how scavenges use threads', () => {
    for (const flag of [
      '--max-old-space-size=512',
      '--no-concurrent-recompilation',
      '--concurrent-sparkplug',
      '--no-concurrent-marking',
      '--no-parallel-marking',
      '--parallel_compile_tasks_for_lazy',
      '--concurrent_marking_max_worker_num=1',
      '--single-threaded-gc-in-background',
    ])
      expect(setServerGcThreads(['server'], [flag, '--import', 'tsx'], 1), flag).toBe(true);
  });
});

describe('cpuListIds', () => {
  it("reads a kernel CPU list (/proc/self/status's Cpus_allowed_list, /sys/devices/system/cpu/online)", () => {
    expect(cpuListIds('0')).toEqual(new Set([0]));
    expect(cpuListIds('0-1')).toEqual(new Set([0, 1]));
    expect(cpuListIds('0,2-3,7')).toEqual(new Set([0, 2, 3, 7]));
    expect(cpuListIds(' 3 \n')).toEqual(new Set([3]));
    expect(cpuListIds('')).toBeUndefined();
    expect(cpuListIds('x')).toBeUndefined();
    expect(cpuListIds('3-1')).toBeUndefined();
    expect(cpuListIds('0-4294967295')).toBeUndefined();
  });
});
