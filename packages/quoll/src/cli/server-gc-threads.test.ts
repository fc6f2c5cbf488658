import { beforeEach, describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
const { SERVER_ONE_CORE_GC_FLAG, countCpuList, setServerGcThreads } = await import('./server-gc-threads.js');

describe('setServerGcThreads', () => {
  beforeEach(() => setFlagsFromString.mockClear());

  it('collects on the thread that allocates when `quoll server` has one core', () => {
    expect(setServerGcThreads(['server', '--home', '/tmp/q', '--port', '0'], [], 1)).toBe(true);
    expect(setFlagsFromString).toHaveBeenCalledExactlyOnceWith(SERVER_ONE_CORE_GC_FLAG);
    expect(SERVER_ONE_CORE_GC_FLAG).toBe('--no-parallel-scavenge');
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

  it('lets a scavenge threading flag on the node command line win', () => {
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
      expect(setServerGcThreads(['server'], [flag], 1), flag).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
  });

  it('is not stopped by node flags that do not decide how scavenges use threads', () => {
    for (const flag of [
      '--max-old-space-size=512',
      '--no-concurrent-recompilation',
      '--concurrent-sparkplug',
      '--no-concurrent-marking',
      '--no-parallel-compaction',
      '--parallel_compile_tasks_for_lazy',
      '--concurrent_marking_max_worker_num=1',
      '--single-threaded-gc-in-background',
    ])
      expect(setServerGcThreads(['server'], [flag, '--import', 'tsx'], 1), flag).toBe(true);
  });
});

describe('countCpuList', () => {
  it("counts the CPUs of a kernel CPU list (/proc/self/status's Cpus_allowed_list)", () => {
    expect(countCpuList('0')).toBe(1);
    expect(countCpuList('0-1')).toBe(2);
    expect(countCpuList('0,2-3,7')).toBe(4);
    expect(countCpuList(' 3 \n')).toBe(1);
    expect(countCpuList('')).toBeUndefined();
    expect(countCpuList('x')).toBeUndefined();
  });
});
