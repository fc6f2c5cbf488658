import { chmod, copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processesTitled } from './orchestration-helpers.js';
import type { TestServer } from './test-server.js';

/** A home holding only the cluster's master key, copied from `server`'s (every node needs the same one). */
export async function homeWithKeyOf(server: TestServer): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'quoll-cluster-node-'));
  await copyFile(join(server.home, 'master.key'), join(home, 'master.key'));
  await chmod(join(home, 'master.key'), 0o600);
  return home;
}

/**
 * Kills and removes every node of a test cluster, then SIGKILLs any run process still titled
 * `marker` (a run a killed node left behind).
 */
export async function killClusterNodes(servers: readonly TestServer[], marker: string): Promise<void> {
  for (const s of servers) {
    await s.kill();
    await s.cleanup();
  }
  for (const pid of processesTitled(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
}
