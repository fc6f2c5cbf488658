import { beforeEach, describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
const { SERVER_ONE_CORE_GC_FLAG, setServerGcThreads } = await import('./server-gc-threads.js');

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

  it('lets a GC threading flag on the node command line win', () => {
    for (const flag of [
      '--single-threaded-gc',
      '--no-single-threaded-gc',
      '--single_threaded_gc',
      '--parallel-scavenge',
      '--no-parallel-scavenge',
      '--concurrent-marking',
      '--no-concurrent_marking',
      '--single-threaded',
    ])
      expect(setServerGcThreads(['server'], [flag], 1)).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
    // Unrelated node flags do not stop it.
    expect(setServerGcThreads(['server'], ['--max-old-space-size=512', '--import', 'tsx'], 1)).toBe(true);
  });
});
