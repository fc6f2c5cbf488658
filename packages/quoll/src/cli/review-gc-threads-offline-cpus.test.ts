// Review of lane p99, on d7879bd: one core is now counted from /proc/self/status's
// Cpus_allowed_list. That is the task's cpus_mask, which the kernel does NOT intersect with the
// online CPUs (sched_getaffinity(2), which libuv and so availableParallelism() use, does: mask &
// cpu_active_mask). With CONFIG_HOTPLUG_CPU a task's mask starts as all *possible* CPUs: a VM with
// one vCPU online and hot-add room (possible 0-3), or a machine with CPUs taken offline, shows
// Cpus_allowed_list 0-3 (seen in the wild: giampaolo/psutil#956 "0-7" with 4 CPUs online,
// geopm/geopm#730). Such a process runs on one core, availableParallelism() says 1, and before
// d7879bd the flag was set; now it is not.
import { describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
vi.mock('node:os', async (importOriginal) => ({
  ...(await importOriginal<typeof Os>()),
  availableParallelism: () => 1,
}));
const files: Record<string, string> = {
  '/proc/self/status': 'Name:\tnode\nCpus_allowed:\tf\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t0\n',
  '/sys/devices/system/cpu/online': '0\n',
  '/sys/devices/system/cpu/possible': '0-3\n',
};
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof Fs>();
  const readFileSync = ((path: unknown, ...rest: unknown[]) =>
    typeof path === 'string' && path in files
      ? files[path]
      : (fs.readFileSync as (...a: unknown[]) => unknown)(path, ...rest)) as typeof fs.readFileSync;
  return { ...fs, default: { ...fs, readFileSync }, readFileSync };
});
import type * as Fs from 'node:fs';
import type * as Os from 'node:os';
const { setServerGcThreads } = await import('./server-gc-threads.js');

describe('review: one core online, four possible', () => {
  it('sets the one-core flag when the only online CPU is the one the process may use', () => {
    expect(setServerGcThreads(['server'], [])).toBe(true);
    expect(setFlagsFromString).toHaveBeenCalledWith('--no-parallel-scavenge');
  });
});
