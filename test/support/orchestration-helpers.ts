import { readdirSync, readFileSync } from 'node:fs';
import type { Client, Orchestration, Task, TaskRun } from '@quoll/client';
import { createZip, type ZipEntrySpec } from './zip-builder.js';

/** Polls `probe` every 100 ms until it returns a value other than undefined; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Uploads a zip of `files` (path → content) into the client's current workspace and waits until it is ready. */
export async function readyOrchestration(
  client: Client,
  name: string,
  files: Record<string, string>,
): Promise<Orchestration> {
  const entries: ZipEntrySpec[] = Object.entries(files).map(([path, content]) => ({ path, content }));
  const orchestration = await client.uploadOrchestration(
    { bytes: await createZip(entries), fileName: `${name}.zip` },
    { name },
  );
  return orchestration.waitUntilReady({ timeoutMs: 60_000 });
}

/** Waits until the task's newest run has ended (any status but running); fails after `timeoutMs`. */
export function lastRunEnded(task: Task, timeoutMs = 30_000, what = 'the run to end'): Promise<TaskRun> {
  return waitFor(
    what,
    async () => {
      const [r] = await task.lastRuns({ limit: 1 });
      return r !== undefined && r.status !== 'running' ? r : undefined;
    },
    timeoutMs,
  );
}

/**
 * Live host processes whose command line contains `marker` (a run sets its `process.title`:
 * inside a sandbox its pid is only valid in its own PID namespace).
 */
export function processesTitled(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker) && processExists(Number(name)))
        found.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/**
 * Whether a live process with this pid exists. A zombie (dead, not yet reaped: an orphan in
 * a container whose init does not reap) counts as gone.
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}
