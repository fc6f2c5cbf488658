import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/**
 * A clock of the calling thread's own time, in µs, for timing code that computes (no waits on
 * I/O or locks): what a piece of code costs, measured with it, is then about the same on a busy
 * machine as on an idle one, since time the thread spent preempted (other processes, other
 * threads on the same core) does not count. Sources, in order:
 * - `kind: 'cpu'`: `process.threadCpuUsage()` (Node 23.9 and later), the thread's CPU time;
 * - `kind: 'unqueued'`: Linux's `/proc/thread-self/schedstat`: wall time less the time the
 *   thread waited in a run queue for a CPU (its second field, `run_delay`, which the kernel adds
 *   to as the thread gets a CPU back, so it is current whenever the thread reads it). Its first
 *   field, time on a CPU, would be simpler but moves only at scheduler ticks (milliseconds),
 *   too coarse for runs of microseconds. One file descriptor, held until
 *   {@link ThreadClock.close}, read with `pread` (about 4 µs a read; twice a reading, on each
 *   side of the wall time, so that a preemption in between cannot skew it). Time the thread
 *   blocks (sleeps, waits on a lock) counts, as in wall time;
 * - `kind: 'wall'`: `performance.now()`, elsewhere.
 * Make it on the thread it measures, and close it there.
 */
export interface ThreadClock {
  readonly kind: 'cpu' | 'unqueued' | 'wall';
  /** µs of this thread's time so far (only differences mean anything). */
  now(): number;
  /** Lets go of what it holds (a file descriptor); `now` must not be called afterwards. Idempotent. */
  close(): void;
}

type ThreadCpuUsage = () => { user: number; system: number };

const WALL: ThreadClock = { kind: 'wall', now: () => performance.now() * 1000, close: () => undefined };

/** A {@link ThreadClock} of the calling thread. */
export function threadClock(): ThreadClock {
  const usage = (process as { threadCpuUsage?: ThreadCpuUsage }).threadCpuUsage;
  if (typeof usage === 'function')
    return {
      kind: 'cpu',
      now: () => {
        const { user, system } = usage.call(process);
        return user + system;
      },
      close: () => undefined,
    };
  let fd: number;
  try {
    fd = openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return WALL;
  }
  const buffer = Buffer.alloc(96);
  let open = true;
  /** `run_delay` in ns: the second number of the file; NaN when it does not read as expected. */
  const waitedNs = (): number => {
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    let i = buffer.indexOf(32);
    if (i < 0 || i >= length) return Number.NaN;
    let ns = 0;
    for (i++; i < length; i++) {
      const digit = buffer[i]! - 48;
      if (digit < 0 || digit > 9) break;
      ns = ns * 10 + digit;
    }
    return ns;
  };
  // The wait read before and after the wall time: a preemption between the two would pair a wall
  // time with a wait it does not include (or the other way round), a reading off by the whole
  // preemption (milliseconds) that can even run backwards; equal waits on both sides mean none
  // happened in between. Tried a few times; after that the later pair, which can still be off
  // (preempted on every try: seen once in a loaded CI run), so a reading is never less than the
  // one before it: the clock holds still rather than run backwards.
  let last = Number.NEGATIVE_INFINITY;
  const now = (): number => {
    let before = waitedNs();
    for (let tries = 0; ; tries++) {
      const wall = performance.now() * 1000;
      const after = waitedNs();
      if (after === before || tries === 3) {
        const reading = wall - after / 1000;
        if (reading > last) last = reading;
        return last;
      }
      before = after;
    }
  };
  const close = (): void => {
    if (!open) return;
    open = false;
    closeSync(fd);
  };
  try {
    if (Number.isFinite(waitedNs())) return { kind: 'unqueued', now, close };
  } catch {
    // Not readable as expected: wall time below.
  }
  close();
  return WALL;
}

/** This thread's {@link callingThreadClock} (module state is per thread: each worker has its own). */
let held: ThreadClock | null = null;

/**
 * One {@link ThreadClock} of the calling thread, made on the first call and kept for the
 * thread's life (one file descriptor on Linux before Node 23.9): for code that reads the
 * thread's time now and then, from many places, such as the inline trip wire.
 */
export function callingThreadClock(): ThreadClock {
  held ??= threadClock();
  return held;
}
