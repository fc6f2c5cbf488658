import { execFileSync } from 'node:child_process';
import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** The OS user and group task processes run as. */
export interface TaskUser {
  uid: number;
  gid: number;
}

/**
 * Resolves `QUOLL_TASK_USER`: a user name (its primary group is used), `uid`, or
 * `uid:gid`. Names are looked up with `id -u` / `id -g`. Throws a message naming the
 * variable when the user does not exist or the value is malformed.
 * @example resolveTaskUser('quoll-tasks'); resolveTaskUser('1001:1001');
 */
export function resolveTaskUser(spec: string): TaskUser {
  const text = spec.trim();
  const numeric = /^(\d+)(?::(\d+))?$/.exec(text);
  if (numeric !== null) {
    const uid = Number(numeric[1]);
    const gid = numeric[2] !== undefined ? Number(numeric[2]) : primaryGid(String(uid), spec);
    return { uid, gid };
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(text)) {
    throw new Error(
      `Invalid QUOLL_TASK_USER "${spec}": give a user name, a uid, or uid:gid (e.g. 1001:1001).`,
    );
  }
  return { uid: idNumber(['-u', text], spec), gid: primaryGid(text, spec) };
}

function primaryGid(user: string, spec: string): number {
  return idNumber(['-g', user], spec);
}

function idNumber(args: string[], spec: string): number {
  let out: string;
  try {
    out = execFileSync('id', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    throw new Error(
      `Invalid QUOLL_TASK_USER "${spec}": no such user on this machine (id ${args.join(' ')} failed). Create the user or give uid:gid.`,
    );
  }
  const n = Number(out.trim());
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`Invalid QUOLL_TASK_USER "${spec}": id answered "${out.trim()}".`);
  return n;
}

/**
 * Narrows the home for a task user other than the server's: the home becomes 0711 (enter,
 * not list) so runs reach their dependencies through `traversable` folders (0711 too), while
 * every other entry of the home — credentials, master key, database, logs, model blobs —
 * becomes 0700/0600, unreadable by that user.
 * @param traversable top-level folders runs must pass through. @default ['orchestrations', 'envs']
 */
export async function restrictHomeForTaskUser(
  home: string,
  traversable: readonly string[] = ['orchestrations', 'envs'],
): Promise<void> {
  await chmod(home, 0o711);
  for (const entry of await readdir(home, { withFileTypes: true })) {
    const path = join(home, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) await chmod(path, traversable.includes(entry.name) ? 0o711 : 0o700);
    else await chmod(path, 0o600);
  }
}
