import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import { measureDiskUsage } from './disk-usage.js';

/** Most entries a run's directory may hold; past it the run is over its disk limit. */
export const DEFAULT_DISK_MAX_ENTRIES = 100_000;

/** Least time between two walks of a run's directory. */
export const DEFAULT_DISK_CHECK_INTERVAL_MS = 500;

/**
 * The pause after a walk is at least this many times the walk's own duration, so watching
 * a large directory takes at most about 1/20 of a core.
 */
const WALK_COST_FACTOR = 20;

/** The stable start of the reason a run (or install) over its disk limit ends with. */
export const DISK_LIMIT_REASON_PREFIX = 'disk limit exceeded';

/** Why a directory is over its limit, for a run's final line and an install's error. */
export function diskLimitReason(
  limitBytes: number,
  usage: { bytes: number; truncated: boolean } | null,
  maxEntries: number,
): string {
  if (usage !== null && usage.truncated && usage.bytes <= limitBytes)
    return `${DISK_LIMIT_REASON_PREFIX} (more than ${maxEntries} files)`;
  return `${DISK_LIMIT_REASON_PREFIX} (${limitBytes} bytes)`;
}

/** Options of {@link DiskWatcher}. */
export interface DiskWatcherOptions {
  /** The directories whose allocated size, together, is bounded (a run's directory; an install's build folder and own cache). */
  dirs: readonly string[];
  /** Most allocated bytes `dirs` may hold together. */
  limitBytes: number;
  /** Most entries `dirs` may hold together (the walk stops there). @default DEFAULT_DISK_MAX_ENTRIES */
  maxEntries?: number;
  /** Least time between walks. @default DEFAULT_DISK_CHECK_INTERVAL_MS */
  intervalMs?: number;
  /** Time source for the pauses. @default systemClock */
  clock?: Clock;
  /** Called once, when `dirs` are over the limit (or cannot be measured), with the reason. Watching then stops. */
  onExceeded: (reason: string) => void;
}

/**
 * Watches what directories hold on disk while a run (or install) writes there: walks them
 * (see {@link measureDiskUsage}) every `intervalMs` or more — more when the walk itself is
 * slow — and calls `onExceeded` once it holds more than `limitBytes` or more than
 * `maxEntries` entries. Between two walks a writer can go past the limit by what it writes
 * in that time; each file is bounded exactly by RLIMIT_FSIZE (see `prlimitArgs`).
 *
 * {@link DiskWatcher.stop} cancels the next walk and waits for a walk in progress, so nothing
 * of it is left once it resolves.
 *
 * @example
 * const w = new DiskWatcher({ dirs: [runDir], limitBytes: 2 * 1024 ** 3, onExceeded: (why) => kill(why) });
 * w.start();
 * // … the run ends:
 * await w.stop();
 */
export class DiskWatcher {
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly intervalMs: number;
  private timer: TimerHandle | null = null;
  private walking: Promise<void> | null = null;
  private stopped = false;
  private tripped = false;

  constructor(private readonly options: DiskWatcherOptions) {
    this.clock = options.clock ?? systemClock;
    this.maxEntries = Math.max(1, Math.floor(options.maxEntries ?? DEFAULT_DISK_MAX_ENTRIES));
    this.intervalMs = Math.max(1, options.intervalMs ?? DEFAULT_DISK_CHECK_INTERVAL_MS);
  }

  /** Whether the directory was found over its limit. */
  get exceeded(): boolean {
    return this.tripped;
  }

  /** Schedules the first walk, `intervalMs` from now. */
  start(): void {
    if (this.stopped || this.timer !== null || this.walking !== null) return;
    this.schedule(this.intervalMs);
  }

  /**
   * Walks the directory now (stopped or not) and reports when it is over the limit; resolves
   * with whether it is. Used for a last look when the writer has ended.
   */
  async check(): Promise<boolean> {
    if (this.walking !== null) await this.walking;
    if (!this.tripped) await this.walk();
    return this.tripped;
  }

  /** Stops watching: no walk starts after this; resolves once a walk in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.walking !== null) await this.walking;
  }

  private schedule(ms: number): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      const started = performance.now();
      void this.walk().then(() => {
        if (this.stopped || this.tripped) return;
        const took = performance.now() - started;
        this.schedule(Math.max(this.intervalMs, Math.ceil(took * WALK_COST_FACTOR)));
      });
    }, ms);
  }

  private walk(): Promise<void> {
    const { dirs, limitBytes } = this.options;
    const walking = (async () => {
      let reason: string | null = null;
      try {
        const total = { bytes: 0, entries: 0, truncated: false };
        for (const dir of dirs) {
          const usage = await measureDiskUsage(dir, {
            maxEntries: this.maxEntries - total.entries,
            stopAtBytes: limitBytes - total.bytes,
          });
          total.bytes += usage.bytes;
          total.entries += usage.entries;
          total.truncated ||= usage.truncated;
          if (total.bytes > limitBytes || total.truncated) break;
        }
        if (total.bytes > limitBytes || total.truncated)
          reason = diskLimitReason(limitBytes, total, this.maxEntries);
      } catch (err) {
        // What cannot be measured cannot be let grow.
        reason = `${DISK_LIMIT_REASON_PREFIX} (cannot measure: ${err instanceof Error ? err.message : String(err)})`;
      }
      if (reason !== null && !this.tripped) {
        this.tripped = true;
        this.options.onExceeded(reason);
      }
    })();
    this.walking = walking;
    void walking.finally(() => {
      if (this.walking === walking) this.walking = null;
    });
    return walking;
  }
}
