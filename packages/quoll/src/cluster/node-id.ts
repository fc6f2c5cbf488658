import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The file in a node's home that keeps its id across restarts. */
export const NODE_ID_FILE = 'node-id';

/**
 * This node's id in shared state (who holds a packaging lease, later who runs a task run):
 * the configured one (`QUOLL_NODE_ID`), else the one kept in `<home>/node-id`, made at the
 * node's first start. Stable across restarts, so a restarted node takes back its own
 * unfinished work at once; different per home, so two nodes never share one.
 * @example
 * const nodeId = await resolveNodeId(config.home, config.nodeId);
 */
export async function resolveNodeId(home: string, configured: string | null): Promise<string> {
  if (configured !== null) return configured;
  const path = join(home, NODE_ID_FILE);
  try {
    const existing = (await readFile(path, 'utf8')).trim();
    if (/^[A-Za-z0-9._-]{1,64}$/.test(existing)) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  try {
    // 'wx': two processes starting on one home at once keep the first id written.
    await writeFile(path, `${id}\n`, { flag: 'wx', mode: 0o600 });
    return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return (await readFile(path, 'utf8')).trim();
  }
}
