import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** The server holding a home, as it describes itself in `<home>/server.json`. */
export interface HomeLockHolder {
  pid: number;
  /** Its base URL; null until it listens. */
  url: string | null;
  /** ISO 8601 time it took the lock. */
  startedAt: string;
}

/** Another server holds the home: a second server must not start on it. */
export class HomeLockedError extends Error {
  constructor(
    readonly home: string,
    /** What the running server wrote about itself; null when it has not written it yet. */
    readonly holder: HomeLockHolder | null,
  ) {
    const who =
      holder === null
        ? 'another Quoll server'
        : `another Quoll server (pid ${holder.pid}, ${holder.url ?? 'not listening yet'})`;
    super(
      `The home ${home} is in use by ${who}. One server per home: stop that one first, or start this one with another --home.`,
    );
    this.name = 'HomeLockedError';
  }
}

/** The lock file: an SQLite file used only for its lock, held for the server's whole life. */
export const HOME_LOCK_FILE = 'server.lock';

/** Who holds the lock: pid, URL and start time, written by the holder. */
export const HOME_LOCK_INFO_FILE = 'server.json';

/**
 * The exclusive lock of one server on its home. The lock is the operating system's file
 * lock on `<home>/server.lock` (SQLite's, held by an open exclusive transaction on that file):
 * the kernel drops it when the process ends however it ends, SIGKILL included, so a lock is
 * never stale and needs no pid-liveness guess. Within one process a second acquire fails
 * too (SQLite tracks its locks per file, not per descriptor).
 *
 * @example
 *   const lock = HomeLock.acquire(home); // throws HomeLockedError naming the running server
 *   await lock.announce('http://127.0.0.1:8470');
 *   await lock.release();
 */
export class HomeLock {
  private released = false;

  private constructor(
    readonly home: string,
    private readonly db: Database.Database,
    private readonly startedAt: string,
  ) {}

  /**
   * Takes the home's lock at once (no waiting) and records this process in `server.json`.
   * @throws HomeLockedError when another server (in this or another process) holds it.
   */
  static async acquire(home: string, now: Date = new Date()): Promise<HomeLock> {
    const db = new Database(join(home, HOME_LOCK_FILE), { timeout: 0 });
    try {
      // A rollback journal: the lock is the database file's own, nothing is ever written.
      db.pragma('journal_mode = DELETE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { code?: unknown }).code === 'SQLITE_BUSY')
        throw new HomeLockedError(home, readHolder(home));
      throw err;
    }
    const lock = new HomeLock(home, db, now.toISOString());
    await lock.write(null);
    return lock;
  }

  /** Records the URL this server listens on, for a second server's message. */
  announce(url: string): Promise<void> {
    return this.write(url);
  }

  /** Removes `server.json` and lets the lock go; later calls do nothing. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      await rm(join(this.home, HOME_LOCK_INFO_FILE), { force: true });
    } finally {
      // Ending the transaction and closing the file drops the lock.
      this.db.close();
    }
  }

  private async write(url: string | null): Promise<void> {
    const holder: HomeLockHolder = { pid: process.pid, url, startedAt: this.startedAt };
    const path = join(this.home, HOME_LOCK_INFO_FILE);
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(holder, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, path);
  }
}

/** What the lock's holder wrote about itself, or null when it is missing or unreadable. */
function readHolder(home: string): HomeLockHolder | null {
  try {
    const raw = JSON.parse(readFileSync(join(home, HOME_LOCK_INFO_FILE), 'utf8')) as Partial<HomeLockHolder>;
    if (typeof raw.pid !== 'number' || typeof raw.startedAt !== 'string') return null;
    // Left by a server that died before the running one wrote its own.
    if (!isAlive(raw.pid)) return null;
    return { pid: raw.pid, url: typeof raw.url === 'string' ? raw.url : null, startedAt: raw.startedAt };
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
